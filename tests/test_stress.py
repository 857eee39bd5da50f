"""Stress: many Python threads on shared inputs, fork with calls in flight, 200,000 calls (failing ones
among them) without growth, and one array of more than 2^31 elements. Process-wide checks run in child
processes with a timeout: a hang or a crash fails the test, it does not take the suite down."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import fastact
from conftest import ELEMENTWISE, ROW, backward_modes, op_fn
from test_hardening import no_asan, run_child

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - a test extra
    BF16 = None


def test_eight_threads_on_shared_inputs_get_exact_results():
    rng = np.random.default_rng(3)
    dtypes = [np.float32, np.float64, np.float16] + ([BF16] if BF16 is not None else [])
    cases = []  # (function, args, kwargs, expected)
    for dt in dtypes:
        for n in (7, 5000, 70_000):  # below and above the GIL threshold and the threading grain
            x = (rng.standard_normal(n) * 6).astype(dt)
            g = rng.standard_normal(n).astype(dt)
            for op in ELEMENTWISE:
                f = op_fn(op)
                cases.append((f, (x,), {}, f(x)))
                m = backward_modes(op, {})[0]
                b = op_fn(op, "_backward")
                arg = x if m == "x" else cases[-1][3]
                cases.append((b, (g,), {m: arg}, b(g, **{m: arg})))
            for op in ROW:
                f = op_fn(op)
                xr = x[: n // 7 * 7].reshape(7, -1)
                cases.append((f, (xr,), {"axis": 0}, f(xr, axis=0)))
                cases.append((f, (xr,), {}, f(xr)))
    cases.append((fastact.relu, ([1.0, -2.0, 3.0],), {}, np.array([1.0, 0.0, 3.0])))
    errors = []
    barrier = threading.Barrier(8)

    def work(k):
        try:
            barrier.wait()
            order = np.random.default_rng(k).permutation(len(cases))
            for rep in range(3):
                for i in order:
                    f, args, kw, want = cases[i]
                    if rep == 1:  # through out=, each thread into its own array
                        out = np.empty_like(want)
                        r = f(*args, **kw, out=out)
                        assert r is out
                    else:
                        r = f(*args, **kw)
                    if not np.array_equal(np.asarray(r).view(np.uint8), np.asarray(want).view(np.uint8)):
                        errors.append((f.__name__, i))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_with_calls_in_flight():
    """Threads keep calling (the pool busy, 16-bit tables being built, results cached and freed) while the
    main thread forks; every child computes (threaded, tables, the result cache) and exits, none hangs."""
    code = """
    import os, signal, threading, numpy as np, fastact
    fastact.set_num_threads(2)
    x = np.linspace(-5, 5, 1 << 20, dtype=np.float32)
    h = x.astype(np.float16)
    want, want_h = fastact.gelu(x), fastact.silu(h, beta=0.5)
    stop = threading.Event()
    def busy(k):
        i = 0
        while not stop.is_set():
            i += 1
            fastact.gelu(x); fastact.softmax(x.reshape(256, -1))
            fastact.silu(h, beta=1.0 + (k * 1000 + i) % 60 / 64)  # new tables, built under the lock
    ts = [threading.Thread(target=busy, args=(k,)) for k in range(3)]
    for t in ts: t.start()
    bad = 0
    for _ in range(40):
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)
            s = fastact.silu(h, beta=0.3125)  # a table built in the child (small calls compute: the same bits)
            ok = (np.array_equal(fastact.gelu(x), want) and np.array_equal(fastact.silu(h, beta=0.5), want_h)
                  and np.array_equal(s[:100], fastact.silu(h[:100], beta=0.3125)))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        bad += os.waitstatus_to_exitcode(status) != 0
    stop.set()
    for t in ts: t.join()
    print("bad children:", bad)
    """
    r = run_child(code, timeout=300)
    assert r.returncode == 0 and "bad children: 0" in r.stdout, (r.stdout, r.stderr)


@no_asan
def test_200000_calls_without_growth():
    """Successful and failing calls alike leave nothing behind: memory (RSS), Python objects, references
    to the inputs."""
    code = """
    import gc, sys, numpy as np, fastact
    def rss():
        return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) << 10
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    out = np.empty_like(x)
    bad_out = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (64,), (0,))
    ints = np.zeros(64, np.int32)
    def once(i):
        k = i % 8
        try:
            if k == 0: fastact.gelu(x)
            elif k == 1: fastact.softmax(x.reshape(8, 8), out=out.reshape(8, 8))
            elif k == 2: fastact.silu_backward(x, x, beta=0.5)
            elif k == 3: fastact.relu([1.0, -1.0])
            elif k == 4: fastact.relu(ints)                     # TypeError
            elif k == 5: fastact.elu(x, alpha=float("nan"))    # ValueError
            elif k == 6: fastact.sigmoid(x, out=bad_out)       # ValueError (overlap)
            else: fastact.leaky_relu(x, negative_slope=1j)     # TypeError
        except (TypeError, ValueError):
            pass
    for i in range(20000): once(i)
    gc.collect()
    base_rss, base_objs, base_ref = rss(), len(gc.get_objects()), sys.getrefcount(x)
    for i in range(200000): once(i)
    gc.collect()
    grown = rss() - base_rss
    objs = len(gc.get_objects()) - base_objs
    assert grown < 4 << 20, f"RSS grew by {grown >> 10} KiB"
    assert abs(objs) < 100, f"{objs} more Python objects"
    assert sys.getrefcount(x) == base_ref
    print("ok")
    """
    r = run_child(code, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, (r.stdout, r.stderr)


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            return int([l for l in f if l.startswith("MemAvailable")][0].split()[1]) << 10
    except (OSError, IndexError):  # pragma: no cover - not Linux
        return 0


@pytest.mark.skipif(_available_memory() < 12 << 30, reason="needs 12 GiB of free memory (a 4 GiB array, twice)")
def test_an_array_of_more_than_2_31_elements():
    """Indices past 2^31 (a 4 GiB float16 array): in place, through a strided view, and a long row."""
    code = """
    import numpy as np, fastact
    n = (1 << 31) + 17
    x = np.zeros(n, np.float16)       # calloc'd: pages are touched by the calls, not here
    marks = [0, (1 << 31) - 1, 1 << 31, (1 << 31) + 3, n - 1]
    x[marks] = [-1.0, 2.0, -3.0, 4.0, -5.0]
    fastact.relu(x, out=x)            # in place, threaded, over 2^31 elements
    assert x[marks].tolist() == [0.0, 2.0, 0.0, 4.0, 0.0], x[marks]
    assert not x[1:1000].any() and not x[-12:-1].any()
    v = x[::-1]                        # a negative stride over all of it
    y = fastact.sigmoid(v[: 1 << 20])
    assert y[0] == np.float16(0.5) and y[(n - 1) - ((1 << 31) + 3)] == fastact.sigmoid(np.float16(4.0))
    r = fastact.softmax(x.reshape(1, n))  # one row of 2^31 + 17: split among threads by chunks
    assert r[0, 1 << 31] == 0 and r.dtype == np.float16
    print("ok")
    """
    r = run_child(code, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, (r.stdout, r.stderr)
