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
