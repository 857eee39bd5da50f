"""The GLU family (registry kind "gated"), parametrized from the registry: the bits of the unfused
composition of fastact calls (the activation's forward and backward, one product, rounded once to the
storage type), float64 references, PyTorch's autograd where it is installed, both forms and every
layout (the split along every axis, strided, negative and zero strides, in place, out= overlapping an
input or itself), threads, and errors that name the argument."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastact
from arrays import DTYPES, LAYOUTS, compute_type, laid_out, same, values
from conftest import GATED, variants, op_fn

GATED_VARIANTS = [pytest.param(o, kw, id=i) for o in GATED for i, kw in variants(o)]


def activation(op, kw):
    """The unary op this gated op applies, and its keyword arguments (the gated op's, by position)."""
    act = next(o for o in fastact.ops() if o["name"] == op["activation"])
    names = [p["name"] for p in op["params"]]
    return act, {a["name"]: kw[n] for a, n in zip(act["params"], names) if n in kw}


def composed(op, kw, a, b, dy=None):
    """The unfused composition, in the compute type, rounded once to a's dtype: forward act(a) * b (or
    a * act(b)); backward (act_backward(dy * b, a), dy * act(a)) or the mirror for the second half."""
    act, akw = activation(op, kw)
    f, fb = op_fn(act), op_fn(act, "_backward")
    ct = compute_type(a.dtype)
    a, b = a.astype(ct), b.astype(ct)
    second = op["gate"] == "second"
    with np.errstate(all="ignore"):
        if dy is None:
            y = a * f(b, **akw) if second else f(a, **akw) * b
            return y
        dy = dy.astype(ct)
        if second:
            return dy * f(b, **akw), fb(dy * a, b, **akw)
        return fb(dy * b, a, **akw), dy * f(a, **akw)


@pytest.mark.parametrize("op,kw", GATED_VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_the_bits_of_the_unfused_composition(op, kw, dtype):
    f, fb = op_fn(op), op_fn(op, "_backward")
    for shape in [(7, 66), (3, 1, 5000)]:  # tails and a size the threads split
        x = values(shape, dtype, 1)
        a, b = np.split(x, 2, axis=-1)
        dy = values(a.shape, dtype, 2)
        same(f(x, **kw), composed(op, kw, a, b).astype(dtype))
        same(f(a, b, **kw), composed(op, kw, a, b).astype(dtype))
        ga, gb = fb(dy, a, b, **kw)
        wa, wb = composed(op, kw, a, b, dy)
        same(ga, wa.astype(dtype))
        same(gb, wb.astype(dtype))
        same(fb(dy, x, **kw), np.concatenate([wa, wb], axis=-1).astype(dtype))


@pytest.mark.parametrize("op,kw", GATED_VARIANTS)
def test_float64_reference(op, kw):
    """Against float64 math (the activation's float64 reference): float32 within a few ulp."""
    from reference import derivative, forward as ref_forward

    def ref_backward(name, dy, x, **p):
        return dy * derivative(name, x, **p)

    act, akw = activation(op, kw)
    rng = np.random.default_rng(3)  # ordinary values (the specials: the bits test above)
    x = (rng.standard_normal((64, 200)) * 4).astype(np.float32)
    a, b = np.split(x, 2, axis=-1)
    dy = rng.standard_normal(a.shape).astype(np.float32)
    p = {k: (v if isinstance(v, str) else float(np.float32(v))) for k, v in akw.items()}
    full = {q["name"]: p.get(q["name"], q["choices"].split("|")[int(q["default"])] if q["choices"] else q["default"])
            for q in act["params"]}
    a64, b64, dy64 = a.astype(np.float64), b.astype(np.float64), dy.astype(np.float64)
    second = op["gate"] == "second"
    want = a64 * ref_forward(act["name"], b64, **full) if second else ref_forward(act["name"], a64, **full) * b64
    got = op_fn(op)(x, **kw).astype(np.float64)
    scale = np.maximum(np.abs(want), 1e-30)
    assert np.max(np.abs(got - want) / scale) < 4 * 2.0 ** -23, op["name"]
    ga, gb = op_fn(op, "_backward")(dy, a, b, **kw)
    if second:
        wa, wb = dy64 * ref_forward(act["name"], b64, **full), ref_backward(act["name"], dy64 * a64, b64, **full)
    else:
        wa, wb = ref_backward(act["name"], dy64 * b64, a64, **full), dy64 * ref_forward(act["name"], a64, **full)
    for g, w in ((ga, wa), (gb, wb)):
        err = np.abs(g.astype(np.float64) - w)
        assert np.all(err <= 1e-5 * np.maximum(np.abs(w), np.abs(dy64 * np.maximum(np.abs(a64), np.abs(b64))) + 1e-30))


@pytest.mark.parametrize("op,kw", GATED_VARIANTS)
def test_pytorch_autograd(op, kw):
    torch = pytest.importorskip("torch")
    import reference as R

    F = torch.nn.functional
    act, akw = activation(op, kw)
    torch_act = R.torch_forward(act["name"])  # the activation's PyTorch counterpart, from its references
    x = np.random.default_rng(5).standard_normal((16, 64)).astype(np.float64) * 3
    a, b = np.split(x, 2, axis=-1)
    dy = np.random.default_rng(6).standard_normal(a.shape)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y = ta * torch_act(tb, akw) if op["gate"] == "second" else torch_act(ta, akw) * tb
    y.backward(torch.tensor(dy))
    # PyTorch's float64 gelu is 0.5 x (1 + erf(x / sqrt 2)): 1 + erf cancels for negative x, an absolute
    # error of about 1e-16 |x| (fastact's erfc form has none): the tolerance is absolute there
    atol = 1e-14 * np.max(np.abs(x)) ** 2
    np.testing.assert_allclose(op_fn(op)(a, b, **kw), y.detach().numpy(), rtol=1e-13, atol=atol)
    ga, gb = op_fn(op, "_backward")(dy, a, b, **kw)
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-12, atol=atol * np.max(np.abs(dy)))
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12, atol=atol * np.max(np.abs(dy)))
    if op["name"] == "glu":  # PyTorch's own glu splits the same way
        np.testing.assert_allclose(fastact.glu(x, axis=-1), F.glu(torch.tensor(x), dim=-1).numpy(), rtol=1e-15)


@pytest.mark.parametrize("op", GATED, ids=lambda o: o["name"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_the_split_along_every_axis_and_every_layout(op, dtype):
    f, fb = op_fn(op), op_fn(op, "_backward")
    x = values((4, 6, 8), dtype, 7)
    for axis in (0, 1, 2, -1, -2, -3):
        a, b = np.split(x, 2, axis=axis)
        want = f(np.ascontiguousarray(a), np.ascontiguousarray(b))
        same(f(x, axis=axis), want)
        same(f(np.asfortranarray(x), axis=axis), want)
        rev = x[::-1, :, ::-1].copy()[::-1, :, ::-1]  # negative strides, the same values
        same(f(rev, axis=axis), want)
        dy = values(a.shape, dtype, 8)
        same(fb(dy, x, axis=axis), np.concatenate(fb(dy, np.ascontiguousarray(a), np.ascontiguousarray(b)), axis=axis))
    big = np.zeros((8, 12, 16), dtype)
    big[::2, ::2, ::2] = x
    v = big[::2, ::2, ::2]  # gapped strides
    same(f(v), f(x))
    up = np.broadcast_to(values((1, 8), dtype, 9), (5, 8))  # a zero stride (read only)
    gate = values((5, 8), dtype, 10)
    same(f(gate, up), f(gate, np.ascontiguousarray(up)))


@pytest.mark.parametrize("op", GATED, ids=lambda o: o["name"])
def test_in_place_and_overlapping_outputs(op):
    f, fb = op_fn(op), op_fn(op, "_backward")
    x = values((6, 20), np.float32, 11)
    a, b = np.ascontiguousarray(x[:, :10]), np.ascontiguousarray(x[:, 10:])
    dy = values((6, 10), np.float32, 12)
    want_y, (want_a, want_b), want_x = f(a, b), fb(dy, a, b), fb(dy, x)
    g = a.copy()
    assert f(g, b, out=g) is g  # forward over the gate
    same(g, want_y)
    a2, b2 = a.copy(), b.copy()
    r = fb(dy, a2, b2, out=(a2, b2))  # (grad_gate, grad_up) over (gate, up)
    assert r[0] is a2 and r[1] is b2
    same(a2, want_a)
    same(b2, want_b)
    a3 = a.copy()
    ga, gb = fb(dy, a3, b, out=(None, a3))  # grad_up over the gate: a temporary keeps it right
    same(gb, want_b)
    same(ga, want_a)
    xs = x.copy()
    assert fb(dy, xs, out=xs) is xs  # grad_x over x
    same(xs, want_x)
    buf = np.zeros(6 * 20 + 1, np.float32)  # out one element past the input: a temporary keeps it right
    buf[:-1] = x.reshape(-1)
    got = fb(dy, buf[:-1].reshape(6, 20), out=buf[1:].reshape(6, 20))
    same(got, want_x)
    halves = x.copy()  # the two halves of one array as (gate, up): interleaved, not shared
    h1, h2 = halves[:, :10], halves[:, 10:]
    same(f(h1, h2), want_y)
    fb(dy, h1, h2, out=(h1, h2))
    same(halves, np.concatenate([want_a, want_b], axis=1))
    with pytest.raises(ValueError, match="out's two arrays share memory"):
        fb(dy, a, b, out=(a2, a2))


@pytest.mark.parametrize("op", GATED, ids=lambda o: o["name"])
def test_errors_name_the_argument(op):
    f, fb = op_fn(op), op_fn(op, "_backward")
    name = op["name"]
    with pytest.raises(ValueError, match=rf"{name}: x has length 7 along axis -1, which cannot be split in halves"):
        f(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: x has length 3 along axis 0"):
        f(np.zeros((3, 8), np.float32), axis=0)
    with pytest.raises(ValueError, match=rf"{name}: up must have the shape of gate"):
        f(np.zeros(4, np.float32), np.zeros(5, np.float32))
    with pytest.raises(TypeError, match=rf"{name}: up has dtype float64 but gate has float32"):
        f(np.zeros(4, np.float32), np.zeros(4, np.float64))
    with pytest.raises(ValueError, match=rf"{name}_backward: grad_output must have the shape of x with its axis halved"):
        fb(np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32))
    with pytest.raises(TypeError, match=rf"{name}_backward: out must be a tuple \(grad_gate, grad_up\)"):
        fb(np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32), out=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match=rf"{name}_backward: out must be one array of x's shape"):
        fb(np.zeros(2, np.float32), np.zeros(4, np.float32), out=(None, None))
    with pytest.raises(ValueError, match=rf"{name}: out must have the shape of x with its axis halved"):
        f(np.zeros(8, np.float32), out=np.zeros(8, np.float32))


@pytest.mark.parametrize("op", GATED, ids=lambda o: o["name"])
def test_results_do_not_depend_on_the_thread_count(op):
    f, fb = op_fn(op), op_fn(op, "_backward")
    x = values((256, 2048), np.float32, 13)
    dy = values((256, 1024), np.float32, 14)
    before = fastact.get_num_threads()
    try:
        res = []
        for n in (1, 2, 7):
            fastact.set_num_threads(n)
            res.append((f(x), fb(dy, x)))
    finally:
        fastact.set_num_threads(before)
    for y, g in res[1:]:
        same(y, res[0][0])
        same(g, res[0][1])


@st.composite
def gated_calls(draw):
    op = draw(st.sampled_from(GATED))
    dtype = draw(st.sampled_from(DTYPES))
    nd = draw(st.integers(1, 3))
    shape = [draw(st.integers(0, 5)) for _ in range(nd)]
    axis = draw(st.integers(-nd, nd - 1))
    shape[axis] *= 2
    backward = draw(st.booleans())
    split = draw(st.booleans())
    layout = draw(st.sampled_from(LAYOUTS))
    return op, dtype, tuple(shape), axis, backward, split, layout, draw(st.integers(0, 1000))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(gated_calls())
def test_any_layout_is_the_contiguous_call(case):
    op, dtype, shape, axis, backward, split, layout, seed = case
    f, fb = op_fn(op), op_fn(op, "_backward")
    x = values(shape, dtype, seed)
    a, b = (np.ascontiguousarray(h) for h in np.split(x, 2, axis=axis))
    dy = values(a.shape, dtype, seed + 1)
    if not backward:
        want = f(a, b)
        got = f(laid_out(x, layout), axis=axis) if split else f(laid_out(a, layout), laid_out(b, layout))
        same(got, want)
    elif split:
        same(fb(laid_out(dy, layout), laid_out(x, layout), axis=axis), np.concatenate(fb(dy, a, b), axis=axis))
    else:
        for g, w in zip(fb(laid_out(dy, layout), laid_out(a, layout), laid_out(b, layout)), fb(dy, a, b)):
            same(g, w)
