"""Ops with a broadcast operand (registry kind "broadcast": prelu's weight, bias_act's bias), parametrized
from the registry: the bits of the unfused composition of fastact calls, gradients of the weight / bias
summed by the contract's fixed order (checked bit for bit against the rule written out here in NumPy, on
every ISA and thread count), float64 references, PyTorch's autograd where it is installed, every weight
form (one value, per channel along any axis, NumPy broadcasting), every layout, in place, and errors
that name the argument."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastact
from arrays import DTYPES, LAYOUTS, compute_type, ill_conditioned, laid_out, same, values
from conftest import BROADCAST, op_fn, required_params, variants

BIAS_ACTS = [o for o in BROADCAST if o["activation"]]
BIAS_VARIANTS = [pytest.param(o, kw, id=f"bias_act-{i}") for o in BIAS_ACTS
                 for i, kw in variants(dict(o, name=o["activation"]))]


# ---------------------------------------------------------------------------------------- the sum rule
def _kahan(s, comp, v):
    """One Kahan step of every lane, infinities kept (math/rows.h Kahan<V, true>)."""
    y = v - comp
    t = s + y
    c = (t - s) - y
    return t, np.where(t - t == 0, c, np.zeros_like(c))


def _tree(lanes):
    """The 32 lanes (axis 0) combined by math/rows.h's tree: two_sum heads, errors carried."""
    s = lanes
    h = s[:16] + s[16:]
    bb = h - s[:16]
    e = (s[:16] - (h - bb)) + (s[16:] - bb)
    s = h
    for w in (8, 4, 2, 1):
        h = s[:w] + s[w:2 * w]
        bb = h - s[:w]
        low = (s[:w] - (h - bb)) + (s[w:2 * w] - bb)
        e = (e[:w] + e[w:2 * w]) + low
        s = h
    total = s[0] + e[0]
    return np.where(s[0] - s[0] == 0, total, s[0])


def rule_sum(c):
    """The contract's sum of each column of c (L contributions x J reduced elements, in the compute type):
    chunks of 4,096 rows, each over 32 interleaved Kahan lanes (the last block padded with zeros) and the
    tree; the chunks' partials summed by the same lanes (partial q to lane q % 32, no padding) and tree."""
    L, J = c.shape
    ct = c.dtype
    parts = []
    with np.errstate(all="ignore"):
        for q0 in range(0, L, 4096):
            blk = c[q0:q0 + 4096]
            blk = np.concatenate([blk, np.zeros(((-blk.shape[0]) % 32, J), ct)])
            s, comp = np.zeros((32, J), ct), np.zeros((32, J), ct)
            for b in blk.reshape(-1, 32, J):
                s, comp = _kahan(s, comp, b)
            parts.append(_tree(s - comp))
        if len(parts) == 1:
            return parts[0]
        s, comp = np.zeros((32, J), ct), np.zeros((32, J), ct)
        for q, p in enumerate(parts):
            s[q % 32], comp[q % 32] = _kahan(s[q % 32], comp[q % 32], p)
        return _tree(s - comp)


def reduce_to(c, x_shape, w_shape):
    """The rule's sums of contributions c (x's shape) over the axes a weight of w_shape is broadcast along
    (NumPy alignment), in w's shape."""
    nd = len(x_shape)
    wfull = (1,) * (nd - len(w_shape)) + tuple(w_shape)
    red = [d for d in range(nd) if wfull[d] == 1]
    kept = [d for d in range(nd) if wfull[d] != 1]
    L = int(np.prod([x_shape[d] for d in red], dtype=np.int64))
    J = int(np.prod([x_shape[d] for d in kept], dtype=np.int64))
    if J == 0:
        return np.zeros(w_shape, c.dtype)
    if L == 0:
        return np.zeros(w_shape, c.dtype)
    return rule_sum(np.ascontiguousarray(c.transpose(red + kept)).reshape(L, J)).reshape(w_shape)


# ------------------------------------------------------------------------------- the compositions
def act_of(op, kw):
    act = next(o for o in fastact.ops() if o["name"] == op["activation"])
    return op_fn(act), op_fn(act, "_backward")


def composed_bias_act(op, kw, x, b, dy=None):
    """act(x + b) with x + b in the compute type, rounded once; backward (act_backward(dy, x + b), its
    rule-sum over the leading axes)."""
    f, fb = act_of(op, kw)
    ct = compute_type(x.dtype)
    with np.errstate(all="ignore"):
        z = x.astype(ct) + b.astype(ct)
        if dy is None:
            return f(z, **kw).astype(x.dtype)
        gx = fb(dy.astype(ct), z, **kw)
    return gx.astype(x.dtype), reduce_to(gx, x.shape, b.shape).astype(x.dtype)


def w_along(w, x_shape, channel_axis):
    """prelu's weight as an array that broadcasts against x (NumPy alignment)."""
    if channel_axis is None or w.size == 1:
        return w.reshape(()) if channel_axis is not None else w
    nd = len(x_shape)
    ax = channel_axis % nd
    return w.reshape((-1,) + (1,) * (nd - 1 - ax))


def composed_prelu(x, w, channel_axis, dy=None):
    ct = compute_type(x.dtype)
    wb = w_along(w, x.shape, channel_axis).astype(ct)
    xc = x.astype(ct)
    with np.errstate(all="ignore"):
        if dy is None:
            return np.where(xc > 0, xc, xc * wb).astype(x.dtype)
        d = dy.astype(ct)
        gx = np.where(xc > 0, d, np.where(np.isnan(xc), xc, d * wb))
        contrib = np.where(xc > 0, np.zeros_like(xc), d * xc)
    wshape = w_along(w, x.shape, channel_axis).shape
    return gx.astype(x.dtype), reduce_to(contrib, x.shape, wshape).reshape(w.shape).astype(x.dtype)


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("op,kw", BIAS_VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bias_act_is_the_composition_bit_for_bit(op, kw, dtype):
    act = op["activation"]
    for shape in [(7, 66), (3, 1, 50), (5000, 20), (9,)]:  # tails, a leading 1, two chunks of rows, 1-d
        x = values(shape, dtype, 1)
        b = values(shape[-1:], dtype, 2)
        dy = values(shape, dtype, 3)
        same(fastact.bias_act(x, b, act, **kw), composed_bias_act(op, kw, x, b))
        gx, gb = fastact.bias_act_backward(dy, x, b, act, **kw)
        wx, wb = composed_bias_act(op, kw, x, b, dy)
        same(gx, wx)
        same(gb, wb)


PRELU_CASES = [  # (x shape, weight shape, channel_axis)
    ((4, 3, 5, 6), (3,), 1), ((4, 3, 5, 6), (1,), 1), ((4, 3, 5, 6), (), 1), ((2, 5, 7, 3), (3,), -1),
    ((5000, 2), (2,), 1), ((3, 4097), (4097,), -1), ((9,), (9,), 0), ((2, 3, 4), (3, 1), None),
    ((2, 3, 4), (4,), None), ((2, 3, 4), (2, 3, 4), None), ((2, 3, 4), (1, 1, 1), None), ((6, 2, 4096), (2, 1), None),
]


@pytest.mark.parametrize("xs,ws,axis", PRELU_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prelu_is_the_composition_bit_for_bit(xs, ws, axis, dtype):
    x = values(xs, dtype, 4)
    w = values(ws, dtype, 5, specials=False) * dtype.type(0.1)
    dy = values(xs, dtype, 6)
    same(fastact.prelu(x, w, axis), composed_prelu(x, w, axis))
    gx, gw = fastact.prelu_backward(dy, x, w, axis)
    wx, ww = composed_prelu(x, w, axis, dy)
    same(gx, wx)
    same(gw, ww)
    assert gw.shape == w.shape


def test_every_isa_and_thread_count_gives_the_rule_bits(isa):
    """Both walks of the reduction engine (the summed axis innermost: prelu NCHW; kept innermost: bias,
    channels last), several chunks each, on this ISA and 1, 2 and 7 threads."""
    # ill-conditioned gradients: an order other than the rule's gives other bits (ordinary ones could not tell)
    x1, w1, d1 = values((4, 8, 64, 64), np.float32, 7), values((8,), np.float32, 8) * 0.1, ill_conditioned((4, 8, 64, 64), np.float32, 9)
    x2, b2, d2 = values((9000, 200), np.float32, 10), values((200,), np.float32, 11), ill_conditioned((9000, 200), np.float32, 12)
    x3, w3, d3 = values((16, 20, 20, 48), np.float64, 13), values((48,), np.float64, 14), ill_conditioned((16, 20, 20, 48), np.float64, 15)
    want = [composed_prelu(x1, w1, 1, d1), composed_bias_act(BIAS_ACTS[3], {}, x2, b2, d2),
            composed_prelu(x3, w3, -1, d3)]
    before = fastact.get_num_threads()
    try:
        for n in (1, 2, 7):
            fastact.set_num_threads(n)
            got = [fastact.prelu_backward(d1, x1, w1), fastact.bias_act_backward(d2, x2, b2, BIAS_ACTS[3]["activation"]),
                   fastact.prelu_backward(d3, x3, w3, channel_axis=-1)]
            for g, w in zip(got, want):
                same(g[0], w[0])
                same(g[1], w[1])
    finally:
        fastact.set_num_threads(before)


@pytest.mark.parametrize("op,kw", BIAS_VARIANTS)
def test_bias_act_float64_reference(op, kw):
    """float32 against float64 math: the forward within a few ulp, grad_bias within a few ulp of the sum of
    the magnitudes (a sum's conditioning)."""
    from reference import derivative, forward as ref_forward

    act = next(o for o in fastact.ops() if o["name"] == op["activation"])
    full = {q["name"]: kw.get(q["name"], q["choices"].split("|")[int(q["default"])] if q["choices"] else q["default"])
            for q in act["params"]}
    full = {k: (v if isinstance(v, str) else float(np.float32(v))) for k, v in full.items()}
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3000, 40)) * 3).astype(np.float32)
    b = (rng.standard_normal(40)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    z = (x + b).astype(np.float64)  # x + b rounded to float32, as the contract has it
    want = ref_forward(act["name"], z, **full)
    got = fastact.bias_act(x, b, act["name"], **kw).astype(np.float64)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-30)) < 4 * 2.0 ** -23
    gx, gb = fastact.bias_act_backward(dy, x, b, act["name"], **kw)
    g64 = dy.astype(np.float64) * derivative(act["name"], z, **full)
    assert np.all(np.abs(gx - g64) <= 1e-5 * np.abs(dy.astype(np.float64)) + 1e-30)
    mag = np.abs(g64).sum(axis=0)
    assert np.all(np.abs(gb - g64.sum(axis=0)) <= 8 * 2.0 ** -24 * mag + 1e-30), np.max(np.abs(gb - g64.sum(axis=0)) / mag)


def test_prelu_float64_reference():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 33, 31)).astype(np.float32)
    w = (rng.standard_normal(16) * 0.3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x64, w64, d64 = x.astype(np.float64), w.astype(np.float64)[:, None, None], dy.astype(np.float64)
    np.testing.assert_array_equal(fastact.prelu(x, w), np.where(x64 > 0, x64, x64 * w64).astype(np.float32))
    gx, gw = fastact.prelu_backward(dy, x, w)
    want = np.where(x64 > 0, 0, d64 * x64).sum(axis=(0, 2, 3))
    mag = np.abs(np.where(x64 > 0, 0, d64 * x64)).sum(axis=(0, 2, 3))
    assert np.all(np.abs(gw - want) <= 4 * 2.0 ** -24 * mag)
    np.testing.assert_allclose(gx, np.where(x64 > 0, d64, d64 * w64), rtol=2.0 ** -23)


def test_pytorch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5, 7, 3))
    dy = rng.standard_normal(x.shape)
    for w in (rng.standard_normal(5) * 0.2, np.array([0.25])):
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        y = F.prelu(tx, tw)
        y.backward(torch.tensor(dy))
        np.testing.assert_allclose(fastact.prelu(x, w), y.detach().numpy(), rtol=1e-15)
        gx, gw = fastact.prelu_backward(dy, x, w)
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-15)
        np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12)
    b = rng.standard_normal(3)
    for act, tf, kw in (("gelu", F.gelu, {}), ("silu", F.silu, {}), ("relu", F.relu, {}),
                        ("gelu", lambda t: F.gelu(t, approximate="tanh"), {"approximate": "tanh"}),
                        ("elu", lambda t: F.elu(t, alpha=0.5), {"alpha": 0.5}),
                        ("leaky_relu", lambda t: F.leaky_relu(t, 0.2), {"negative_slope": 0.2}),
                        ("sigmoid", torch.sigmoid, {}), ("tanh", torch.tanh, {})):
        tx, tb = torch.tensor(x, requires_grad=True), torch.tensor(b, requires_grad=True)
        y = tf(tx + tb)
        y.backward(torch.tensor(dy))
        atol = 1e-14 * np.max(np.abs(x)) ** 2  # PyTorch's float64 gelu: 1 + erf cancels (test_gated)
        np.testing.assert_allclose(fastact.bias_act(x, b, act, **kw), y.detach().numpy(), rtol=1e-13, atol=atol)
        gx, gb = fastact.bias_act_backward(dy, x, b, act, **kw)
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=atol * 4)
        np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-11, atol=atol * x.size)


def test_infinities_and_nan_in_the_gradients():
    x = np.array([[-1.0, 2.0], [-2.0, 3.0], [-1.0, 1.0]], np.float32)
    dy = np.array([[np.inf, 1.0], [1.0, 1.0], [1.0, 1.0]], np.float32)
    _, gw = fastact.prelu_backward(dy, x, np.float32([0.1, 0.2]), channel_axis=-1)
    assert gw[0] == -np.inf and gw[1] == 0  # an infinite sum stays infinite (not the compensation's NaN)
    dy[1, 0] = -np.inf  # -inf * -2 = +inf, plus -inf: NaN
    _, gw = fastact.prelu_backward(dy, x, np.float32([0.1, 0.2]), channel_axis=-1)
    assert np.isnan(gw[0])
    big = np.full((5000, 3), -1.0, np.float32)
    d = np.ones_like(big)
    d[4500, 1] = np.inf  # in the second chunk: the partials' sum keeps it
    d[10, 2] = np.nan
    _, gw = fastact.prelu_backward(d, big, np.float32([0.1, 0.2, 0.3]), channel_axis=-1)
    assert gw[0] == -5000 and gw[1] == -np.inf and np.isnan(gw[2])
    _, gb = fastact.bias_act_backward(np.full((3, 2), 3e38, np.float32), np.ones((3, 2), np.float32),
                                      np.zeros(2, np.float32), "relu")
    assert np.all(gb == np.inf)  # the sum overflows: inf, as the plain sum has it


def test_empty_sums_are_zero():
    gx, gb = fastact.bias_act_backward(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32),
                                       np.ones(4, np.float32), "gelu")
    assert gx.shape == (0, 4) and np.array_equal(gb, np.zeros(4, np.float32))
    gb[:] = 7
    fastact.bias_act_backward(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), np.ones(4, np.float32),
                              out=(None, gb))
    assert np.array_equal(gb, np.zeros(4, np.float32))
    gx, gw = fastact.prelu_backward(np.zeros((2, 0, 3), np.float32), np.zeros((2, 0, 3), np.float32),
                                    np.ones(1, np.float32))
    assert gw.shape == (1,) and gw[0] == 0
    _, gw = fastact.prelu_backward(np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32),
                                   np.ones(0, np.float32), channel_axis=-1)
    assert gw.shape == (0,)


@st.composite
def broadcast_calls(draw):
    op = draw(st.sampled_from(BROADCAST))
    dtype = draw(st.sampled_from(DTYPES))
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(0, 6)) for _ in range(nd))
    if op["activation"]:
        wshape, axis = shape[-1:], -1
    else:
        mode = draw(st.sampled_from(["one", "channel", "numpy"]))
        if mode == "one":
            wshape, axis = draw(st.sampled_from([(), (1,)])), draw(st.integers(-nd, nd - 1))
        elif mode == "channel":
            axis = draw(st.integers(-nd, nd - 1))
            wshape = (shape[axis],)
        else:
            k = draw(st.integers(0, nd))
            wshape = tuple(n if draw(st.booleans()) else 1 for n in shape[nd - k:])
            axis = None
    layouts = [draw(st.sampled_from(LAYOUTS)) for _ in range(4)]
    return op, dtype, shape, wshape, axis, layouts, draw(st.integers(0, 1000))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(broadcast_calls())
def test_any_layout_and_weight_form_gives_the_rule_bits(case):
    op, dtype, shape, wshape, axis, layouts, seed = case
    x, dy = values(shape, dtype, seed), values(shape, dtype, seed + 1)
    w = values(wshape, dtype, seed + 2, specials=False)
    lx, ldy, lw = laid_out(x, layouts[0]), laid_out(dy, layouts[1]), laid_out(w, layouts[2])
    if op["activation"]:
        act, req = op["activation"], required_params(op)
        same(fastact.bias_act(lx, lw, act, **req), composed_bias_act(op, req, x, w))
        gx, gw = fastact.bias_act_backward(ldy, lx, lw, act, **req)
        wx, ww = composed_bias_act(op, req, x, w, dy)
    else:
        same(fastact.prelu(lx, lw, axis), composed_prelu(x, w, axis))
        gx, gw = fastact.prelu_backward(ldy, lx, lw, axis)
        wx, ww = composed_prelu(x, w, axis, dy)
    same(gx, wx)
    same(gw, ww)


def test_in_place_and_overlapping_outputs():
    x = values((6, 4, 20), np.float32, 21)
    w = values((4,), np.float32, 22, specials=False)
    dy = values((6, 4, 20), np.float32, 23)
    want_y, (want_gx, want_gw) = fastact.prelu(x, w), fastact.prelu_backward(dy, x, w)
    xs = x.copy()
    assert fastact.prelu(xs, w, out=xs) is xs
    same(xs, want_y)
    xs, ws = x.copy(), w.copy()
    r = fastact.prelu_backward(dy, xs, ws, out=(xs, ws))  # grad_x over x, grad_weight over weight
    assert r[0] is xs and r[1] is ws
    same(xs, want_gx)
    same(ws, want_gw)
    ds = dy.copy()
    same(fastact.prelu_backward(ds, x, w, out=(ds, None))[0], want_gx)  # over grad_output
    same(ds, want_gx)
    buf = np.zeros(x.size + 1, np.float32)  # out one element past the input: a temporary keeps it right
    buf[:-1] = x.reshape(-1)
    got = fastact.prelu_backward(dy, buf[:-1].reshape(x.shape), w, out=(buf[1:].reshape(x.shape), None))[0]
    same(got, want_gx)
    full = values((6, 4, 20), np.float32, 24, specials=False)  # a full-shape weight, grad over it
    want = fastact.prelu_backward(dy, x, full, channel_axis=None)
    fs = full.copy()
    r = fastact.prelu_backward(dy, x, fs, channel_axis=None, out=(None, fs))
    same(fs, want[1])
    same(r[0], want[0])
    b = values((20,), np.float32, 25)
    want_b = fastact.bias_act_backward(dy, x, b, "silu")
    bs, xs = b.copy(), x.copy()
    r = fastact.bias_act_backward(dy, xs, bs, "silu", out=(xs, bs))
    same(r[0], want_b[0])
    same(r[1], want_b[1])
    g = np.zeros(20, np.float32)
    shared = np.zeros_like(x)
    with pytest.raises(ValueError, match="out's two arrays share memory"):
        fastact.bias_act_backward(dy, x, b, out=(shared, shared[0, 0]))
    gx = np.zeros_like(x)
    fastact.bias_act_backward(dy, x, b, "silu", out=(gx, g))
    same(gx, want_b[0])
    same(g, want_b[1])


def test_errors_name_the_argument():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(4,\) does not fit x of shape \(2, 3, 4\): its "
                                         r"length must be x's 3 channels along channel_axis 1"):
        fastact.prelu(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"prelu: weight .* channel_axis 3 is out of range"):
        fastact.prelu(x, np.zeros(3, np.float32), channel_axis=3)
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(3, 1\) .* with channel_axis given, weight is one"):
        fastact.prelu(x, np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(5, 1\) .* its dimension 0 must be 1 or x's 3"):
        fastact.prelu(x, np.zeros((5, 1), np.float32), channel_axis=None)
    with pytest.raises(ValueError, match=r"prelu: weight .* more dimensions than x"):
        fastact.prelu(x, np.zeros((1, 2, 3, 4), np.float32), channel_axis=None)
    with pytest.raises(TypeError, match=r"prelu: channel_axis must be an int"):
        fastact.prelu(x, np.zeros(3, np.float32), channel_axis=1.0)
    with pytest.raises(TypeError, match=r"prelu: weight has dtype float64 but x has float32"):
        fastact.prelu(x, np.zeros(3, np.float64))
    with pytest.raises(ValueError, match=r"prelu_backward: grad_output must have the shape of x"):
        fastact.prelu_backward(np.zeros((2, 3), np.float32), x, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match=r"prelu_backward: out must be a tuple \(grad_x, grad_weight\)"):
        fastact.prelu_backward(x, x, np.zeros(3, np.float32), out=x)
    with pytest.raises(ValueError, match=r"prelu_backward: out must have the shape of weight"):
        fastact.prelu_backward(x, x, np.zeros(3, np.float32), out=(None, np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match=r"prelu: out must be an array, got a tuple"):
        fastact.prelu(x, np.zeros(3, np.float32), out=(x,))
    with pytest.raises(ValueError, match=r"bias_act: bias of shape \(3,\) does not fit x of shape \(2, 3, 4\): its "
                                         r"length must be x's last dimension, 4"):
        fastact.bias_act(x, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"bias_act: bias of shape \(1, 4\) .* bias must be 1-d"):
        fastact.bias_act(x, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"bias_act: activation must be one of \[.*'gelu'.*\], got 'softmax'"):
        fastact.bias_act(x, np.zeros(4, np.float32), "softmax")
    with pytest.raises(TypeError, match=r"bias_act_backward: gelu takes no parameter 'alpha' \(its parameters: "
                                        r"approximate\)"):
        fastact.bias_act_backward(x, x, np.zeros(4, np.float32), alpha=1.0)
    with pytest.raises(ValueError, match=r"bias_act: approximate must be one of"):
        fastact.bias_act(x, np.zeros(4, np.float32), approximate="fast")
    with pytest.raises(ValueError, match=r"bias_act: alpha must be a finite number"):
        fastact.bias_act(x, np.zeros(4, np.float32), "elu", alpha=np.inf)


def test_lists_scalars_and_dlpack():
    x = [[-1.0, 2.0], [3.0, -4.0]]
    np.testing.assert_array_equal(fastact.prelu(x, 0.5), [[-0.5, 2.0], [3.0, -2.0]])  # float64 from lists
    torch = pytest.importorskip("torch")
    tx, tw = torch.tensor(x, dtype=torch.float32), torch.tensor([0.5, 0.25])
    out = torch.empty(2, 2)
    assert fastact.prelu(tx, tw, out=out) is out
    np.testing.assert_array_equal(out.numpy(), [[-0.5, 2.0], [3.0, -1.0]])
    gx, gw = torch.empty(2, 2), torch.empty(2)
    r = fastact.prelu_backward(torch.ones(2, 2), tx, tw, out=(gx, gw))
    assert r[0] is gx and r[1] is gw
    np.testing.assert_array_equal(gw.numpy(), [-1.0, -4.0])


# ------------------------------------------------------------------ regressions (an adversarial probe)
def test_a_zero_d_weight_with_out_is_read_right():
    """A 0-d weight (a Python float, a NumPy scalar) with out=: the overlap check once read strides the
    weight does not have (a crash)."""
    x = values((3, 8), np.float32, 31, specials=False)
    dy = values((3, 8), np.float32, 32, specials=False)
    want = fastact.prelu(x, np.float32([0.25]))
    xs = x.copy()
    assert fastact.prelu(xs, 0.25, out=xs) is xs
    same(xs, want)
    same(fastact.bias_act(x, np.float32(0.5), "relu", out=np.empty_like(x)), fastact.bias_act(x, np.float32([0.5]), "relu"))
    gx = np.empty_like(x)
    want_gx, want_gw = fastact.prelu_backward(dy, x, np.float32([0.25]))
    r = fastact.prelu_backward(dy, x, np.float32(0.25), out=(gx, None))
    same(r[0], want_gx)
    assert r[1].shape == () and r[1] == want_gw[0]


def test_outputs_partly_over_the_weight_or_the_inputs_go_through_a_temporary():
    rng = np.random.default_rng(0)
    x = -np.abs(rng.standard_normal((2, 2048))).astype(np.float32)
    dy = rng.standard_normal((2, 2048)).astype(np.float32)
    w = np.full(2048, 0.25, np.float32)
    want_gx, want_gw = fastact.prelu_backward(dy, x.copy(), w)
    xs = x.copy()
    gw = xs.reshape(-1)[1:1 + 2 * 2048:2]  # grad_weight over every other element of x
    gx, _ = fastact.prelu_backward(dy, xs, w, out=(None, gw))
    same(gw, want_gw)
    same(gx, want_gx)
    ds = dy.copy()
    b = rng.standard_normal(2048).astype(np.float32)
    want_gx, want_gb = fastact.bias_act_backward(dy, x, b, "silu")
    gb = ds.reshape(-1)[1:1 + 2 * 2048:2]  # grad_bias over every other element of grad_output
    gx, _ = fastact.bias_act_backward(ds, x, b, "silu", out=(None, gb))
    same(gb, want_gb)
    same(gx, want_gx)
    for axis, f in ((-1, lambda a, w, out: fastact.prelu(a, w, -1, out=out)),
                    (None, lambda a, w, out: fastact.prelu(a, w, None, out=out)),
                    (-1, lambda a, w, out: fastact.bias_act(a, w, "relu", out=out)),
                    (-1, lambda a, w, out: fastact.prelu_backward(dy[:, :16], a, w, -1, out=(out, None))[0]),
                    (-1, lambda a, w, out: fastact.bias_act_backward(dy[:, :16], a, w, "relu", out=(out, None))[0])):
        buf = np.zeros(2 * 16 + 2, np.float32)  # out two elements past the weight: the weight's tail in out
        out, wb = buf[2:].reshape(2, 16), buf[:16]
        wb[:] = np.linspace(0.1, 0.4, 16, dtype=np.float32)
        a = x[:, :16] * 3 - 1
        want = f(a, wb.copy(), np.empty((2, 16), np.float32))
        f(a, wb, out)
        same(out, want)


def test_a_gpu_out_with_cpu_inputs_names_out():
    class FakeGpu:
        __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (1 << 40, False), "version": 3}

    x = np.zeros(3, np.float32)
    for call in (lambda: fastact.prelu(x, 0.25, out=FakeGpu()),
                 lambda: fastact.bias_act_backward(x, x, x, out=(None, FakeGpu()))):
        with pytest.raises(ValueError, match=r"on the CPU but the other arguments are GPU arrays"):  # as relu's
            call()


def test_channel_axis_and_x_are_checked_whatever_the_weight():
    x = np.zeros((2, 3), np.float32)
    for axis in (99, -4, 2):
        with pytest.raises(ValueError, match=rf"prelu: .*channel_axis {axis} is out of range"):
            fastact.prelu(x, np.float32([0.5]), channel_axis=axis)
    with pytest.raises(ValueError, match=r"prelu_backward: .*channel_axis 3 is out of range"):
        fastact.prelu_backward(x, x, 0.5, channel_axis=3)
    for bad in (np.array([1]), np.array(1.0)):
        with pytest.raises(TypeError, match=r"prelu: channel_axis must be an int"):
            fastact.prelu(x, np.zeros(3, np.float32), channel_axis=bad)
    with pytest.raises(TypeError, match=r"softmax: axis must be an int"):
        fastact.softmax(x, axis=np.array([1]))
    np.testing.assert_array_equal(fastact.prelu(np.float32([-2, 2]), 0.25), [-0.5, 2])  # 1-d: one channel
    np.testing.assert_array_equal(fastact.prelu(np.float32(-2), np.float32([0.25])), -0.5)
    with pytest.raises(ValueError, match=r"prelu: .*channel_axis 2 is out of range"):
        fastact.prelu(np.float32([-2, 2]), 0.25, channel_axis=2)
    with pytest.raises(ValueError, match=r"prelu: weight 100000.0 does not fit x's dtype float16"):
        fastact.prelu(np.float16([1]), 1e5)
    with pytest.raises(ValueError, match=r"bias_act: x must have at least one dimension"):
        fastact.bias_act(np.float32(1.0), np.float32([0.5]))
    with pytest.raises(ValueError, match=r"bias_act_backward: x must have at least one dimension"):
        fastact.bias_act_backward(np.float32(1.0), np.float32(1.0), np.float32([0.5]))
