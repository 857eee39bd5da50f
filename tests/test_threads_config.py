"""Threads, ISA selection, configuration and the command line."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastact
from conftest import ELEMENTWISE, op_fn


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_results_do_not_depend_on_thread_count(op):
    f = op_fn(op)
    x = np.random.default_rng(0).standard_normal(300_003).astype(np.float32) * 5
    before = fastact.get_num_threads()
    try:
        res = []
        for n in (1, 2, 3, 7):
            fastact.set_num_threads(n)
            assert fastact.get_num_threads() == n
            res.append(f(x))
            res.append(fastact.softmax(x.reshape(-1, 3)[:, :2], axis=0))
    finally:
        fastact.set_num_threads(before)
    for a, b in zip(res[::2], res[2::2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(res[1::2], res[3::2]):
        np.testing.assert_array_equal(a, b)


def test_many_python_threads_at_once():
    x = np.random.default_rng(1).standard_normal(200_000).astype(np.float32)
    want = fastact.gelu(x)
    wantm = fastact.softmax(x.reshape(-1, 100))
    errors = []

    def work():
        try:
            for _ in range(20):
                if not np.array_equal(fastact.gelu(x), want) or not np.array_equal(
                        fastact.softmax(x.reshape(-1, 100)), wantm):
                    errors.append("mismatch")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=work) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def _run(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


def test_environment_variables():
    r = _run("import fastact; print(fastact.get_num_threads(), fastact.get_isa())", FASTACT_NUM_THREADS="3",
             FASTACT_ISA="scalar")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "scalar"]
    r = _run("import fastact", FASTACT_ISA="avx1024")
    assert r.returncode != 0 and "FASTACT_ISA=avx1024 is not available" in r.stderr
    assert "Segmentation" not in r.stderr


def test_set_isa_round_trip():
    before = fastact.get_isa()
    for isa in fastact.supported_isas():
        fastact.set_isa(isa)
        assert fastact.get_isa() == isa
    fastact.set_isa("best")
    assert fastact.get_isa() == fastact.supported_isas()[-1]
    fastact.set_isa(before)
    assert set(fastact.supported_isas()) <= set(fastact.compiled_isas())


def test_show_config_and_cli():
    import io

    s = io.StringIO()
    fastact.show_config(file=s)
    text = s.getvalue()
    for key in ("fastact", "ISA in use", fastact.get_isa(), "threads", "CUDA"):
        assert key in text
    r = subprocess.run([sys.executable, "-m", "fastact"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ISA in use" in r.stdout and "softmax" in r.stdout and "ns per element" in r.stdout


def test_registry_drives_the_api():
    names = {o["name"] for o in fastact.ops()}
    assert {"relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax", "log_softmax"} <= names
    for n in names:
        assert callable(getattr(fastact, n)) and callable(getattr(fastact, n + "_backward"))
        assert getattr(fastact, n).__doc__
    assert fastact.swish is fastact.silu
    import inspect

    sig = inspect.signature(fastact.elu)
    assert sig.parameters["alpha"].default == 1.0 and sig.parameters["alpha"].kind == inspect.Parameter.KEYWORD_ONLY


def test_fork_after_threads_were_used():
    # The parent's workers do not exist in a forked child: the pool must start afresh there, not hang.
    code = """
import os, numpy as np, fastact
x = np.linspace(-5, 5, 1 << 20, dtype=np.float32)
want = fastact.gelu(x)          # starts the pool's workers
pid = os.fork()
if pid == 0:
    ok = np.array_equal(fastact.gelu(x), want) and np.array_equal(fastact.softmax(x.reshape(64, -1)),
                                                                   fastact.softmax(x.reshape(64, -1)))
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    r = _run(code, FASTACT_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


def test_large_results_reuse_released_buffers():
    """Results of >= 1 MiB come from a cache of released buffers: reuse must never leak old values
    into a result, nor hand one buffer to two live arrays."""
    n = 1 << 19  # 2 MiB of float32
    x = np.linspace(-4, 4, n, dtype=np.float32)
    a = fastact.gelu(x)
    want_a = a.copy()
    b = fastact.sigmoid(x)  # a is alive: b must not share its memory
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, want_a)
    del a  # its buffer goes back to the cache
    c = fastact.relu(x)  # may reuse a's buffer: every element is rewritten
    np.testing.assert_array_equal(c, np.maximum(x, 0))
    f = np.asfortranarray(np.tile(x[:1024], (1024, 2)).reshape(1024, 2048)).T  # F-order input keeps F order
    r = fastact.tanh(f)
    assert r.flags.f_contiguous == f.flags.f_contiguous and r.flags.c_contiguous == f.flags.c_contiguous
    np.testing.assert_array_equal(r, fastact.tanh(np.ascontiguousarray(f)))
    assert r.flags.writeable and r.flags.aligned
    held, limit = fastact._core.result_cache()
    assert 0 <= held <= limit


def test_large_outputs_stream_with_the_same_bits():
    """Outputs of float32/float64 calls past stream_min_bytes per thread are stored non-temporally (the
    C++ tests check every kernel at every alignment); here the public path, against a run with it off."""
    n = fastact._core.stream_min_bytes() // 4 * 2 + 37  # float32: past the threshold with 2 threads
    code = ("import hashlib, numpy as np, fastact; fastact.set_num_threads(2); "
            f"x = np.linspace(-20, 20, {n}, dtype=np.float32)[1:]; o = np.empty(x.size + 1, np.float32)[1:]; "
            "fastact.silu(x, out=o); print(hashlib.sha256(o.tobytes()).hexdigest(), o[12345])")
    on = _run(code)
    off = _run(code, FASTACT_STREAM_STORES="0")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert on.stdout == off.stdout and len(on.stdout) > 64, (on.stdout, off.stdout)
    r = _run("import fastact; print(fastact._core.stream_min_bytes())", FASTACT_STREAM_STORES="0")
    assert int(r.stdout) >= 1 << 62


def test_result_cache_can_be_turned_off():
    code = ("import numpy as np, fastact; x = np.ones(1 << 20, np.float32); y = fastact.relu(x); del y; "
            "assert fastact._core.result_cache() == (0, 0), fastact._core.result_cache(); print('ok')")
    r = _run(code, FASTACT_RESULT_CACHE_MB="0")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
