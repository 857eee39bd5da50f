"""CPU DLPack interop (issue 4): any __dlpack__ producer is read without a copy; out= may be a writable
DLPack tensor, written in place; read-only exports stay read-only. Results are NumPy arrays unless out=
is given."""
from __future__ import annotations

import numpy as np
import pytest

import fastact


class Producer:
    """Exports an array through DLPack only (no buffer protocol, no __array__)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kw):
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def test_numpy_producer_in_and_out_without_copies():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    np.testing.assert_array_equal(fastact.gelu(Producer(x)), fastact.gelu(x))
    target = np.zeros(101, np.float32)
    r = fastact.gelu(x, out=Producer(target))
    assert isinstance(r, Producer)  # out= comes back as passed
    np.testing.assert_array_equal(target, fastact.gelu(x))  # written in place: no copy in between
    ro = np.zeros(101, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastact.gelu(x, out=Producer(ro))


def test_gpu_dlpack_device_is_a_clear_error():
    class GpuTensor:
        def __dlpack__(self, **kw):
            raise AssertionError("must not be exported")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

    with pytest.raises(RuntimeError, match="GPU array"):
        fastact.relu(GpuTensor())


torch = pytest.importorskip("torch")


def _numpy_twin(t):
    """The same values as a NumPy array of the same dtype (through float32 for bfloat16)."""
    if t.dtype == torch.bfloat16:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


@pytest.mark.parametrize("tdtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_torch_tensors_in_and_out(tdtype):
    t = torch.linspace(-4, 4, 257).to(tdtype)
    xn = _numpy_twin(t)
    ref = fastact.silu(xn)
    y = fastact.silu(t)
    assert isinstance(y, np.ndarray) and y.dtype == xn.dtype
    np.testing.assert_array_equal(y.view(np.uint8), ref.view(np.uint8))
    np.testing.assert_array_equal(fastact.silu(t[::2]).view(np.uint8), fastact.silu(xn[::2]).view(np.uint8))
    u = t.clone()  # out= a torch tensor: written in place, and the tensor comes back
    assert fastact.silu(u, out=u) is u
    np.testing.assert_array_equal(_numpy_twin(u).view(np.uint8), ref.view(np.uint8))
    g = torch.ones_like(t)
    np.testing.assert_array_equal(fastact.silu_backward(g, t).view(np.uint8),
                                  fastact.silu_backward(_numpy_twin(g), xn).view(np.uint8))


def test_torch_mixed_devices_and_dtypes_are_errors():
    t = torch.zeros(4)
    with pytest.raises(TypeError, match="one dtype"):
        fastact.relu_backward(t, torch.zeros(4, dtype=torch.float64))
