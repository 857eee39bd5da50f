"""GPU dispatch, checked on any machine: what a GPU array meets when there is no GPU (or no CUDA
build), mixing devices, stream=, the parsing of __cuda_array_interface__, and the CUDA module's
import without a driver. The GPU itself is tested in tests/cuda/ (skipped without one)."""
from __future__ import annotations

import inspect
import io

import numpy as np
import pytest

import fastact
from fastact import cuda
from conftest import op_fn

GPU = cuda.is_available()


class FakeCAI:
    """A GPU array as far as the protocol goes (its pointer is never dereferenced)."""

    def __init__(self, shape=(3,), typestr="<f4", strides=None, mask=None, ptr=0x7000_0000, stream=None):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (ptr, False),
                                         "strides": strides, "version": 3, "mask": mask, "stream": stream}


class FakeCudaDLPack:
    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kw):
        raise AssertionError("must not be exported before the checks")


def test_module_reports_its_state():
    assert isinstance(cuda.is_built(), bool)
    assert cuda.device_count() >= 0
    assert cuda.is_available() == (cuda.device_count() > 0)
    if cuda.is_available():
        assert cuda.unavailable_reason() is None
    else:
        reason = cuda.unavailable_reason()
        assert isinstance(reason, str) and reason
        assert ("no CUDA backend" in reason) != cuda.is_built()
    if cuda.is_built():
        t = cuda.targets()
        assert "sm_80" in t and "sm_90" in t and any(x.startswith("compute_") for x in t)
    buf = io.StringIO()
    fastact.show_config(file=buf)
    assert "CUDA:" in buf.getvalue()
    assert ("built for" in buf.getvalue()) == cuda.is_built()


@pytest.mark.skipif(GPU, reason="checks the no-GPU path")
@pytest.mark.parametrize("make", [FakeCAI, FakeCudaDLPack], ids=["cai", "dlpack"])
def test_gpu_input_without_gpu_is_a_clear_runtime_error(make):
    for call in (lambda: fastact.relu(make()), lambda: fastact.gelu_backward(make(), make()),
                 lambda: fastact.softmax(make()), lambda: fastact.softmax_backward(make(), y=make())):
        with pytest.raises(RuntimeError, match="no CUDA backend|no usable GPU"):
            call()


@pytest.mark.skipif(GPU, reason="checks the no-GPU path")
def test_device_array_and_to_device_without_gpu():
    with pytest.raises(RuntimeError, match="no CUDA backend|no usable GPU"):
        cuda.to_device(np.zeros(3, np.float32))
    if not cuda.is_built():
        with pytest.raises(RuntimeError):
            cuda.DeviceArray((3,), np.float32)


def test_mixing_cpu_and_gpu_is_a_value_error():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="x is on the CPU"):
        fastact.gelu_backward(FakeCAI(), x)
    with pytest.raises(ValueError, match="out is on the CPU"):
        fastact.relu(FakeCAI(), out=x)
    with pytest.raises(ValueError, match="grad_output is on the CPU"):
        fastact.relu_backward(x, y=FakeCAI())
    with pytest.raises(ValueError, match="on the CPU"):
        fastact.softmax_backward(x, y=FakeCudaDLPack())


def test_stream_is_for_gpu_arrays():
    with pytest.raises(ValueError, match="stream= is for GPU arrays"):
        fastact.relu(np.zeros(3, np.float32), stream=0)
    with pytest.raises(ValueError, match="stream= is for GPU arrays"):
        fastact.softmax(np.zeros((2, 3), np.float32), stream=0)


def test_every_function_takes_stream():
    for op in fastact.ops():
        for f in (getattr(fastact, op["name"]), getattr(fastact, op["name"] + "_backward")):
            p = inspect.signature(f).parameters["stream"]
            assert p.default is None and p.kind is inspect.Parameter.KEYWORD_ONLY
            assert "stream" in f.__doc__


def test_stream_handles():
    class TorchLike:
        cuda_stream = 1234

    class CupyLike:
        ptr = 5678

    class Protocol:
        def __cuda_stream__(self):
            return (0, 42)

    assert cuda._stream_handle(None, "f") is None
    assert cuda._stream_handle(7, "f") == 7
    assert cuda._stream_handle(TorchLike(), "f") == 1234
    assert cuda._stream_handle(CupyLike(), "f") == 5678
    assert cuda._stream_handle(Protocol(), "f") == 42
    with pytest.raises(TypeError, match="stream must be"):
        cuda._stream_handle("default", "f")
    with pytest.raises(TypeError, match="stream must be"):
        cuda._stream_handle(True, "f")
    with pytest.raises(ValueError, match="non-negative"):
        cuda._stream_handle(-3, "f")


def test_cuda_array_interface_parsing():
    a = cuda._from_cai(None, FakeCAI(shape=(2, 3)).__cuda_array_interface__, "f", "x")
    assert (a.shape, a.strides, a.code, a.ptr, a.readonly) == ((2, 3), [3, 1], 0, 0x7000_0000, False)
    a = cuda._from_cai(None, FakeCAI(shape=(4, 5), typestr="<f8", strides=(8, 32)).__cuda_array_interface__, "f", "x")
    assert (a.strides, a.code) == ([1, 4], 1)
    a = cuda._from_cai(None, FakeCAI(shape=(5,), typestr="<f2", strides=(-4,), stream=2).__cuda_array_interface__, "f", "x")
    assert (a.strides, a.code, a.cai_stream) == ([-2], 2, 2)
    with pytest.raises(ValueError, match="mask"):
        cuda._from_cai(None, FakeCAI(mask=object()).__cuda_array_interface__, "f", "x")
    for bad in ("<i4", ">f4", "|b1", "<c8"):
        with pytest.raises(TypeError, match="expected float32"):
            cuda._from_cai(None, FakeCAI(typestr=bad).__cuda_array_interface__, "f", "x")
    with pytest.raises(ValueError, match="whole elements"):
        cuda._from_cai(None, FakeCAI(shape=(3,), strides=(6,)).__cuda_array_interface__, "f", "x")


def test_overlap_rule():
    def arg(ptr, shape, strides, code=0):
        a = cuda._Arg()
        a.ptr, a.shape, a.strides, a.code = ptr, shape, strides, code
        return a

    base = 1 << 20
    assert not cuda._overlaps_differently(arg(base, (8,), [1]), arg(base, (8,), [1]))  # in place
    assert cuda._overlaps_differently(arg(base + 4, (8,), [1]), arg(base, (8,), [1]))  # shifted by one
    assert not cuda._overlaps_differently(arg(base + 32, (8,), [1]), arg(base, (8,), [1]))  # disjoint
    assert cuda._overlaps_differently(arg(base, (4, 2), [1, 4]), arg(base, (4, 2), [2, 1]))  # transposed


def test_cpu_tensors_still_run_on_the_cpu():
    torch = pytest.importorskip("torch")
    t = torch.tensor([-1.0, 2.0])
    assert not cuda.on_gpu(t)
    np.testing.assert_array_equal(fastact.relu(t), [0.0, 2.0])


# ------------------------------------------------------------------------------------------------
# The Python GPU layer end to end, over a host-emulated backend: a stand-in for fastact._cuda whose
# "device memory" is host memory and whose kernels are the CPU kernels. Everything above the compiled
# module (describing CAI arguments, devices, streams, result allocation, out=, in place, overlap
# through a temporary, DeviceArray and its protocols) runs exactly as on a GPU.
import ctypes  # noqa: E402


def _np_view(ptr, shape, strides, dtype):
    """A NumPy array over raw memory at ptr (element strides, possibly negative)."""
    dtype = np.dtype(dtype)
    if 0 in shape:
        return np.empty(shape, dtype)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    raw = (ctypes.c_char * ((hi - lo + 1) * dtype.itemsize)).from_address(ptr + lo * dtype.itemsize)
    base = np.frombuffer(raw, dtype=dtype)
    return np.lib.stride_tricks.as_strided(base[-lo:], shape=shape, strides=[s * dtype.itemsize for s in strides])


class HostBackend:
    def __init__(self):
        self.calls = []
        self.waits = []
        self._keep = {}

    def device_count(self):
        return 1

    def unavailable_reason(self):
        return None

    def targets(self):
        return ["sm_80", "sm_90", "compute_90"]

    def device_info(self, device):
        return {"name": "host emulation", "capability": (9, 0), "multiprocessors": 1, "memory": 0}

    def pointer_device(self, ptr):
        return 0

    def stream_wait(self, producer, consumer, device):
        self.waits.append((producer, consumer))

    class Buffer:
        def __init__(self, nbytes, device):
            self._mem = np.empty(max(nbytes, 1), np.uint8)
            self.ptr, self.nbytes, self.device = self._mem.ctypes.data, nbytes, device

    def memcpy(self, dst, src, nbytes, kind, stream, device):
        ctypes.memmove(dst, src, nbytes)

    def _dtype(self, code):
        import ml_dtypes

        return [np.float32, np.float64, np.float16, ml_dtypes.bfloat16][code]

    def elementwise(self, op, direction, code, shape, outs, ins, params, stream, device):
        self.calls.append(("elementwise", op, direction, stream))
        dt = self._dtype(code)
        info = [o for o in fastact.ops() if o["kind"] != "row"][op]
        o = [_np_view(p, shape, s, dt) for p, s in outs]
        i = [_np_view(p, shape, s, dt) for p, s in ins]
        ps = tuple(params[: len(info["params"])])
        if info["kind"] == "gated":  # the two-array form on the views: (a, b) or (dy, a, b)
            a, b, dy = (i[0], i[1], None) if direction == 0 else (i[1], i[2], i[0])
            fastact._core._gated(op, direction, a, b, dy, o[0] if direction == 0 else tuple(o), ps, -1, None)
        elif info["kind"] == "broadcast":  # the forward: x and the weight along x (zero strides: NumPy's rules)
            fastact._core._broadcast(op, 0, i[0], i[1], None, o[0], ps, None, None)
        else:
            fastact._core._elementwise(op, direction, i[0], i[1] if direction else None, o[0], ps, None)

    def reduce(self, op, code, shape, outs, ins, reduced, reduced_shape, params, stream, device):
        """A broadcast op's backward: the weight and its gradient viewed in their own shape (reduced_shape),
        the CPU's _broadcast with NumPy's broadcasting."""
        self.calls.append(("reduce", op, 1, stream))
        dt = self._dtype(code)
        info = [o for o in fastact.ops() if o["kind"] != "row"][op]
        gx = _np_view(outs[0][0], shape, outs[0][1], dt)
        dy, x = (_np_view(p, shape, st, dt) for p, st in ins[:2])
        w = _np_view(ins[2][0], reduced_shape, ins[2][1], dt)
        gw = _np_view(reduced[0], reduced_shape, reduced[1], dt)
        fastact._core._broadcast(op, 1, x, w, dy, (gx, gw), tuple(params[: len(info["params"])]), None, None)

    def rows(self, op, direction, code, shape, axis, out, a, b, stream, device):
        self.calls.append(("rows", op, direction, stream))
        dt = self._dtype(code)
        args = [_np_view(p, shape, s, dt) for p, s in (out, a) + ((b,) if b else ())]
        fastact._core._rowwise(op, direction, args[1], args[2] if b else None, args[0], axis, None)

    def copy(self, elsize, shape, out, a, stream, device):
        dt = {2: np.uint16, 4: np.uint32, 8: np.uint64}[elsize]
        np.copyto(_np_view(out[0], shape, out[1], dt), _np_view(a[0], shape, a[1], dt))


class HostCAI:
    """A 'GPU array' over a NumPy array, through __cuda_array_interface__ only."""

    def __init__(self, arr, readonly=None, stream=None):
        self.arr = arr
        readonly = not arr.flags.writeable if readonly is None else readonly
        self.__cuda_array_interface__ = {
            "shape": arr.shape, "typestr": arr.dtype.str, "data": (arr.ctypes.data, readonly),
            "strides": arr.strides, "version": 3, "stream": stream}


@pytest.fixture
def host_backend(monkeypatch):
    backend = HostBackend()
    monkeypatch.setattr(cuda, "_cuda", backend)
    return backend


def test_emulated_elementwise_calls(host_backend):
    x = np.linspace(-5, 5, 40, dtype=np.float32).reshape(5, 8)
    r = fastact.gelu(HostCAI(x), approximate="tanh")
    assert isinstance(r, cuda.DeviceArray) and r.shape == (5, 8) and r.dtype == np.float32
    np.testing.assert_array_equal(r.get(), fastact.gelu(x, approximate="tanh"))
    assert host_backend.calls[-1] == ("elementwise", 3, 0, 0)  # gelu, forward, the default stream
    # strided views, backward from x and from y, DeviceArrays as inputs
    g = np.cos(x)
    xt = x.T[::2]
    np.testing.assert_array_equal(fastact.silu_backward(HostCAI(g.T[::2]), HostCAI(xt), beta=0.5).get(),
                                  fastact.silu_backward(g.T[::2], xt, beta=0.5))
    y = fastact.sigmoid(r)
    np.testing.assert_array_equal(fastact.sigmoid_backward(r, y=y).get(), fastact.sigmoid_backward(r.get(), y=y.get()))


def test_emulated_out_in_place_and_overlap(host_backend):
    buf = np.linspace(-3, 3, 33).astype(np.float32)
    x = buf.copy()
    out = np.empty_like(x)
    assert fastact.elu(HostCAI(x), out=HostCAI(out)).arr is out
    np.testing.assert_array_equal(out, fastact.elu(x))
    fastact.tanh(HostCAI(x), out=HostCAI(x))  # in place
    np.testing.assert_array_equal(x, fastact.tanh(buf))
    shifted = buf.copy()  # out one element past the input: a temporary keeps the answer right
    fastact.elu(HostCAI(shifted[:-1]), out=HostCAI(shifted[1:]))
    np.testing.assert_array_equal(shifted[1:], fastact.elu(buf[:-1]))
    with pytest.raises(ValueError, match="read-only"):
        fastact.relu(HostCAI(x), out=HostCAI(out, readonly=True))
    with pytest.raises(TypeError, match="dtype"):
        fastact.relu(HostCAI(x), out=HostCAI(out.astype(np.float64)))
    with pytest.raises(ValueError, match="shape"):
        fastact.relu(HostCAI(x), out=HostCAI(out[:5]))
    with pytest.raises(TypeError, match="pass arrays of one dtype"):
        fastact.relu_backward(HostCAI(x), HostCAI(x.astype(np.float64)))


def test_emulated_rows_and_half_types(host_backend):
    import ml_dtypes

    x = np.random.default_rng(0).normal(size=(6, 70)).astype(np.float32)
    for dt in (np.float32, np.float16, ml_dtypes.bfloat16, np.float64):
        xs = x.astype(dt)
        # bfloat16 has no __cuda_array_interface__ name: it travels as a DeviceArray (or DLPack)
        dev = cuda.to_device(xs) if dt is ml_dtypes.bfloat16 else HostCAI(xs)
        for axis in (-1, 0):
            y = fastact.log_softmax(dev, axis=axis)
            np.testing.assert_array_equal(y.get().view(np.uint8), fastact.log_softmax(xs, axis=axis).view(np.uint8))
            g = fastact.log_softmax_backward(dev, y=y, axis=axis)
            np.testing.assert_array_equal(g.get().view(np.uint8),
                                          fastact.log_softmax_backward(xs, y=y.get(), axis=axis).view(np.uint8))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        fastact.softmax(HostCAI(x), axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        fastact.softmax(HostCAI(x), axis=None)


def test_emulated_broadcast_ops(host_backend):
    """prelu and bias_act through the GPU layer: every weight form, the backward's two outputs, in place, a
    Python number as the weight (copied to the device), errors named as on the CPU."""
    import ml_dtypes

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 5)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    for w, axis in ((np.float32([0.1, 0.2, 0.3]), 1), (np.float32([0.25]), 1), (rng.random((3, 1)).astype(np.float32), None),
                    (rng.random(5).astype(np.float32), -1)):
        r = fastact.prelu(HostCAI(x), HostCAI(w), axis)
        np.testing.assert_array_equal(r.get(), fastact.prelu(x, w, axis))
        gx, gw = fastact.prelu_backward(HostCAI(dy), HostCAI(x), HostCAI(w), axis)
        want_gx, want_gw = fastact.prelu_backward(dy, x, w, axis)
        np.testing.assert_array_equal(gx.get(), want_gx)
        np.testing.assert_array_equal(gw.get(), want_gw)
        assert host_backend.calls[-1][0] == "reduce"
        xs, ws = x.copy(), w.copy()
        fastact.prelu_backward(HostCAI(dy), HostCAI(xs), HostCAI(ws), axis, out=(HostCAI(xs), HostCAI(ws)))
        np.testing.assert_array_equal(xs, want_gx)
        np.testing.assert_array_equal(ws, want_gw)
    np.testing.assert_array_equal(fastact.prelu(HostCAI(x), 0.25).get(), fastact.prelu(x, 0.25))
    b = rng.normal(size=5)
    for dt in (np.float32, ml_dtypes.bfloat16):
        xs, bs, ds = x.astype(dt), b.astype(dt), dy.astype(dt)
        dev = (lambda a: cuda.to_device(a)) if dt is ml_dtypes.bfloat16 else HostCAI
        r = fastact.bias_act(dev(xs), dev(bs), "gelu", approximate="tanh")
        np.testing.assert_array_equal(r.get().view(np.uint8), fastact.bias_act(xs, bs, "gelu", approximate="tanh").view(np.uint8))
        gx, gb = fastact.bias_act_backward(dev(ds), dev(xs), dev(bs), "silu")
        want_gx, want_gb = fastact.bias_act_backward(ds, xs, bs, "silu")
        np.testing.assert_array_equal(gx.get().view(np.uint8), want_gx.view(np.uint8))
        np.testing.assert_array_equal(gb.get().view(np.uint8), want_gb.view(np.uint8))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(4,\) does not fit x of shape \(4, 3, 5\)"):
        fastact.prelu(HostCAI(x), HostCAI(np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match=r"prelu_backward: out must be a tuple \(grad_x, grad_weight\)"):
        fastact.prelu_backward(HostCAI(dy), HostCAI(x), 0.5, out=HostCAI(dy))
    with pytest.raises(ValueError, match=r"grad_output must have the shape of x"):
        fastact.bias_act_backward(HostCAI(dy[:2]), HostCAI(x), HostCAI(b.astype(np.float32)))


def test_emulated_streams(host_backend):
    x = np.ones(8, np.float32)
    fastact.relu(HostCAI(x), stream=77)
    assert host_backend.calls[-1][-1] == 77
    fastact.relu(HostCAI(x, stream=5))  # a CAI producer's stream is run on, no wait needed
    assert host_backend.calls[-1][-1] == 5 and not host_backend.waits
    fastact.relu(HostCAI(x, stream=5), stream=9)  # another stream: it waits for the producer's first
    assert host_backend.calls[-1][-1] == 9 and host_backend.waits[-1] == (5, 9)
    r = fastact.relu(HostCAI(x), stream=9)
    assert r.__cuda_array_interface__["stream"] == 9  # consumers wait on the stream it was written on


def test_emulated_device_array_protocols(host_backend):
    d = cuda.to_device(np.arange(6, dtype=np.float16).reshape(2, 3))
    cai = d.__cuda_array_interface__
    assert cai["typestr"] == "<f2" and cai["shape"] == (2, 3) and cai["version"] == 3 and cai["stream"] == 1
    assert d.__dlpack_device__() == (2, 0)
    assert d.strides == (6, 2) and d.nbytes == 12 and len(d) == 2 and "float16" in repr(d)
    np.testing.assert_array_equal(d.get(), np.arange(6, dtype=np.float16).reshape(2, 3))
    import ml_dtypes

    b = cuda.to_device(np.zeros(3, ml_dtypes.bfloat16))
    assert not hasattr(b, "__cuda_array_interface__")
    assert cuda.on_gpu(b) and not cuda.on_gpu(np.zeros(3))


def test_emulated_hardening(host_backend):
    """The GPU path's share of the hardening issue: an out= whose elements share memory is refused (not
    computed several times over), parameters are checked in the compute type, errors name the function."""
    x = np.full(64, 0.5, np.float32)
    shared = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (64,), (0,))
    with pytest.raises(ValueError, match="sigmoid: out has elements that share memory"):
        fastact.sigmoid(HostCAI(x), out=HostCAI(shared))
    rows = np.lib.stride_tricks.as_strided(np.zeros(16, np.float32), (4, 8), (8, 4))
    with pytest.raises(ValueError, match="softmax_backward: out has elements that share memory"):
        fastact.softmax_backward(HostCAI(x.reshape(4, 16)[:, :8]), y=HostCAI(x.reshape(4, 16)[:, 8:]),
                                 out=HostCAI(rows))
    assert not host_backend.calls  # refused before any launch
    with pytest.raises(ValueError, match="elu: alpha must be a finite float32 number"):
        fastact.elu(HostCAI(x), alpha=1e39)
    with pytest.raises(ValueError, match="elu_backward: alpha must be a finite float32 number"):
        fastact.elu_backward(HostCAI(x), HostCAI(x), alpha=1e39)
    with pytest.raises(ValueError, match="leaky_relu_backward: negative_slope must be a finite float32"):
        fastact.leaky_relu_backward(HostCAI(x.astype(np.float16)), y=HostCAI(x.astype(np.float16)),
                                    negative_slope=3.5e38)
    d = x.astype(np.float64)
    np.testing.assert_array_equal(fastact.elu(HostCAI(-d), alpha=1e39).get(), fastact.elu(-d, alpha=1e39))


def test_emulated_gated_ops(host_backend):
    """The GLU family's GPU path: both forms, forward and backward, out= (arrays, a tuple, in place), and
    its errors, against the CPU path."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    g = rng.standard_normal((6, 5)).astype(np.float32)
    for op in [o for o in fastact.ops() if o["kind"] == "gated"]:
        f, fb = op_fn(op), op_fn(op, "_backward")
        r = f(HostCAI(x))
        assert isinstance(r, cuda.DeviceArray) and r.shape == (6, 5)
        np.testing.assert_array_equal(r.get(), f(x))
        np.testing.assert_array_equal(f(HostCAI(x.T.copy()), axis=0).get(), f(x.T.copy(), axis=0))
        np.testing.assert_array_equal(fb(HostCAI(g), HostCAI(x)).get(), fb(g, x))
        a, b = np.ascontiguousarray(x[:, :5]), np.ascontiguousarray(x[:, 5:])
        np.testing.assert_array_equal(f(HostCAI(a), HostCAI(b)).get(), f(a, b))
        ga, gb = fb(HostCAI(g), HostCAI(a), HostCAI(b))
        wa, wb = fb(g, a, b)
        np.testing.assert_array_equal(ga.get(), wa)
        np.testing.assert_array_equal(gb.get(), wb)
        a2, b2 = a.copy(), b.copy()  # in place: (grad_gate, grad_up) over (gate, up)
        ra, rb = fb(HostCAI(g), HostCAI(a2), HostCAI(b2), out=(HostCAI(a2), HostCAI(b2)))
        np.testing.assert_array_equal(a2, wa)
        np.testing.assert_array_equal(b2, wb)
        xs = x.copy()  # grad_x over x itself
        fb(HostCAI(g), HostCAI(xs), out=HostCAI(xs))
        np.testing.assert_array_equal(xs, fb(g, x))
    with pytest.raises(ValueError, match="swiglu: x has length 9 along axis -1"):
        fastact.swiglu(HostCAI(np.zeros((2, 9), np.float32)))
    with pytest.raises(ValueError, match="swiglu: up must have the shape of gate"):
        fastact.swiglu(HostCAI(np.zeros(4, np.float32)), HostCAI(np.zeros(5, np.float32)))
    with pytest.raises(TypeError, match=r"swiglu_backward: out must be a tuple \(grad_gate, grad_up\)"):
        fastact.swiglu_backward(HostCAI(np.zeros(4, np.float32)), HostCAI(np.zeros(4, np.float32)),
                                HostCAI(np.zeros(4, np.float32)), out=HostCAI(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match="swiglu: alpha must be a finite float32 number"):
        fastact.swiglu(HostCAI(np.zeros(4, np.float32)), alpha=1e39)


def test_one_dtype_table():
    """The CPU path, the GPU path and the messages read one table (csrc/kinds.h): its rows agree with NumPy's
    (and ml_dtypes') dtypes, and fastact.cuda's codes are its codes."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    table = fastact._core._dtypes
    assert [d["name"] for d in table] == ["float32", "float64", "float16", "bfloat16"]
    for code, d in enumerate(table):
        dt = np.dtype(ml_dtypes.bfloat16) if d["name"] == "bfloat16" else np.dtype(d["name"])
        assert dt.itemsize == d["itemsize"]
        assert cuda._NAMES[code] == d["name"] and cuda._ITEMSIZE[code] == d["itemsize"]
        if d["typestr"]:
            assert np.dtype("<" + d["typestr"]) == dt and cuda._TYPESTR[d["typestr"]] == code
        # the CPU reads this dtype (DLPack included) and names it in its messages
        x = np.zeros(3, dt)
        assert fastact.relu(x).dtype == dt
        assert d["name"] in fastact._core._dtype_list
    with pytest.raises(TypeError, match=fastact._core._dtype_list):
        fastact.relu(np.zeros(3, np.int8).view(np.uint8).astype(np.complex64))


def _f32(*shape):
    return np.zeros(shape, np.float32)


# Bad calls, each written once over an array maker (NumPy arrays for the CPU, HostCAI for the emulated GPU).
_BAD_CALLS = {
    "dtype of a second input": lambda A: fastact.gelu_backward(A(_f32(4)), A(np.zeros(4))),
    "shape of a second input": lambda A: fastact.gelu_backward(A(_f32(4)), A(_f32(5))),
    "out dtype": lambda A: fastact.relu(A(_f32(4)), out=A(np.zeros(4))),
    "out shape": lambda A: fastact.relu(A(_f32(4)), out=A(_f32(2, 2))),
    "a bad parameter": lambda A: fastact.leaky_relu(A(_f32(4)), negative_slope=float("nan")),
    "row axis": lambda A: fastact.softmax(A(_f32(2, 3)), axis=2),
    "row of a 0-d array": lambda A: fastact.softmax(A(_f32())),
    "rows' y shape": lambda A: fastact.softmax_backward(A(_f32(2, 3)), y=A(_f32(3, 2))),
    "odd split": lambda A: fastact.swiglu(A(_f32(2, 9))),
    "split axis": lambda A: fastact.geglu(A(_f32(2, 4)), axis=-3),
    "up's dtype": lambda A: fastact.swiglu(A(_f32(4)), A(np.zeros(4))),
    "up's shape": lambda A: fastact.reglu(A(_f32(4)), A(_f32(5))),
    "gated grad_output's shape": lambda A: fastact.glu_backward(A(_f32(2, 8)), A(_f32(2, 8))),
    "gated grad_x's shape": lambda A: fastact.glu_backward(A(_f32(2, 2)), A(_f32(2, 4)), out=A(_f32(2, 2))),
    "gated pair's shape": lambda A: fastact.swiglu_backward(A(_f32(3)), A(_f32(3)), A(_f32(3)),
                                                            out=(None, A(_f32(4)))),
    "gated pair's dtype": lambda A: fastact.swiglu_backward(A(_f32(3)), A(_f32(3)), A(_f32(3)),
                                                            out=(A(np.zeros(3)), None)),
    "weight's dtype": lambda A: fastact.prelu(A(_f32(2, 3)), A(np.zeros(3))),
    "weight's shape": lambda A: fastact.prelu(A(_f32(2, 3, 4)), A(_f32(4))),
    "channel_axis": lambda A: fastact.prelu(A(_f32(2, 3)), A(_f32(3)), channel_axis=2),
    "bias's length": lambda A: fastact.bias_act(A(_f32(2, 3)), A(_f32(2)), "relu"),
    "broadcast grad_output": lambda A: fastact.prelu_backward(A(_f32(2, 2)), A(_f32(2, 3)), A(_f32(3))),
    "grad_weight's shape": lambda A: fastact.prelu_backward(A(_f32(2, 3)), A(_f32(2, 3)), A(_f32(3)),
                                                            out=(None, A(_f32(2)))),
    "bias_act parameter": lambda A: fastact.bias_act(A(_f32(3)), A(_f32(3)), "elu", alpha=float("inf")),
    # several faults at once: the same one is named first on both
    "a bad parameter and a bad shape": lambda A: fastact.elu_backward(A(_f32(3)), A(_f32(4)), alpha=float("nan")),
    "a bad parameter and a bad out=": lambda A: fastact.swiglu(A(_f32(4)), alpha=float("nan"), out=A(_f32(3))),
    "a read-only out= of another dtype": lambda A: fastact.relu(A(_f32(4)), out=A(_readonly(np.zeros(4)))),
    "a read-only out= of another shape": lambda A: fastact.relu(A(_f32(4)), out=A(_readonly(_f32(5)))),
    "a number weight, grad_output of another dtype": lambda A: fastact.prelu_backward(
        A(np.zeros(3, np.float16)), A(_f32(3)), 1e5, channel_axis=None),
    "a number weight too large for x": lambda A: fastact.prelu(A(np.zeros(3, np.float16)), 1e5, channel_axis=None),
}


def _readonly(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("case", sorted(_BAD_CALLS))
def test_cpu_and_gpu_share_one_validation(host_backend, case):
    """The GPU path's checks are the CPU's (csrc/bindings/module.cpp, through _core._plan): each bad call
    raises the same exception with the same message on both (out= pairs name their slots on the GPU)."""
    call = _BAD_CALLS[case]
    with pytest.raises((TypeError, ValueError)) as cpu_err:
        call(lambda a: a)
    with pytest.raises((TypeError, ValueError)) as gpu_err:
        call(HostCAI)
    assert type(gpu_err.value) is type(cpu_err.value)
    assert str(gpu_err.value).replace("out[0]", "out").replace("out[1]", "out") == str(cpu_err.value)


@pytest.mark.skipif(GPU, reason="checks the no-GPU path")
@pytest.mark.parametrize("make", [FakeCAI, FakeCudaDLPack], ids=["cai", "dlpack"])
def test_gpu_losses_without_gpu_are_a_clear_runtime_error(make):
    """The losses route GPU arrays to fastact.cuda too: without a GPU, the same clear error, before any
    argument is read."""
    t = np.zeros(3, np.int64)
    calls = [lambda: fastact.mse_loss(make(), make()), lambda: fastact.huber_loss(make(), make(), reduction="none"),
             lambda: fastact.mse_loss_backward(1.0, make(), make()),
             lambda: fastact.binary_cross_entropy_with_logits_backward(make(), make(), make(), reduction="none"),
             lambda: fastact.cross_entropy(make(), t), lambda: fastact.cross_entropy_backward(1.0, make(), t),
             lambda: fastact.nll_loss(make(), t), lambda: fastact.nll_loss_backward(1.0, make(), t),
             lambda: fastact.logsumexp(make()), lambda: fastact.logsumexp_backward(1.0, make())]
    for call in calls:
        with pytest.raises(RuntimeError, match="no CUDA backend|no usable GPU"):
            call()


def test_stream_with_cpu_losses_is_an_error():
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="stream= is for GPU arrays"):
        fastact.mse_loss(x, x, stream=0)


def test_emulated_exhaustive_gpu_check_finds_a_differing_bit(host_backend, monkeypatch):
    """bench/accuracy.py --gpu compares the GPU's bits with the CPU's: over the emulation they agree, and
    one flipped bit in one GPU output is found, counted and measured against the reference."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import accuracy
    from conftest import full_params

    specs = {o["name"]: o for o in fastact.ops()}
    runs = [(n, kw, full_params(specs[n], kw, np.float32)) for n, kw in (("gelu", {}), ("silu", {"beta": 0.5}))]
    lo, hi, chunk = 0xC0000000, 0xC0000000 + 3 * 4096, 4096  # -2.0 and below, three chunks
    assert accuracy.gpu_sweep(runs, False, lo, hi, chunk) == (0, 0)
    assert accuracy.gpu_sweep(runs, True, lo, hi, chunk) == (0, 0)
    # +inf and the NaNs after it (payloads may differ), in chunks of which the last is shorter
    assert accuracy.gpu_sweep(runs, False, 0x7F800000 - 1000, 0x7F800000 + 9000, chunk) == (0, 0)

    flip_at = 5000  # in the second chunk
    seen = {"n": 0}
    plain = host_backend.elementwise

    def flipping(op, direction, code, shape, outs, ins, params, stream, device):
        plain(op, direction, code, shape, outs, ins, params, stream, device)
        seen["n"] += 1
        if seen["n"] == 3:  # the second chunk's gelu
            _np_view(outs[0][0], shape, outs[0][1], np.uint32)[flip_at - chunk] ^= 1 << 22

    monkeypatch.setattr(host_backend, "elementwise", flipping)
    differ, failures = accuracy.gpu_sweep(runs, False, lo, hi, chunk)
    assert (differ, failures) == (1, 1)  # a flipped high mantissa bit is millions of ulp off
