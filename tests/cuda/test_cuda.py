"""The GPU suite (skipped without a usable GPU): every op x direction x dtype x layout on the GPU against
the CPU path -- float32 and float64 bit-identical, float16 / bfloat16 identical after rounding (the same
float32 result rounded once) -- plus streams, CuPy / __cuda_array_interface__ / DLPack / torch inputs and
DeviceArray round trips. Run it on a GPU machine: pip install --no-build-isolation . && pytest tests/cuda
"""
from __future__ import annotations

import numpy as np
import pytest

import fastact
from fastact import cuda
from conftest import BACKWARD_X_VARIANTS, BACKWARD_Y_VARIANTS, BROADCAST, ELEMENTWISE_VARIANTS, GATED, ROW

if not cuda.is_available():  # one skip for the module, not one per case
    pytest.skip(f"GPU suite: {cuda.unavailable_reason()}", allow_module_level=True)

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BF16 = None
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)] + ([BF16] if BF16 is not None else [])
DTYPE_IDS = [str(d) for d in DTYPES]


def host_values(dtype, shape, seed=0):
    """Ordinary values, special values and (for the 16-bit types) arbitrary bit patterns."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    x = rng.uniform(-12, 12, n)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-300, 30.0, -30.0, 88.5, -104.0]
    x[: min(n, len(specials))] = specials[: min(n, len(specials))]
    out = x.astype(dtype)
    if dtype.itemsize == 2 and n > 64:
        bits = out.view(np.uint16)
        bits[32:64] = rng.integers(0, 1 << 16, 32, dtype=np.uint16)
    return out.reshape(shape)


def assert_same(got, want):
    """Bit-identical, NaN where NaN (payloads aside)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    gn = np.isnan(got.astype(np.float64))
    wn = np.isnan(want.astype(np.float64))
    np.testing.assert_array_equal(gn, wn)
    bad = (got.view(u) != want.view(u)) & ~wn
    assert not bad.any(), f"{bad.sum()} elements differ, first at {np.argwhere(bad)[0]}: {got[bad][:4]} vs {want[bad][:4]}"


def call(op, direction, kw, *args, **extra):
    name = op["name"] + ("" if direction == "fwd" else "_backward")
    f = getattr(fastact, name)
    if direction == "x":
        return f(args[0], args[1], **kw, **extra)
    if direction == "y":
        return f(args[0], y=args[1], **kw, **extra)
    return f(args[0], **kw, **extra)


def inputs_for(op, direction, kw, dtype, shape):
    x = host_values(dtype, shape, 1)
    if direction == "fwd":
        return [x]
    g = host_values(dtype, shape, 2)
    b = x if direction == "x" else call(op, "fwd", kw, x)
    return [g, b]


CASES = ([pytest.param(o, kw, "fwd", id=f"{p.id}-fwd") for p in ELEMENTWISE_VARIANTS for o, kw in [p.values]]
         + [pytest.param(o, kw, "x", id=f"{p.id}-bwd_x") for p in BACKWARD_X_VARIANTS for o, kw in [p.values]]
         + [pytest.param(o, kw, "y", id=f"{p.id}-bwd_y") for p in BACKWARD_Y_VARIANTS for o, kw in [p.values]])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op,kw,direction", CASES)
@pytest.mark.parametrize("n", [1, 7, 4099, 1 << 20])
def test_elementwise_device_array_matches_cpu(op, kw, direction, dtype, n):
    host = inputs_for(op, direction, kw, dtype, (n,))
    want = call(op, direction, kw, *host)
    dev = [cuda.to_device(h) for h in host]
    got = call(op, direction, kw, *dev)
    assert isinstance(got, cuda.DeviceArray) and got.shape == (n,)
    assert_same(got.get(), want)
    out = cuda.DeviceArray((n,), dtype)  # out= and in place
    assert call(op, direction, kw, *dev, out=out) is out
    assert_same(out.get(), want)
    assert call(op, direction, kw, *dev, out=dev[0]) is dev[0]
    assert_same(dev[0].get(), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op,kw,direction", CASES)
def test_elementwise_torch_layouts(op, kw, direction, dtype):
    torch = pytest.importorskip("torch")
    host = inputs_for(op, direction, kw, dtype, (67, 130))

    def to_torch(h):
        t = torch.from_numpy(np.ascontiguousarray(h).view({2: np.int16, 4: np.int32, 8: np.int64}[h.itemsize])).cuda()
        return t.view({"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                       "bfloat16": torch.bfloat16}[str(dtype)])

    def to_host(t):
        return t.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]).cpu().numpy().view(dtype)

    views = [(lambda a: a, lambda t: t), (lambda a: a.T, lambda t: t.T),
             (lambda a: a[::2, 1::3], lambda t: t[::2, 1::3])]
    for np_view, torch_view in views:
        want = call(op, direction, kw, *[np_view(h) for h in host])
        tv = [torch_view(to_torch(h)) for h in host]
        got = call(op, direction, kw, *tv)
        assert isinstance(got, torch.Tensor) and got.device == tv[0].device
        assert_same(to_host(got), want)
        out = torch.empty_like(tv[0])
        assert call(op, direction, kw, *tv, out=out) is out
        assert_same(to_host(out), want)
    # partial overlap: out shifted by one element from the input (goes through a temporary)
    if direction == "fwd":
        h = host[0].ravel()
        t = to_torch(np.concatenate([h, h[:1]]))
        want = call(op, direction, kw, h)
        call(op, direction, kw, t[:-1], out=t[1:])
        assert_same(to_host(t[1:]), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", ROW, ids=[o["name"] for o in ROW])
@pytest.mark.parametrize("shape,axis", [((5, 1), -1), ((9, 31), -1), ((9, 32), -1), ((9, 33), -1),
                                        ((7, 1000), -1), ((3, 4099), -1), ((2, 1 << 18), -1),
                                        ((1100, 4100), -1), ((5000, 3), 0), ((1000, 7), 0), ((4, 5, 6), 1)])
def test_rows_match_cpu(op, dtype, shape, axis):
    x = host_values(dtype, shape, 3)
    x[np.isnan(x.astype(np.float64))] = 0  # keep most rows finite
    want = getattr(fastact, op["name"])(x, axis=axis)
    got = getattr(fastact, op["name"])(cuda.to_device(x), axis=axis)
    assert_same(got.get(), want)
    g = host_values(dtype, shape, 4)
    want_b = getattr(fastact, op["name"] + "_backward")(g, y=want, axis=axis)
    got_b = getattr(fastact, op["name"] + "_backward")(cuda.to_device(g), y=cuda.to_device(want), axis=axis)
    assert_same(got_b.get(), want_b)
    d = cuda.to_device(x)  # in place
    getattr(fastact, op["name"])(d, axis=axis, out=d)
    assert_same(d.get(), want)


def test_streams_and_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(1 << 22, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):  # the producer's current stream is used
        y = fastact.gelu(x)
    s.synchronize()
    assert_same(y.cpu().numpy(), fastact.gelu(x.cpu().numpy()))
    y2 = fastact.silu(x, stream=s)  # an explicit stream
    s.synchronize()
    assert_same(y2.cpu().numpy(), fastact.silu(x.cpu().numpy()))
    y3 = fastact.tanh(x, stream=s.cuda_stream)
    torch.cuda.synchronize()
    assert_same(y3.cpu().numpy(), fastact.tanh(x.cpu().numpy()))


def test_cupy_in_cupy_out_and_cai():
    cp = pytest.importorskip("cupy")
    x = cp.asarray(host_values(np.dtype(np.float32), (1000,)))
    y = fastact.sigmoid(x)
    assert isinstance(y, cp.ndarray)
    assert_same(cp.asnumpy(y), fastact.sigmoid(cp.asnumpy(x)))

    class Wrapper:  # only the protocol: the result is a DeviceArray
        def __init__(self, a):
            self.__cuda_array_interface__ = a.__cuda_array_interface__

    r = fastact.relu(Wrapper(x))
    assert isinstance(r, cuda.DeviceArray)
    rev = x[::-1]  # negative strides, through CAI
    assert_same(cp.asnumpy(fastact.gelu(rev)), fastact.gelu(cp.asnumpy(x)[::-1]))
    assert_same(r.get(), fastact.relu(cp.asnumpy(x)))
    assert_same(cp.asnumpy(cp.asarray(r)), r.get())  # CAI export, zero-copy
    ro = Wrapper(x)
    ro.__cuda_array_interface__ = dict(ro.__cuda_array_interface__, data=(x.data.ptr, True))
    with pytest.raises(ValueError, match="read-only"):
        fastact.relu(x, out=ro)


def test_device_array_round_trips():
    torch = pytest.importorskip("torch")
    h = host_values(np.dtype(np.float32), (3, 5))
    d = fastact.elu(cuda.to_device(h))
    t = torch.from_dlpack(d)
    assert t.device.type == "cuda" and tuple(t.shape) == (3, 5)
    assert_same(t.cpu().numpy(), fastact.elu(h))
    again = fastact.relu(d)  # a DeviceArray back into fastact
    assert_same(again.get(), fastact.relu(fastact.elu(h)))
    if BF16 is not None:
        b = cuda.to_device(h.astype(BF16))
        tb = torch.from_dlpack(fastact.tanh(b))
        assert tb.dtype == torch.bfloat16
        assert not hasattr(b, "__cuda_array_interface__")  # CAI cannot name bfloat16


def test_errors_on_gpu():
    d = cuda.to_device(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="on the CPU"):
        fastact.relu(d, out=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        fastact.relu(d, out=cuda.DeviceArray((4,), np.float64))
    with pytest.raises(ValueError, match="shape"):
        fastact.relu(d, out=cuda.DeviceArray((5,), np.float32))
    with pytest.raises(ValueError, match="axis"):
        fastact.softmax(d, axis=3)
    with pytest.raises(ValueError, match="alpha|positive|must"):
        fastact.elu_backward(d, y=d, alpha=-1.0)


def test_torch_tensors_are_read_directly():
    torch = pytest.importorskip("torch")
    x = torch.randn(3, 5, device="cuda", requires_grad=True)
    with pytest.raises(ValueError, match="requires grad.*detach"):
        fastact.gelu(x)
    assert_same(fastact.gelu(x.detach()).cpu().numpy(), fastact.gelu(x.detach().cpu().numpy()))
    with pytest.raises(TypeError, match="dtype"):
        fastact.relu(torch.zeros(4, device="cuda", dtype=torch.int32))
    out = torch.empty(3, 5, device="cuda", dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype"):
        fastact.relu(x.detach(), out=out)
    t = torch.randn(8, 6, device="cuda").t()[::2]  # a transposed, strided view
    assert_same(fastact.silu(t).cpu().numpy(), fastact.silu(t.cpu().numpy()))
    y = torch.empty_like(t)
    assert fastact.tanh(t, out=y) is y
    assert_same(y.cpu().numpy(), fastact.tanh(t.cpu().numpy()))


def test_torch_fast_path_edges():
    """Plain PyTorch calls take a short path (no out=, no stream=): layouts, rows, empties and its errors."""
    torch = pytest.importorskip("torch")
    base = torch.randn(1, 7, device="cuda")
    wide = base.expand(5, 7)  # a zero stride
    assert_same(fastact.gelu(wide).cpu().numpy(), fastact.gelu(np.ascontiguousarray(wide.cpu().numpy())))
    e = torch.empty(0, 3, device="cuda")
    assert tuple(fastact.relu(e).shape) == (0, 3)
    x = torch.randn(6, 33, device="cuda", dtype=torch.float64).t()  # rows along a strided axis
    for axis in (0, 1, -1):
        y = fastact.log_softmax(x, axis=axis)
        assert_same(y.cpu().numpy(), fastact.log_softmax(x.cpu().numpy(), axis=axis))
        g = torch.randn_like(x)
        assert_same(fastact.log_softmax_backward(g, y=y, axis=axis).cpu().numpy(),
                    fastact.log_softmax_backward(g.cpu().numpy(), y=y.cpu().numpy(), axis=axis))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        fastact.softmax(x, axis=2)
    with pytest.raises(ValueError, match="at least one dimension"):
        fastact.softmax(torch.tensor(1.0, device="cuda"))
    with pytest.raises(TypeError, match="one dtype"):
        fastact.relu_backward(x, x.float())
    with pytest.raises(ValueError, match="shape"):
        fastact.relu_backward(x, x[:1])


def test_hardening_on_the_gpu():
    """The hardening issue's checks, on the GPU path: an out= whose elements share memory is refused (not
    computed several times), parameters are checked in the compute type, DLPack imports follow the one
    path (legacy capsules read-only), and errors name the argument."""
    torch = pytest.importorskip("torch")
    t = torch.full((1,), 0.5, device="cuda").expand(2048)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.sigmoid(t, out=t)
    assert float(t[0]) == 0.5
    rows = torch.zeros(64, device="cuda").as_strided((8, 16), (4, 1))
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.relu(torch.ones(8, 16, device="cuda"), out=rows)
    x = torch.tensor([-1.0, -2.0], device="cuda")
    with pytest.raises(ValueError, match="elu: alpha must be a finite float32 number"):
        fastact.elu(x, alpha=1e39)  # the short path
    with pytest.raises(ValueError, match="elu_backward: alpha must be a finite float32 number"):
        fastact.elu_backward(x, x, alpha=1e39, out=torch.empty_like(x))  # the general path
    d = x.double()
    np.testing.assert_allclose(fastact.elu(d, alpha=1e39).cpu().numpy(), 1e39 * np.expm1([-1.0, -2.0]), rtol=1e-15)

    class Legacy:  # a CUDA producer that predates DLPack 1.0: its memory counts as read-only
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, stream=None, **kw):
            return self.t.__dlpack__(stream=stream)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    legacy = Legacy(torch.zeros(2, device="cuda"))
    assert_same(fastact.relu(Legacy(x)).get(), fastact.relu(x.cpu().numpy()))  # a DeviceArray result
    with pytest.raises(ValueError, match="out is read-only"):
        fastact.relu(x, out=legacy)


@pytest.mark.parametrize("op", GATED, ids=lambda o: o["name"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gated_match_cpu(op, dtype):
    """The GLU family on the GPU: both forms, forward and backward, in place, the CPU's bits."""
    f, fb = getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")
    x = host_values(dtype, (64, 130), seed=3)
    dy = host_values(dtype, (64, 65), seed=4)
    a, b = np.ascontiguousarray(x[:, :65]), np.ascontiguousarray(x[:, 65:])
    assert_same(f(cuda.to_device(x)).get(), f(x))
    assert_same(f(cuda.to_device(x.T.copy()), axis=0).get(), f(x.T.copy(), axis=0))
    assert_same(fb(cuda.to_device(dy), cuda.to_device(x)).get(), fb(dy, x))
    assert_same(f(cuda.to_device(a), cuda.to_device(b)).get(), f(a, b))
    ga, gb = fb(cuda.to_device(dy), cuda.to_device(a), cuda.to_device(b))
    wa, wb = fb(dy, a, b)
    assert_same(ga.get(), wa)
    assert_same(gb.get(), wb)
    da, db = cuda.to_device(a), cuda.to_device(b)
    fb(cuda.to_device(dy), da, db, out=(da, db))  # in place over gate and up
    assert_same(da.get(), wa)
    assert_same(db.get(), wb)


BROADCAST_CASES = [  # (x shape, weight shape, channel_axis): the summed axis innermost, a kept one, one value,
    ((8, 16, 33, 31), (16,), 1), ((64, 9000), (9000,), -1), ((4, 5, 6), (), 1), ((3, 4097), (3, 4097), None),
    ((2, 3, 20000), (3, 1), None), ((0, 7), (7,), -1)]  # nothing summed, several chunks, an empty sum


@pytest.mark.parametrize("op", BROADCAST, ids=lambda o: o["name"] + (f"-{o['activation']}" if o["activation"] else ""))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_broadcast_match_cpu(op, dtype):
    """prelu and bias_act on the GPU: forward, backward (grad_weight / grad_bias summed in the CPU's order:
    the same bits), in place; every weight form for prelu."""
    if op["activation"]:
        act = op["activation"]
        f = lambda x, w, **kw: fastact.bias_act(x, w, act, **kw)  # noqa: E731
        fb = lambda d, x, w, **kw: fastact.bias_act_backward(d, x, w, act, **kw)  # noqa: E731
        cases = [(s, s[-1:], -1) for s, _, _ in BROADCAST_CASES if len(s) > 1]
    else:
        f = lambda x, w, axis, **kw: fastact.prelu(x, w, axis, **kw)  # noqa: E731
        fb = lambda d, x, w, axis, **kw: fastact.prelu_backward(d, x, w, axis, **kw)  # noqa: E731
        cases = BROADCAST_CASES
    for xs, ws, axis in cases:
        x, dy = host_values(dtype, xs, 5), host_values(dtype, xs, 6)
        w = (np.random.default_rng(7).uniform(-0.5, 0.5, ws)).astype(dtype)
        extra = () if op["activation"] else (axis,)
        dx, dd, dw = cuda.to_device(x), cuda.to_device(dy), cuda.to_device(w)
        assert_same(f(dx, dw, *extra).get(), f(x, w, *extra))
        gx, gw = fb(dd, dx, dw, *extra)
        wx, ww = fb(dy, x, w, *extra)
        assert_same(gx.get(), wx)
        assert_same(gw.get(), ww)
        fb(dd, dx, dw, *extra, out=(dx, dw))  # in place over x and the weight
        assert_same(dx.get(), wx)
        assert_same(dw.get(), ww)


# ------------------------------------------------------------------------------------------- losses
LOSSES = [o for o in fastact._core.ops() if o["kind"] == "loss"]


def _loss_operands(op, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = host_values(dtype, shape, seed)
    t = (rng.uniform(0, 1, shape) if op["name"].startswith("binary") else rng.uniform(-12, 12, shape)).astype(dtype)
    ws = [rng.uniform(0.5, 2, shape[-1:]).astype(dtype) for _ in op["operand"].split()[2:]]
    return x, t, ws


@pytest.mark.parametrize("op", LOSSES, ids=[o["name"] for o in LOSSES])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pointwise_losses_match_cpu(op, dtype, reduction):
    """Every element-wise loss and its gradient on the GPU: the CPU's bits, the weights broadcast."""
    f, fb = getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")
    for shape in [(0,), (7,), (33, 257), (3, 5000)]:
        x, t, ws = _loss_operands(op, dtype, shape, len(shape))
        want = f(x, t, *ws, reduction=reduction)
        got = f(cuda.to_device(x), cuda.to_device(t), *[cuda.to_device(w) for w in ws], reduction=reduction)
        assert_same(got.get(), np.asarray(want))
        g = host_values(dtype, shape, 9) if reduction == "none" else 0.75
        want_b = fb(g, x, t, *ws, reduction=reduction)
        gd = cuda.to_device(g) if reduction == "none" else g
        got_b = fb(gd, cuda.to_device(x), cuda.to_device(t), *[cuda.to_device(w) for w in ws], reduction=reduction)
        assert_same(got_b.get(), want_b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_cpu(dtype, reduction):
    """cross_entropy and nll_loss with every option, forward and backward (in place too), class axis last
    and first, torch tensors in and out: the CPU's bits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for rows, classes in [(9, 1), (9, 33), (64, 4097), (3, 100_000)]:
        x = host_values(dtype, (rows, classes), classes)
        t = rng.integers(0, classes, rows)
        t[::4] = -100
        w = rng.uniform(0, 2, classes)
        for kw in [{}, {"weight": w, "label_smoothing": 0.1, "z_loss": 1e-3}]:
            want = fastact.cross_entropy(x, t, reduction=reduction, **kw)
            got = fastact.cross_entropy(cuda.to_device(x), t, reduction=reduction, **kw)
            assert_same(got.get(), np.asarray(want))
            g = rng.uniform(0.5, 2, rows) if reduction == "none" else 1.5
            want_b = fastact.cross_entropy_backward(g, x, t, reduction=reduction, **kw)
            xd = cuda.to_device(x)
            got_b = fastact.cross_entropy_backward(g, xd, t, reduction=reduction, out=xd, **kw)
            assert got_b is xd
            assert_same(xd.get(), want_b)
            xt = torch.from_numpy(np.ascontiguousarray(x.T)).cuda() if dtype != BF16 else None
            if xt is not None:  # the class axis first, from torch tensors: a torch result
                r = fastact.cross_entropy(xt, torch.from_numpy(t).cuda(), axis=0, reduction=reduction, **kw)
                assert isinstance(r, torch.Tensor) and r.is_cuda
                assert_same(r.cpu().numpy(), np.asarray(fastact.cross_entropy(x.T, t, axis=0, reduction=reduction, **kw)))
        lp = fastact.log_softmax(x)
        assert_same(fastact.nll_loss(cuda.to_device(lp), t, reduction=reduction).get(),
                    np.asarray(fastact.nll_loss(lp, t, reduction=reduction)))
        g = rng.uniform(0.5, 2, rows) if reduction == "none" else 1.5
        assert_same(fastact.nll_loss_backward(g, cuda.to_device(lp), t, reduction=reduction).get(),
                    fastact.nll_loss_backward(g, lp, t, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probabilities_match_cpu(dtype, reduction):
    rng = np.random.default_rng(2)
    for rows, classes in [(9, 1), (9, 33), (16, 40_000)]:
        x = host_values(dtype, (rows, classes), classes)
        p = np.asarray(fastact.softmax(rng.uniform(-3, 3, (rows, classes)).astype(dtype)))
        p[:, ::7] = 0
        kw = {"weight": rng.uniform(0, 2, classes), "label_smoothing": 0.1, "z_loss": 1e-3}
        want = fastact.cross_entropy(x, p, reduction=reduction, **kw)
        assert_same(fastact.cross_entropy(cuda.to_device(x), cuda.to_device(p), reduction=reduction, **kw).get(),
                    np.asarray(want))
        g = rng.uniform(0.5, 2, rows) if reduction == "none" else 1.5
        xd = cuda.to_device(x)
        fastact.cross_entropy_backward(g, xd, cuda.to_device(p), reduction=reduction, out=xd, **kw)
        assert_same(xd.get(), fastact.cross_entropy_backward(g, x, p, reduction=reduction, **kw))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_logsumexp_matches_cpu(dtype):
    x = host_values(dtype, (6, 7, 300), 3)
    for axis in [-1, 0, (0, 2), None]:
        assert_same(fastact.logsumexp(cuda.to_device(x), axis=axis).get(), np.asarray(fastact.logsumexp(x, axis=axis)))
        g = np.asarray(fastact.logsumexp(x, axis=axis)).astype(np.float64) * 0 + 0.5
        assert_same(fastact.logsumexp_backward(g, cuda.to_device(x), axis=axis).get(),
                    fastact.logsumexp_backward(g, x, axis=axis))

