"""Regression tests for the defects of the hardening issue: each failed on the code before its fix.

Hangs, crashes and process-wide state (floating-point environment, exit, fork, resource limits) are tested
in child processes with a timeout, so that a regression fails the test instead of taking the suite down.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastact
from dlpack_producer import Producer, bf16_bits

X86 = platform.machine() in ("x86_64", "AMD64")
# tools/asan_pytest.sh preloads AddressSanitizer, which reserves terabytes of address space and keeps freed
# memory in quarantine: address-space limits and RSS budgets mean nothing there (the plain run checks them)
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
no_asan = pytest.mark.skipif(UNDER_ASAN, reason="RLIMIT_AS / RSS checks do not apply under AddressSanitizer")
HERE = os.path.dirname(os.path.abspath(__file__))


def run_child(code: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, **env)
    e["PYTHONPATH"] = HERE + os.pathsep + e.get("PYTHONPATH", "")
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                              timeout=timeout)
    except subprocess.TimeoutExpired as t:
        pytest.fail(f"the child process hung (killed after {timeout} s); its output: {t.stdout!r} {t.stderr!r}")


def torch_or_skip():
    return pytest.importorskip("torch")


# 1. The first calls of several threads at once with non-NumPy inputs deadlocked: the compiled core
#    imported fastact._dispatch inside a C++ function-local static while holding its guard.
@pytest.mark.parametrize("kind", ["list", "torch"])
def test_first_concurrent_calls_with_other_inputs_do_not_hang(kind):
    if kind == "torch":
        torch_or_skip()
    code = f"""
    import threading, numpy as np, fastact
    kind = {kind!r}
    if kind == "torch":
        import torch
        arg = torch.tensor([1.0, -2.0])
    else:
        arg = [1.0, -2.0]
    barrier = threading.Barrier(8)
    results = []
    def call():
        barrier.wait()
        results.append(np.asarray(fastact.gelu(arg) if kind == "torch" else fastact.relu(arg)))
    ts = [threading.Thread(target=call) for _ in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(results) == 8
    print("ok")
    """
    for _ in range(3):
        r = run_child(code, timeout=60)
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr


# 2. An output whose elements share memory gave f applied several times (the engine's chunks read what
#    earlier chunks wrote). Such an out= is refused, as PyTorch refuses it; inputs may overlap freely.
def test_out_with_internal_overlap_is_refused():
    x = np.full(2048, 0.5, np.float32)
    bcast = np.broadcast_to(np.zeros(1, np.float32), (2048,))
    writable_bcast = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2048,), strides=(0,))
    assert not bcast.flags.writeable and writable_bcast.flags.writeable
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.sigmoid(x, out=writable_bcast)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.sigmoid(writable_bcast, out=writable_bcast)  # in place on a broadcast view
    buf = np.zeros(64, np.float32)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(8, 16), strides=(4 * 4, 4))  # rows overlap by 12
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.relu(np.ones((8, 16), np.float32), out=rows)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.softmax(np.ones((4, 8), np.float32), out=np.lib.stride_tricks.as_strided(
            np.zeros(4, np.float32), shape=(4, 8), strides=(4, 0)))  # a zero-stride row axis
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.tanh_backward(np.ones(2048, np.float32), y=x, out=writable_bcast)


def test_torch_expanded_out_is_refused():
    torch = torch_or_skip()
    t = torch.full((1,), 0.5).expand(2048)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastact.sigmoid(t, out=t)
    assert float(t[0]) == 0.5  # nothing was written


def test_interleaved_outputs_that_do_not_overlap_are_computed():
    # strides (2, 3) elements over a (3, 2) shape reach 0, 3, 2, 5, 4, 7: distinct, though the dimension
    # of stride 3 does not step past the one of stride 2 (the exact check decides)
    buf = np.zeros(8, np.float32)
    out = np.lib.stride_tricks.as_strided(buf, shape=(3, 2), strides=(8, 12))
    x = np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5
    fastact.relu(x, out=out)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    # overlapping inputs are fine: they are only read
    xin = np.lib.stride_tricks.as_strided(np.arange(10, dtype=np.float32), shape=(4, 4), strides=(8, 4))
    np.testing.assert_array_equal(fastact.relu(xin - 5), np.maximum(np.array(xin) - 5, 0))
    np.testing.assert_array_equal(fastact.softmax(np.broadcast_to(np.float32([1, 2]), (3, 2))),
                                  fastact.softmax(np.float32([[1, 2]] * 3)))


def test_internal_overlap_check_is_exact():
    check = fastact._core._has_internal_overlap
    assert not check([3, 2], [2, 3]) and check([3, 3], [1, 2]) and check([2], [0]) and not check([1], [0])
    assert not check([0, 5], [0, 0]) and not check([5, 0], [0, 1]) and not check([], [])
    assert not check([4, 5], [-5, 1]) and check([4, 5], [-4, 1])
    rng = np.random.default_rng(5)
    for _ in range(500):
        nd = int(rng.integers(1, 4))
        shape = [int(v) for v in rng.integers(1, 5, nd)]
        strides = [int(v) for v in rng.integers(-6, 7, nd)]
        offsets = np.zeros(1, np.int64)
        for n, s in zip(shape, strides):
            offsets = (offsets[:, None] + np.arange(n) * s).ravel()
        assert check(shape, strides) == (len(np.unique(offsets)) < offsets.size), (shape, strides)


# 3. Results depended on the floating-point state of the caller and of the thread that created the
#    workers (flush-to-zero / denormals-are-zero, rounding, unmasked exceptions).
@pytest.mark.skipif(not X86, reason="glibc's FE_DFL_DISABLE_SSE_DENORMS_ENV is x86's; the C++ tests cover FPCR")
def test_results_do_not_depend_on_the_floating_point_state():
    code = """
    import ctypes, numpy as np, fastact
    libm = ctypes.CDLL("libm.so.6")
    n = 1 << 24
    x = np.full(n, -100.0, np.float32)
    want = np.uint32(27)  # sigmoid(-100) = 3.72e-44: the subnormal 27 * 2^-149, the nearest float32
    g = np.float32([-7.0, -3.0, 0.1, 1.0, 2.5])
    ref = fastact.gelu(g).view(np.uint32).copy()
    fastact.set_num_threads(2)
    env = ctypes.create_string_buffer(32)  # glibc's x86-64 fenv_t: the x87 environment, then MXCSR
    # flush-to-zero and denormals-are-zero (what torch.set_flush_denormal(True) sets), before the pool
    # starts: its workers inherit it
    assert libm.fegetenv(env) == 0
    mxcsr = int.from_bytes(env.raw[28:32], "little") | 0x8040
    ftz = ctypes.create_string_buffer(env.raw[:28] + mxcsr.to_bytes(4, "little"), 32)
    assert libm.fesetenv(ftz) == 0
    assert np.float32(1e-40) * np.float32(1) == 0  # the state took (NumPy now flushes)
    # the modes (x87 control word, MXCSR's control bits) are given back as they were; status flags and the
    # x87 last-instruction pointers are the interpreter's to change between two reads
    modes = lambda raw: (raw[0:2], int.from_bytes(raw[28:32], "little") & 0xFFC0)
    libm.fegetenv(env); before = modes(env.raw)
    y = fastact.sigmoid(x)
    libm.fegetenv(env); assert modes(env.raw) == before, "fastact changed the caller's floating-point state"
    bits = y.view(np.uint32)
    assert (bits == want).all(), np.unique(bits)
    h = fastact.silu(np.full(1 << 20, -100.0, np.float16))  # the 16-bit table is built in this state too
    libm.fesetenv(ctypes.c_void_p(2**64 - 1))  # FE_DFL_ENV
    assert (h == fastact.silu(np.full(8, -100.0, np.float16))[0]).all()
    for mode in (0x400, 0x800, 0xc00):  # FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO
        libm.fesetround(mode)
        r = fastact.gelu(g).view(np.uint32).copy()
        libm.fesetround(0)
        assert (r == ref).all(), (mode, r, ref)
    libm.feenableexcept(0x01 | 0x04 | 0x08 | 0x10)  # invalid, divide by zero, overflow, underflow: would trap
    z = fastact.sigmoid(np.float32([np.nan, np.inf, -np.inf, -1e30, 1e30, -100.0] * 1000))
    w = fastact.softmax(np.float32([[-np.inf, 0.0, 1e30, np.nan]] * 4096))
    libm.fedisableexcept(0x3d)
    assert np.isnan(z[0]) and z[1] == 1 and z[2] == 0 and np.isnan(w).all()
    print("ok")
    """
    r = run_child(code, FASTACT_NUM_THREADS="2")
    assert r.returncode == 0 and "ok" in r.stdout, (r.returncode, r.stdout, r.stderr)


def test_results_do_not_depend_on_torch_flush_denormal():
    torch_or_skip()
    code = """
    import numpy as np, torch, fastact
    x = np.full(1 << 24, -100.0, np.float32)
    torch.set_flush_denormal(True)
    fastact.set_num_threads(2)
    y = fastact.sigmoid(x).view(np.uint32)
    assert (y == 27).all(), np.unique(y)
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


# 4. A daemon thread inside a call that released the GIL aborted the process at interpreter exit
#    ("terminate called without an active exception").
def test_exit_with_calls_in_flight_on_daemon_threads():
    code = """
    import threading, time, numpy as np, fastact
    x = np.ones(1 << 22, np.float32)
    def spin():
        while True:
            fastact.gelu(x)
            fastact.softmax(x.reshape(64, -1))
    for _ in range(4):
        threading.Thread(target=spin, daemon=True).start()
    time.sleep(0.2)
    print("exiting")
    """
    for _ in range(3):
        r = run_child(code, timeout=60)
        assert r.returncode == 0 and "terminate" not in r.stderr, (r.returncode, r.stderr)


# 5. std::bad_alloc inside a pool task called std::terminate; allocation failure is a MemoryError.
@no_asan
def test_allocation_failure_inside_threads_is_a_memory_error():
    code = """
    import resource, numpy as np, fastact
    fastact.set_num_threads(2)
    fastact.relu(np.zeros(1 << 20, np.float32))  # the workers exist (their stacks are mapped)
    x = np.ones((1 << 24, 2), np.float32)  # softmax along axis 0: two strided rows, one per thread, each
    out = np.empty_like(x)                 # gathered into 64 MiB row buffers inside the thread's task
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (48 << 20), resource.RLIM_INFINITY))
    try:
        fastact.softmax(x, axis=0, out=out)
        print("computed")
    except MemoryError:
        print("MemoryError")
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    fastact.softmax(x[:1000], axis=0, out=out[:1000])  # the pool still works
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "MemoryError" in r.stdout and "ok" in r.stdout, (r.returncode, r.stdout, r.stderr)


# 7. DLPack: one import path for the CPU and the GPU, 64-bit strides, the same read-only rule.
def test_dlpack_without_strides_uses_64_bit_strides():
    n = (1 << 30) + 8
    buf = np.zeros(2 * n, np.uint16)  # 4 GiB of address space, never touched
    p = Producer(buf, (2, n), "bfloat16", strides=None)
    pytest.importorskip("ml_dtypes")
    a = fastact._core._as_array(p, "relu", "x")
    assert a.strides == (2 * n, 2) and a.shape == (2, n)
    assert a.__array_interface__["data"][0] == buf.ctypes.data
    del a
    assert p.deleted == 1


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_dlpack_producers_of_every_dtype(dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        np_dtype = np.dtype(ml_dtypes.bfloat16)
    else:
        np_dtype = np.dtype(dtype)
    vals = np.float32([-2.0, -0.5, 0.0, 1.5, 3.0, -1.0])
    buf = bf16_bits(vals) if dtype == "bfloat16" else vals.astype(np_dtype)
    want = fastact.relu(vals.astype(np_dtype))
    for strides in (None, (1,)):
        p = Producer(buf, (6,), dtype, strides=strides)
        np.testing.assert_array_equal(fastact.relu(p), want)
        assert p.deleted == 1
    # reversed view through strides and a byte offset
    p = Producer(buf, (3,), dtype, strides=(-2,), byte_offset=4 * np_dtype.itemsize)
    np.testing.assert_array_equal(fastact.relu(p), want[4::-2])


def test_dlpack_read_only_rule_is_the_same_for_legacy_and_versioned():
    buf = np.float32([-1.0, 2.0, -3.0])
    legacy = Producer(buf, (3,), versioned=False)  # cannot say it may be written: read-only
    with pytest.raises(ValueError, match="out is read-only"):
        fastact.relu(buf.copy(), out=legacy)
    flagged = Producer(buf, (3,), read_only=True)
    with pytest.raises(ValueError, match="out is read-only"):
        fastact.relu(buf.copy(), out=flagged)
    writable = Producer(buf, (3,))
    assert fastact.relu(np.float32([-1.0, 2.0, -3.0]), out=writable) is writable
    np.testing.assert_array_equal(buf, [0.0, 2.0, 0.0])
    assert not fastact._core._as_array(legacy, "relu", "x").flags.writeable


def test_dlpack_producers_that_misbehave_get_errors_that_name_the_argument():
    class NotACapsule:
        def __dlpack__(self, **kw):
            return 5

        def __dlpack_device__(self):
            return (1, 0)

    class NoDevice(NotACapsule):
        def __dlpack_device__(self):
            return None

    class UsedCapsule(NotACapsule):
        def __init__(self):
            self.p = Producer(np.zeros(3, np.float32), (3,))
            self.cap = self.p.__dlpack__(max_version=(1, 0))
            fastact._core._as_array(self, "relu", "x")  # consumes self.cap

        def __dlpack__(self, **kw):
            return self.cap

    with pytest.raises(TypeError, match=r"relu: x: __dlpack__\(\) returned int, not a DLPack capsule"):
        fastact.relu(NotACapsule())
    with pytest.raises(TypeError, match=r"relu: x.__dlpack_device__\(\) returned None"):
        fastact.relu(NoDevice())
    with pytest.raises(TypeError, match="not an unused DLPack tensor"):
        fastact.relu(UsedCapsule())
    for kw, err, msg in [(dict(dtype="int32"), TypeError, "DLPack dtype"), (dict(lanes=4), TypeError, "lanes"),
                         (dict(major=2), TypeError, "major version 2")]:
        p = Producer(np.zeros(3, np.float32), (3,), **kw)
        with pytest.raises(err, match=msg):
            fastact.sigmoid(p)
        assert p.deleted == 1  # refused, and still released


# 8. Parameters that overflow the compute type were accepted (alpha=1e39 in float32 gave inf and NaN).
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_parameters_that_overflow_float32_are_refused(dtype):
    x = np.float32([-1.0, -2.0]).astype(dtype)
    with pytest.raises(ValueError, match="alpha must be a finite float32 number"):
        fastact.elu(x, alpha=1e39)
    with pytest.raises(ValueError, match="negative_slope must be a finite float32 number"):
        fastact.leaky_relu(x, negative_slope=-1e39)
    with pytest.raises(ValueError, match="beta must be a finite float32 number"):
        fastact.silu_backward(x, x, beta=3.5e38)
    # float64 computes in float64: the same values are fine there
    np.testing.assert_allclose(fastact.elu(np.float64([-1.0]), alpha=1e39), [1e39 * np.expm1(-1.0)], rtol=1e-15)


# 10. Configuration: bounds and environment variables.
@pytest.mark.parametrize("var,value,want", [
    ("FASTACT_NUM_THREADS", "abc", "expected an integer from 1 to 4096"),
    ("FASTACT_NUM_THREADS", "0", "expected an integer from 1 to 4096"),
    ("FASTACT_NUM_THREADS", "100000", "expected an integer from 1 to 4096"),
    ("FASTACT_RESULT_CACHE_MB", "-5", "expected an integer from 0"),
    ("FASTACT_RESULT_CACHE_MB", "lots", "expected an integer from 0"),
    ("FASTACT_HALF_TABLES", "2", "expected 0 or 1"),
    ("FASTACT_STREAM_STORES", "off", "expected 0 or 1"),
])
def test_bad_environment_variables_fail_the_import_by_name(var, value, want):
    r = run_child("import fastact", **{var: value})
    assert r.returncode != 0 and f"{var}='{value}' is not valid" in r.stderr and want in r.stderr, r.stderr
    assert "Segmentation" not in r.stderr and "Traceback" in r.stderr


def test_good_environment_variables_and_empty_ones():
    r = run_child("import fastact; print(fastact.get_num_threads(), fastact._core.result_cache()[1] >> 20, "
                  "fastact._core.half_tables()[0])", FASTACT_NUM_THREADS="3", FASTACT_RESULT_CACHE_MB="64",
                  FASTACT_HALF_TABLES="0", FASTACT_STREAM_STORES="")
    assert r.returncode == 0 and r.stdout.split() == ["3", "64", "False"], r.stderr


@no_asan
def test_thread_creation_failure_is_a_clear_error():
    code = """
    import resource, numpy as np, fastact
    x = np.ones(1 << 22, np.float32); out = np.empty_like(x)
    fastact.set_num_threads(1000)  # 999 workers, each with a stack: more than the limit below allows
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
    try:
        fastact.relu(x, out=out)
    except RuntimeError as e:
        print("error:", e)
    fastact.set_num_threads(2)
    fastact.relu(x, out=out)
    assert (out == 1).all()
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "ok" in r.stdout, (r.stdout, r.stderr)
    assert "could not start worker thread" in r.stdout and "set_num_threads" in r.stdout, r.stdout


# 11. Errors that did not name the argument.
def test_torch_tensors_fastact_cannot_read_are_named():
    torch = torch_or_skip()
    with pytest.raises(ValueError, match=r"relu: x requires grad.*x\.detach\(\)"):
        fastact.relu(torch.zeros(3, requires_grad=True))
    with pytest.raises(ValueError, match=r"relu_backward: grad_output requires grad"):
        fastact.relu_backward(torch.zeros(3, requires_grad=True), torch.zeros(3))
    with pytest.raises(TypeError, match=r"relu: x \(Tensor\) could not be exported through DLPack"):
        fastact.relu(torch.zeros(3).to_sparse())
    with pytest.warns(UserWarning) if hasattr(torch, "quantize_per_tensor") else pytest.raises(AttributeError):
        q = torch.quantize_per_tensor(torch.zeros(3), 0.1, 0, torch.quint8)
    with pytest.raises(TypeError, match=r"relu: x \(Tensor\) could not be exported through DLPack"):
        fastact.relu(q)
    with pytest.raises(TypeError, match=r"relu: x has DLPack dtype \(code 0, 32 bits\)"):
        fastact.relu(torch.zeros(3, dtype=torch.int32))


@pytest.mark.parametrize("value,err,msg", [
    (10**400, ValueError, "alpha is too large for a float64"),
    (1j, TypeError, "alpha must be a real number, got complex"),
    (np.complex64(1), TypeError, "alpha must be a real number, got a NumPy complex64"),
    (np.array([1.0, 2.0]), TypeError, r"alpha must be a real number, got an array of shape \(2,\)"),
    (True, TypeError, "alpha must be a real number, got bool"),
    ("1.0", TypeError, "alpha must be a real number, got str"),
    (None, TypeError, "alpha must be a real number, got NoneType"),
    (float("nan"), ValueError, "alpha must be a finite number"),
])
def test_bad_parameters_are_named(value, err, msg):
    with pytest.raises(err, match=msg):
        fastact.elu(np.float32([-1.0]), alpha=value)


def test_real_number_parameters_of_every_kind_are_taken():
    x = np.float32([-1.0, 2.0])
    want = fastact.elu(x, alpha=0.5)
    for v in (np.float32(0.5), np.float64(0.5), np.array(0.5), np.array(0.5, np.float16)):
        np.testing.assert_array_equal(fastact.elu(x, alpha=v), want)
    np.testing.assert_array_equal(fastact.elu(x, alpha=2), fastact.elu(x, alpha=2.0))
    np.testing.assert_array_equal(fastact.elu(x, alpha=np.int64(2)), fastact.elu(x, alpha=2.0))


def test_axis_may_be_any_integer_but_not_a_bool_or_float():
    x = np.float32([[1, 2, 3], [4, 5, 6]])
    want = fastact.softmax(x, axis=1)
    for ax in (np.int64(1), np.int32(-1), np.uint8(1)):
        np.testing.assert_array_equal(fastact.softmax(x, axis=ax), want)
    for ax in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="softmax: axis must be an int"):
            fastact.softmax(x, axis=ax)


def test_zero_d_backward_names_grad_output():
    with pytest.raises(ValueError, match="softmax_backward: grad_output must have at least one dimension"):
        fastact.softmax_backward(np.float32(1), y=np.float32(1))
    with pytest.raises(ValueError, match="log_softmax: x must have at least one dimension"):
        fastact.log_softmax(np.float32(1))


# 12. Memory held: results are ordinary NumPy arrays, what fastact keeps is bounded and can be released.
def test_large_results_own_their_memory_and_can_be_resized():
    x = np.linspace(-3, 3, 1 << 20, dtype=np.float32)  # 4 MiB: a result from the cache
    y = fastact.gelu(x)
    assert y.flags.owndata and y.base is None
    want = y.copy()
    y.resize(3 << 20, refcheck=False)  # NumPy reallocates through the handler
    np.testing.assert_array_equal(y[: 1 << 20], want)
    assert (y[1 << 20:] == 0).all()
    y.resize(1000, refcheck=False)
    np.testing.assert_array_equal(y, want[:1000])
    import pickle

    z = pickle.loads(pickle.dumps(fastact.silu(x)))
    np.testing.assert_array_equal(z, fastact.silu(x))


def test_cached_results_are_released_on_request_and_when_idle():
    code = """
    import time, numpy as np, fastact
    x = np.ones(1 << 20, np.float32)
    for _ in range(3):
        y = fastact.relu(x); del y
    held = fastact._core.result_cache()[0]
    assert held >= 4 << 20, held
    assert fastact.release_memory() == held and fastact._core.result_cache()[0] == 0
    y = fastact.relu(x); del y
    assert fastact._core.result_cache()[0] > 0
    deadline = time.monotonic() + fastact._core.RESULT_CACHE_IDLE_SECONDS * 5 + 5  # idle, then one more wake
    while fastact._core.result_cache()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fastact._core.result_cache()[0] == 0, "not given back when idle"
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@no_asan
def test_long_16_bit_softmax_rows_keep_no_row_sized_scratch():
    pytest.importorskip("ml_dtypes")
    code = """
    import ml_dtypes, numpy as np, fastact
    fastact.set_num_threads(2)
    x32 = np.random.default_rng(0).standard_normal((2, 1 << 25), np.float32)
    x = x32.astype(ml_dtypes.bfloat16); out = np.zeros_like(x)  # 64 MiB each, touched
    want = fastact.softmax(x.astype(np.float32)).astype(ml_dtypes.bfloat16)  # the float32 result rounded once
    rss = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) << 10
    before = rss()
    fastact.softmax(x, out=out)  # rows of 2^25: exp is computed again in the write pass, not kept
    grown = rss() - before
    assert grown < 32 << 20, f"{grown >> 20} MiB kept after the call"
    assert (out.view(np.uint16) == want.view(np.uint16)).all()
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "ok" in r.stdout, (r.stdout, r.stderr)


def test_show_config_reports_the_memory_held():
    import io

    s = io.StringIO()
    fastact.show_config(file=s)
    assert "memory held" in s.getvalue() and "release_memory" in s.getvalue()


# Found by an adversarial run against the installed package after the fixes above (each failed then).
def test_producers_with_the_legacy_dlpack_signature_are_read():
    buf = np.float32([-1.0, 2.0])

    class Legacy:  # __dlpack__(stream=None): no max_version keyword, as older PyTorch, CuPy and JAX have it
        def __dlpack_device__(self):
            return (1, 0)

        def __dlpack__(self, stream=None):
            return buf.__dlpack__()

    np.testing.assert_array_equal(fastact.relu(Legacy()), [0.0, 2.0])
    with pytest.raises(ValueError, match="out is read-only"):  # a legacy capsule cannot say it may be written
        fastact.relu(buf, out=Legacy())


@pytest.mark.skipif(not X86, reason="x86's fenv constants; the C++ tests cover FPCR / FPSR")
def test_parameter_checks_and_conversions_run_in_fastacts_floating_point_state():
    code = """
    import ctypes, fractions, numpy as np, fastact
    libm = ctypes.CDLL("libm.so.6")
    x = np.ones(4, np.float32); x64 = np.linspace(-3, 3, 64)
    want = fastact.elu(-x64, alpha=fractions.Fraction(1, 3))
    libm.feenableexcept(0x01 | 0x04 | 0x08 | 0x10 | 0x20)  # every trap: a check in the caller's state dies
    for call, err in [(lambda: fastact.elu(x, alpha=1e39), ValueError),
                      (lambda: fastact.elu(x, alpha=1e-46), None),
                      (lambda: fastact.elu_backward(x, y=x, alpha=float("nan")), ValueError),
                      (lambda: fastact.leaky_relu(x), None)]:
        try:
            call()
            assert err is None
        except ValueError:
            assert err is ValueError
    libm.fedisableexcept(0x3d)
    libm.fesetround(0x800)  # upward: a Fraction's float would round up in the caller's state
    got = fastact.elu(-x64, alpha=fractions.Fraction(1, 3))
    libm.fesetround(0)
    assert (got == want).all()
    libm.feclearexcept(0x3d)
    fastact.softmax(np.float32([0.5, 1, -1, 2, -200, 200]))
    assert libm.fetestexcept(0x3d) == 0, "status flags raised by the call reached the caller"
    print("ok")
    """
    r = run_child(code)
    assert r.returncode == 0 and "ok" in r.stdout, (r.returncode, r.stdout, r.stderr)


def test_an_out_exported_as_a_copy_is_refused():
    a = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="out was exported as a copy"):
        fastact.relu(np.ones(4, np.float32), out=Producer(a, (4,), copied=True))

    class DLPackOnly:  # __dlpack__ without __dlpack_device__: never through np.asarray (a copy) as out=
        def __dlpack__(self, **kw):
            return a.__dlpack__(**kw)

        def __array__(self, dtype=None, copy=None):
            return a.copy()

    with pytest.raises(TypeError, match=r"relu: out must be a NumPy array or a DLPack tensor"):
        fastact.relu(np.ones(4, np.float32), out=DLPackOnly())
    assert not a.any()
    np.testing.assert_array_equal(fastact.relu(Producer(np.float32([-1, 1]), (2,), copied=True)), [0, 1])  # input: fine


def test_dlpack_tensors_without_data_or_with_any_stride_on_single_elements():
    p = Producer(np.zeros(4, np.float32), (4,), null_data=True)
    with pytest.raises(ValueError, match="relu: x: a DLPack tensor with elements but no data pointer"):
        fastact.relu(p)
    assert p.deleted == 1
    assert fastact.relu(Producer(np.zeros(4, np.float32), (0,), null_data=True)).shape == (0,)
    buf = np.float32([-1.0, 2.0, -3.0])
    r = fastact.relu(Producer(buf, (3, 1), strides=(1, 2 ** 62)))  # any stride along one element (PyTorch's
    np.testing.assert_array_equal(r, [[0.0], [2.0], [0.0]])        # empty_strided takes such)
    assert fastact.relu(Producer(buf, (0, 3), strides=(2 ** 62, 1))).shape == (0, 3)


def test_interrupts_pass_through_as_they_are():
    class Interrupting:
        def __dlpack_device__(self):
            return (1, 0)

        def __dlpack__(self, **kw):
            raise KeyboardInterrupt

    class Slope:
        def __float__(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fastact.relu(Interrupting())
    with pytest.raises(KeyboardInterrupt):
        fastact.elu(np.ones(2, np.float32), alpha=Slope())


def test_other_devices_masked_arrays_and_failing_array_likes_are_named():
    class OtherDevice:
        def __dlpack_device__(self):
            return (8, 0)  # DLPack's Metal

        def __dlpack__(self, **kw):
            raise AssertionError("never exported")

    with pytest.raises(ValueError, match="relu: x is on DLPack device type 8"):
        fastact.relu(OtherDevice())
    m = np.ma.masked_array(np.float32([1, -1]), mask=[False, True])
    with pytest.raises(TypeError, match=r"sigmoid: x is a masked array"):
        fastact.sigmoid(m)

    class Broken:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("cannot")

    with pytest.raises(TypeError, match="relu: x could not be converted to an array: cannot"):
        fastact.relu(Broken())


def test_a_torch_out_moves_its_version_counter():
    torch = torch_or_skip()
    w = torch.ones(3)
    p = torch.ones(3, requires_grad=True)
    loss = (p * w).sum()  # saves w for the backward
    fastact.relu(w, out=w)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_huge_shapes_in_the_overlap_check_do_not_enumerate():
    assert fastact._core._has_internal_overlap([2 ** 21, 2 ** 43], [1, 2 ** 21 - 1])  # counted as overlapping
    r = run_child("import fastact", FASTACT_NUM_THREADS=" 2")
    assert r.returncode != 0 and "FASTACT_NUM_THREADS=' 2' is not valid" in r.stderr


# Found by a review of the change: an out= whose strides are not whole elements, overlapping an input, went
# through a temporary and was then written with np.copyto in an order-dependent way.
def test_an_out_of_partial_elements_is_refused_even_when_it_overlaps_an_input():
    buf = np.zeros(64, np.float32)
    x = buf[:8]
    x[:] = np.arange(8) - 3
    out = np.lib.stride_tricks.as_strided(buf, (8,), (2,), writeable=True)  # half an element apart
    with pytest.raises(ValueError, match="relu: out must be aligned to its element size"):
        fastact.relu(x, out=out)
    with pytest.raises(TypeError, match="sigmoid: out is a masked array"):
        fastact.sigmoid(x, out=np.ma.masked_array(np.zeros(8, np.float32)))
