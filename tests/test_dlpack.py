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


def test_gpu_dlpack_device_is_a_clear_error(monkeypatch):
    from fastact import cuda  # as on a machine without a GPU, whether or not this one has one

    monkeypatch.setattr(cuda, "unavailable_reason", lambda: "no usable GPU here (test)")

    class GpuTensor:
        def __dlpack__(self, **kw):
            raise AssertionError("must not be exported")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

    with pytest.raises(RuntimeError, match="GPU array"):
        fastact.relu(GpuTensor())


try:
    import torch
except ImportError:  # pragma: no cover - the torch tests below skip
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")


def _numpy_twin(t):
    """The same values as a NumPy array of the same dtype (through float32 for bfloat16)."""
    if t.dtype == torch.bfloat16:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


@needs_torch
@pytest.mark.parametrize("tdtype", ["float32", "float64", "float16", "bfloat16"])
def test_torch_tensors_in_and_out(tdtype):
    t = torch.linspace(-4, 4, 257).to(getattr(torch, tdtype))
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


@needs_torch
def test_torch_mixed_devices_and_dtypes_are_errors():
    t = torch.zeros(4)
    with pytest.raises(TypeError, match="one dtype"):
        fastact.relu_backward(t, torch.zeros(4, dtype=torch.float64))


def _jax_cpu(a):
    """a on JAX's CPU device (a GPU machine's default device is its GPU)."""
    import jax

    return jax.device_put(a, jax.devices("cpu")[0])


def test_jax_arrays_are_read_and_never_written():
    jnp = pytest.importorskip("jax.numpy")
    a = _jax_cpu(jnp.linspace(-3, 3, 65, dtype=jnp.float32))
    np.testing.assert_array_equal(fastact.gelu(a), fastact.gelu(np.asarray(a)))
    with pytest.raises(ValueError, match="read-only"):  # JAX exports are immutable
        fastact.gelu(np.asarray(a), out=a)


def test_bfloat16_exports_respect_read_only():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    if torch is not None:  # a versioned export that says it is writable: written in place
        t = torch.linspace(-2, 2, 9, dtype=torch.bfloat16)
        fastact.relu(t, out=t)
        assert (t.float().numpy() >= 0).all()
    try:
        jnp = __import__("jax.numpy", fromlist=["numpy"])
    except ImportError:
        return
    a = _jax_cpu(jnp.linspace(-2, 2, 9, dtype=jnp.bfloat16))  # an unversioned export: never written
    with pytest.raises(ValueError, match="read-only"):
        fastact.relu(np.zeros(9, ml_dtypes.bfloat16), out=a)
    np.testing.assert_array_equal(fastact.relu(a).astype(np.float32), np.maximum(np.asarray(a, np.float32), 0))
