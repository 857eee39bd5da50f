"""fastact.nn: a layer for every registry op and the losses as objects, each the fastact functions' bits,
checked against PyTorch's modules where torch is installed, and their errors."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
from fastact import nn
from conftest import required_params

OPS = [o for o in fastact.ops() if o["name"] != "bias_act"]
rng = np.random.default_rng(0)
X = rng.normal(0, 3, (5, 8))
G = rng.normal(0, 1, (5, 8))


def test_every_registry_op_has_its_layer():
    for o in OPS:
        assert isinstance(getattr(nn, nn._class_name(o["name"]), None), type), o["name"]
    assert nn.QuickGELU is not None and nn.BCEWithLogitsLoss is not None and nn.BiasAct is not None


@pytest.mark.parametrize("op", [o for o in OPS if o["kind"] == "elementwise"], ids=lambda o: o["name"])
def test_elementwise_layers_are_the_functions(op):
    f, fb = getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")
    required = required_params(op)
    layer = getattr(nn, nn._class_name(op["name"]))(**required)
    y = layer(X)
    np.testing.assert_array_equal(y, f(X, **required))
    saved = layer._stack[-1][0][0]
    assert saved == ("y" if op["backward_from"] == "x|y" else "x")  # the output where PyTorch's module keeps it
    np.testing.assert_array_equal(layer.backward(G), fb(G, y=y, **required) if saved == "y" else fb(G, X, **required))


def test_layer_parameters_and_what_is_kept():
    lr = nn.LeakyReLU(0.2)
    assert lr.params == {"negative_slope": 0.2} and repr(lr) == "LeakyReLU(negative_slope=0.2)"
    lr(X)
    assert lr._stack[-1][0][0] == "x"  # (its y-form would lose digits for ELU far below 0: x, as PyTorch)
    neg = nn.LeakyReLU(negative_slope=-0.1)
    neg(X)
    np.testing.assert_array_equal(neg.backward(G), fastact.leaky_relu_backward(G, X, negative_slope=-0.1))
    g = nn.GELU(approximate="tanh")
    np.testing.assert_array_equal(g(X), fastact.gelu(X, approximate="tanh"))
    with pytest.raises(TypeError, match="unexpected argument 'alpha'"):
        nn.ReLU(alpha=1.0)
    with pytest.raises(TypeError, match="at most 1 arguments"):
        nn.LeakyReLU(0.1, 0.2)
    with pytest.raises(TypeError, match="twice"):
        nn.ELU(1.0, alpha=2.0)
    with pytest.raises(TypeError, match="missing required arguments 'threshold', 'value'"):
        nn.Threshold()


@pytest.mark.parametrize("cls,f,fb", [(nn.Softmax, fastact.softmax, fastact.softmax_backward),
                                      (nn.LogSoftmax, fastact.log_softmax, fastact.log_softmax_backward)])
def test_row_layers(cls, f, fb):
    layer = cls(axis=0)
    y = layer(X)
    np.testing.assert_array_equal(y, f(X, axis=0))
    np.testing.assert_array_equal(layer.backward(G), fb(G, y=y, axis=0))


@pytest.mark.parametrize("op", [o for o in OPS if o["kind"] == "gated"], ids=lambda o: o["name"])
def test_gated_layers(op):
    f, fb = getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")
    layer = getattr(nn, nn._class_name(op["name"]))()
    y = layer(X)
    np.testing.assert_array_equal(y, f(X))
    gy = G[:, :4]
    np.testing.assert_array_equal(layer.backward(gy), fb(gy, X))
    a, b = X[:, :4], X[:, 4:]
    y2 = layer(a, b)
    for got, want in zip(layer.backward(gy), fb(gy, a, b)):
        np.testing.assert_array_equal(got, want)
    assert y2.shape == (5, 4)


def test_errors_before_forward_and_for_a_changed_shape():
    r = nn.ReLU()
    with pytest.raises(RuntimeError, match="ReLU.backward: call the layer"):
        r.backward(G)
    r(X)
    with pytest.raises(ValueError, match=r"grad has shape \(5, 7\); expected the forward output's shape \(5, 8\)"):
        r.backward(G[:, :7])
    with pytest.raises(RuntimeError, match="call the loss"):
        nn.MSELoss().backward()
    m = nn.MSELoss(reduction="none")
    m(X, G)
    with pytest.raises(ValueError, match=r"grad has shape \(\); expected the forward output's shape \(5, 8\)"):
        m.backward(1.0)
    with pytest.raises(TypeError, match="keyword arguments only"):
        nn.HuberLoss("sum", 0.5)
    with pytest.raises(TypeError, match=r"unexpected argument 'dim'"):
        nn.Softmax(dim=1)
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.BiasAct(4, "gleu")
    with pytest.raises(TypeError, match="floating-point dtype"):
        nn.PReLU(dtype=np.int32)
    with pytest.raises(ValueError, match="num_parameters must be a positive int"):
        nn.PReLU(0)
    with pytest.raises(ValueError, match="needs axis="):
        nn.CrossEntropyLoss()(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64))


def test_a_layer_used_twice_backpropagates_in_reverse_and_eval_keeps_nothing():
    """One object at two places of a network (PyTorch's self.act called twice): each backward takes the
    latest forward's state not yet taken; in eval mode nothing is kept."""
    act = nn.GELU()
    w = rng.normal(size=(8, 8))
    h1 = act(X)
    h2 = act(h1 @ w)
    d1 = act.backward(G)                  # the second call's
    d0 = act.backward(d1 @ w.T)           # then the first's
    np.testing.assert_array_equal(d1, fastact.gelu_backward(G, h1 @ w))
    np.testing.assert_array_equal(d0, fastact.gelu_backward(d1 @ w.T, X))
    assert h2.shape == X.shape
    with pytest.raises(RuntimeError, match="call the layer"):
        act.backward(G)  # each forward's state is taken once
    act.eval()
    for _ in range(3):
        act(X)
    assert not getattr(act, "_stack", None)
    with pytest.raises(RuntimeError, match="training mode"):
        act.backward(G)
    act.train()
    act(X)
    np.testing.assert_array_equal(act.backward(G), fastact.gelu_backward(G, X))


def test_16_bit_parameter_gradients_are_summed_in_float32():
    x = np.full((40000, 2), -3, np.float16)
    p = nn.PReLU(2)
    p(x)
    dx = p.backward(np.ones_like(x))
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, fastact.prelu_backward(np.ones_like(x), x, p.weight.astype(np.float16), 1)[0])
    np.testing.assert_array_equal(p.weight_grad, [-120000.0, -120000.0])  # float16's range ends at 65504
    b = nn.BiasAct(1, "relu")
    ones = np.ones((70000, 1), np.float16)
    b(ones)
    b.backward(ones)
    np.testing.assert_array_equal(b.bias_grad, [70000.0])


def test_prelu_and_bias_act_hold_and_accumulate_their_gradients():
    p = nn.PReLU(8, init=0.1, channel_axis=1, dtype=np.float64)
    y = p(X)
    np.testing.assert_array_equal(y, fastact.prelu(X, p.weight, 1))
    dx = p.backward(G)
    want_dx, want_dw = fastact.prelu_backward(G, X, p.weight, 1)
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(p.weight_grad, want_dw)
    p(X)
    p.backward(G)
    np.testing.assert_array_equal(p.weight_grad, 2 * want_dw)
    p.zero_grad()
    assert not p.weight_grad.any()
    b = nn.BiasAct(8, "silu", dtype=np.float64)
    b.bias[:] = rng.normal(size=8)
    y = b(X)
    np.testing.assert_array_equal(y, fastact.bias_act(X, b.bias, "silu"))
    dx = b.backward(G)
    want_dx, want_db = fastact.bias_act_backward(G, X, b.bias, "silu")
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(b.bias_grad, want_db)


def test_loss_objects():
    t = rng.integers(0, 8, 5)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    assert ce(X, t) == fastact.cross_entropy(X, t, label_smoothing=0.1)
    want = fastact.cross_entropy_backward(1.0, X, t, label_smoothing=0.1)
    np.testing.assert_array_equal(ce.backward(), want)
    xi = X.copy()
    ce(xi, t)
    assert ce.backward(out=xi) is xi  # over the logits
    np.testing.assert_array_equal(xi, want)
    lp = fastact.log_softmax(X)
    nll = nn.NLLLoss(reduction="sum")
    assert nll(lp, t) == fastact.nll_loss(lp, t, reduction="sum")
    np.testing.assert_array_equal(nll.backward(2.0), fastact.nll_loss_backward(2.0, lp, t, reduction="sum"))
    h = nn.HuberLoss(delta=0.5)
    assert h(X, G) == fastact.huber_loss(X, G, delta=0.5)
    np.testing.assert_array_equal(h.backward(), fastact.huber_loss_backward(1.0, X, G, delta=0.5))
    with pytest.raises(RuntimeError, match="call the loss"):
        h.backward()  # taken once
    tb = (G > 0).astype(np.float64)
    pw = np.full(8, 2.0)
    bce = nn.BCEWithLogitsLoss(pos_weight=pw, reduction="none")
    np.testing.assert_array_equal(bce(X, tb), fastact.binary_cross_entropy_with_logits(X, tb, pos_weight=pw,
                                                                                       reduction="none"))
    np.testing.assert_array_equal(bce.backward(G), fastact.binary_cross_entropy_with_logits_backward(
        G, X, tb, pos_weight=pw, reduction="none"))


def test_a_training_step_matches_pytorch():
    """Linear -> PReLU -> Linear -> CrossEntropyLoss in float64: fastact.nn's gradients are PyTorch
    autograd's (to float64 rounding)."""
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(16, 8))
    t = rng.integers(0, 4, 16)
    w1, w2 = rng.normal(size=(6, 8)) * 0.5, rng.normal(size=(4, 6)) * 0.5
    act, loss = nn.PReLU(6, dtype=np.float64), nn.CrossEntropyLoss()
    h = act(x @ w1.T)
    L = loss(h @ w2.T, t)
    dlogits = loss.backward()
    dw2 = dlogits.T @ h
    dh = act.backward(dlogits @ w2)
    dw1 = dh.T @ x
    tw1, tw2 = torch.tensor(w1, requires_grad=True), torch.tensor(w2, requires_grad=True)
    tact = torch.nn.PReLU(6).double()
    tl = torch.nn.functional.cross_entropy(tact(torch.tensor(x) @ tw1.T) @ tw2.T, torch.tensor(t))
    tl.backward()
    assert float(L) == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(dw1, tw1.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dw2, tw2.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(act.weight_grad, tact.weight.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_layer_parameters_are_checked_at_construction():
    with pytest.raises(ValueError, match=r"fastact.nn.GELU\(\).*approximate"):
        fastact.nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match=r"CELU.*alpha"):
        fastact.nn.CELU(alpha=-1.0)
    with pytest.raises(ValueError, match=r"HuberLoss.*delta"):
        fastact.nn.HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match=r"Hardtanh"):
        fastact.nn.Hardtanh(2.0, 1.0)
    fastact.nn.Softmax(axis=3)  # the axis is the input's business
    fastact.nn.SwiGLU(axis=2, alpha=0.5)
