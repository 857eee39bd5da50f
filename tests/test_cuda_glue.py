"""The Python side of the losses on GPU arrays (fastact/cuda.py: argument handling, class axes, strides,
out=, results in the inputs' library), checked on any machine: fastact._cuda is replaced by a stand-in
whose "device" memory is host memory and whose launches run the CPU engine on the same arguments. What
comes back must be the CPU path's result, bit for bit; a wrong pointer, stride, axis or shape passed to a
launch shows as a difference. The kernels themselves are checked by the host emulation (ctest) and on a
GPU by tests/cuda."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import fastact
from fastact import _core, cuda, losses

_NAMES = {code: d["name"] for code, d in enumerate(_core._dtypes)}
_LOSS_OF_SUMMED = {o["summed"]: o for o in _core.ops() if o["kind"] == "loss"}


def _view(ptr, shape, strides, code):
    """A NumPy view of host memory at ptr (element strides)."""
    dtype = np.dtype(_NAMES[code]) if _NAMES[code] != "bfloat16" else np.dtype(np.uint16)
    shape = [int(n) for n in shape]
    if any(n == 0 for n in shape):
        return np.empty(shape, dtype)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    buf = (ctypes.c_char * ((hi - lo + 1) * dtype.itemsize)).from_address(ptr + lo * dtype.itemsize)
    base = np.frombuffer(buf, dtype=dtype)
    return np.lib.stride_tricks.as_strided(base[-lo:], shape, [s * dtype.itemsize for s in strides])


def _write(ptr, values, code):
    v = np.ascontiguousarray(losses._result(values, _NAMES[code]))
    ctypes.memmove(ptr, v.ctypes.data, v.nbytes)


class _Buffer:
    def __init__(self, nbytes, device):
        self._mem = np.zeros(max(int(nbytes), 1), np.uint8)
        self.ptr, self.nbytes, self.device = self._mem.ctypes.data, int(nbytes), device


class FakeCuda:
    """fastact._cuda's calls the losses make, on host memory, through the CPU engine."""

    Buffer = _Buffer
    launches = 0

    def device_count(self):
        return 1

    def unavailable_reason(self):
        return None

    def pointer_device(self, ptr):
        return 0

    def stream_wait(self, producer, consumer, device):
        pass

    def memcpy(self, dst, src, nbytes, kind, stream, device):
        ctypes.memmove(dst, src, nbytes)

    def copy(self, elsize, shape, out, a, stream, device):
        code = {2: "float16", 4: "float32", 8: "float64"}[elsize]
        c = list(_NAMES.values()).index(code)
        _view(out[0], shape, out[1], c)[...] = _view(a[0], shape, a[1], c)

    def elementwise(self, op, direction, code, shape, outs, ins, params, stream, device):
        FakeCuda.launches += 1
        n = len(next(o for o in _core.ops() if o["id"] == op)["params"])
        views = tuple(_view(p, shape, st, code) for p, st in ins)
        _core._loss(op, direction, 2, views, _view(outs[0][0], shape, outs[0][1], code), tuple(params[:n]),
                    params[-1] if direction else 1.0)

    def total(self, op, code, shape, ins, params, mean, out, stream, device):
        FakeCuda.launches += 1
        loss = _LOSS_OF_SUMMED[op]
        views = tuple(_view(p, shape, st, code) for p, st in ins)
        _write(out, _core._loss(loss["id"], 0, 0 if mean else 1, views, None, tuple(params[:len(loss["params"])]), 1.0),
               code)

    def cross_entropy(self, code, shape, x, target, weight, reduction, eps, z, nll, out, stream, device):
        FakeCuda.launches += 1
        _write(out, _core._cross_entropy(_view(x[0], shape, x[1], code), target, weight, reduction, eps, z, nll), code)

    def cross_entropy_backward(self, g, code, shape, x, target, weight, reduction, eps, z, out, nll, stream, device):
        FakeCuda.launches += 1
        _core._cross_entropy_backward(g, _view(x[0], shape, x[1], code), target, weight, reduction, eps, z,
                                      _view(out[0], shape, out[1], code), nll)

    def cross_entropy_probs(self, code, shape, x, p, weight, reduction, eps, z, out, stream, device):
        FakeCuda.launches += 1
        _write(out, _core._cross_entropy_probs(_view(x[0], shape, x[1], code), _view(p[0], shape, p[1], code), weight,
                                               reduction, eps, z), code)

    def cross_entropy_probs_backward(self, g, code, shape, x, p, weight, reduction, eps, z, out, stream, device):
        FakeCuda.launches += 1
        _core._cross_entropy_probs_backward(g, _view(x[0], shape, x[1], code), _view(p[0], shape, p[1], code), weight,
                                            reduction, eps, z, _view(out[0], shape, out[1], code))

    def logsumexp(self, code, shape, x, out, stream, device):
        FakeCuda.launches += 1
        _write(out, _core._logsumexp(_view(x[0], shape, x[1], code)), code)

    def loss_grad(self, code, shape, x, coef, out, stream, device):
        FakeCuda.launches += 1
        _core._logsumexp_backward(_view(x[0], shape, x[1], code), coef, _view(out[0], shape, out[1], code))


class HostGpuArray:
    """A "GPU array" over host memory (the stand-in's device memory), by __cuda_array_interface__."""

    def __init__(self, a):
        self.a = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                                         "strides": a.strides, "version": 3, "stream": None}

    @property
    def shape(self):
        return self.a.shape


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(cuda, "_cuda", FakeCuda())
    monkeypatch.setattr(cuda, "_ONES", {})  # (its constants live in the stand-in's memory)
    FakeCuda.launches = 0
    return FakeCuda


def host(r):
    return r.get() if isinstance(r, cuda.DeviceArray) else np.asarray(r)


def assert_same(got, want):
    got, want = host(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(f"u{got.dtype.itemsize}"), want.view(f"u{want.dtype.itemsize}"))


DTYPES = [np.float32, np.float64, np.float16]
POINTWISE = [o for o in _core.ops() if o["kind"] == "loss"]


@pytest.mark.parametrize("op", POINTWISE, ids=[o["name"] for o in POINTWISE])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pointwise_losses_through_the_gpu_path(fake_gpu, op, dtype, reduction):
    rng = np.random.default_rng(0)
    f, fb = getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")
    base = rng.uniform(-3, 3, (5, 12)).astype(dtype)
    x = base[:, ::2]  # strided
    t = rng.uniform(0, 1, (5, 6)).astype(dtype).T.copy().T  # Fortran order
    weights = [rng.uniform(0.5, 2, (6,)).astype(dtype) for _ in op["operand"].split()[2:]]
    if weights:
        weights[0] = weights[0][None, :].repeat(5, 0)  # one full, one broadcast
    want = f(x, t, *weights, reduction=reduction)
    got = f(HostGpuArray(x), HostGpuArray(t), *[HostGpuArray(w) for w in weights], reduction=reduction)
    assert isinstance(got, cuda.DeviceArray) and got.shape == np.shape(want)
    assert_same(got, want)
    g = rng.uniform(-1, 1, x.shape).astype(dtype) if reduction == "none" else 0.75
    want_b = fb(g, x, t, *weights, reduction=reduction)
    got_b = fb(HostGpuArray(g) if reduction == "none" else g, HostGpuArray(x), HostGpuArray(t),
               *[HostGpuArray(w) for w in weights], reduction=reduction)
    assert_same(got_b, want_b)
    out = np.full(x.shape, 7, dtype)  # out= on the "GPU": written in place, returned
    r = fb(HostGpuArray(g) if reduction == "none" else g, HostGpuArray(x), HostGpuArray(t),
           *[HostGpuArray(w) for w in weights], reduction=reduction, out=HostGpuArray(out))
    assert isinstance(r, HostGpuArray)
    assert_same(out, want_b)
    assert fake_gpu.launches == 3


def test_pointwise_loss_errors_on_the_gpu_path(fake_gpu):
    x = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="target has dtype float64; expected pred's dtype float32"):
        fastact.mse_loss(HostGpuArray(x), HostGpuArray(x.astype(np.float64)))
    with pytest.raises(ValueError, match="target has shape"):
        fastact.mse_loss(HostGpuArray(x), HostGpuArray(x[:, :2]))
    with pytest.raises(ValueError, match="weight has shape .* does not broadcast"):
        fastact.binary_cross_entropy_with_logits(HostGpuArray(x), HostGpuArray(x), HostGpuArray(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="out= is for reduction='none'"):
        fastact.mse_loss(HostGpuArray(x), HostGpuArray(x), out=HostGpuArray(x.copy()))
    with pytest.raises(ValueError, match="on the CPU but the other arguments are GPU arrays"):
        fastact.mse_loss(HostGpuArray(x), x)
    ro = HostGpuArray(x.copy())
    ro.__cuda_array_interface__["data"] = (ro.a.ctypes.data, True)
    with pytest.raises(ValueError, match="out is read-only"):
        fastact.mse_loss(HostGpuArray(x), HostGpuArray(x), reduction="none", out=ro)
    with pytest.raises(ValueError, match="share memory"):
        fastact.mse_loss(HostGpuArray(x), HostGpuArray(x), reduction="none",
                         out=HostGpuArray(np.broadcast_to(np.zeros(4, np.float32), (3, 4))))
    with pytest.raises(TypeError, match="grad_output has dtype float64; expected pred's dtype float32"):
        fastact.mse_loss_backward(HostGpuArray(x.astype(np.float64)), HostGpuArray(x), HostGpuArray(x), reduction="none")
    with pytest.raises(TypeError, match="weight has dtype bool"):
        fastact.binary_cross_entropy_with_logits(HostGpuArray(x), HostGpuArray(x), True)
    h = np.ones(3, np.float16)
    with pytest.raises(ValueError, match="weight holds a value too large for logits' dtype float16"):
        fastact.binary_cross_entropy_with_logits(HostGpuArray(h), HostGpuArray(h), 1e6)
    # a number weight takes x's dtype, as on the CPU
    assert_same(fastact.binary_cross_entropy_with_logits(HostGpuArray(h), HostGpuArray(h), 0.1, reduction="none"),
                fastact.binary_cross_entropy_with_logits(h, h, 0.1, reduction="none"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_class_losses_through_the_gpu_path(fake_gpu, dtype, reduction, axis):
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, (4, 7, 5)).astype(dtype)
    rows_shape = tuple(n for i, n in enumerate(x.shape) if i != axis % 3)
    k = x.shape[axis]
    t = rng.integers(0, k, rows_shape)
    t.reshape(-1)[::3] = -100
    w = rng.uniform(0.5, 2, k)
    for kw in [{}, {"weight": w, "label_smoothing": 0.2, "z_loss": 1e-2}]:
        want = fastact.cross_entropy(x, t, axis=axis, reduction=reduction, **kw)
        assert_same(fastact.cross_entropy(HostGpuArray(x), t, axis=axis, reduction=reduction, **kw), want)
        # targets and weights given as GPU arrays too (read on the host)
        kw_gpu = {**kw, "weight": HostGpuArray(w)} if "weight" in kw else kw
        assert_same(fastact.cross_entropy(HostGpuArray(x), HostGpuArray(t), axis=axis, reduction=reduction, **kw_gpu),
                    want)
        g = rng.uniform(0.5, 2, rows_shape) if reduction == "none" else 1.25
        want_b = fastact.cross_entropy_backward(g, x, t, axis=axis, reduction=reduction, **kw)
        assert_same(fastact.cross_entropy_backward(g, HostGpuArray(x), t, axis=axis, reduction=reduction, **kw), want_b)
        xi = x.copy()  # out=logits: the gradient over the logits
        r = fastact.cross_entropy_backward(HostGpuArray(g) if reduction == "none" else g, HostGpuArray(xi),
                                           HostGpuArray(t), axis=axis, reduction=reduction, out=HostGpuArray(xi), **kw)
        assert isinstance(r, HostGpuArray)
        assert_same(xi, want_b)
    p = np.asarray(fastact.softmax(rng.uniform(-2, 2, x.shape).astype(dtype), axis=axis))  # class probabilities
    p.reshape(-1)[::5] = 0
    for kw in [{}, {"weight": w, "label_smoothing": 0.2, "z_loss": 1e-2}]:
        want = fastact.cross_entropy(x, p, axis=axis, reduction=reduction, **kw)
        assert_same(fastact.cross_entropy(HostGpuArray(x), HostGpuArray(p), axis=axis, reduction=reduction, **kw), want)
        assert_same(fastact.cross_entropy(HostGpuArray(x), p, axis=axis, reduction=reduction, **kw), want)  # uploaded
        g = rng.uniform(0.5, 2, rows_shape) if reduction == "none" else 1.25
        want_b = fastact.cross_entropy_backward(g, x, p, axis=axis, reduction=reduction, **kw)
        xi = x.copy()
        fastact.cross_entropy_backward(g, HostGpuArray(xi), HostGpuArray(p), axis=axis, reduction=reduction,
                                       out=HostGpuArray(xi), **kw)
        assert_same(xi, want_b)
    lp = np.asarray(fastact.log_softmax(x, axis=axis))
    assert_same(fastact.nll_loss(HostGpuArray(lp), t, axis=axis, reduction=reduction),
                fastact.nll_loss(lp, t, axis=axis, reduction=reduction))
    g = rng.uniform(0.5, 2, rows_shape) if reduction == "none" else 1.25
    assert_same(fastact.nll_loss_backward(g, HostGpuArray(lp), t, axis=axis, reduction=reduction),
                fastact.nll_loss_backward(g, lp, t, axis=axis, reduction=reduction))


def test_class_loss_errors_on_the_gpu_path(fake_gpu):
    x = HostGpuArray(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"target 4 at index \(1,\) is not a class in \[0, 4\)"):
        fastact.cross_entropy(x, HostGpuArray(np.array([0, 4, 1])))
    with pytest.raises(TypeError, match="target .class probabilities. has dtype float64"):
        fastact.cross_entropy(x, HostGpuArray(np.zeros((3, 4), np.float64)))
    with pytest.raises(ValueError, match="out overlaps target"):
        p = np.zeros((3, 4), np.float32)
        fastact.cross_entropy_backward(1.0, x, HostGpuArray(p), out=HostGpuArray(p))
    with pytest.raises(ValueError, match="out overlaps logits without being logits"):
        a = np.zeros((3, 5), np.float32)
        fastact.cross_entropy_backward(1.0, HostGpuArray(a[:, :4]), np.zeros(3, np.int64), out=HostGpuArray(a[:, 1:]))
    with pytest.raises(ValueError, match="out must have the shape"):
        fastact.cross_entropy_backward(1.0, x, np.zeros(3, np.int64), out=HostGpuArray(np.zeros((3, 5), np.float32)))
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        fastact.cross_entropy_backward(np.ones(3), x, np.zeros(3, np.int64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), (2, 0), None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_through_the_gpu_path(fake_gpu, dtype, axis, keepdims):
    rng = np.random.default_rng(2)
    x = rng.uniform(-5, 5, (4, 6, 5)).astype(dtype)
    for xs in (x, x.transpose(1, 0, 2)):  # axes that merge in memory, and axes that do not
        want = fastact.logsumexp(xs, axis=axis, keepdims=keepdims)
        assert_same(fastact.logsumexp(HostGpuArray(xs), axis=axis, keepdims=keepdims), want)
        g = rng.uniform(0.5, 2, np.shape(want))
        want_b = fastact.logsumexp_backward(g, xs, axis=axis, keepdims=keepdims)
        assert_same(fastact.logsumexp_backward(g, HostGpuArray(xs), axis=axis, keepdims=keepdims), want_b)
        out = np.zeros_like(xs.T).T  # out with the other layout: written through a buffer where needed
        fastact.logsumexp_backward(HostGpuArray(g), HostGpuArray(xs), axis=axis, keepdims=keepdims,
                                   out=HostGpuArray(out))
        assert_same(out, want_b)
