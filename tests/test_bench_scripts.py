"""The benchmark scripts the README quotes still run and measure what they say: bench/compare.py times the ops
asked for against the alternatives installed (ops with required parameters included), every alternative it
times computes the op it stands for (forward, and PyTorch's backward), and bench/alt_accuracy.py measures
them against the same references. A few inputs and one round each: what they print is checked, not times."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
OPS = "relu,softcap,threshold,mish,hardtanh"


def _run(*args):
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_compare_times_every_op_asked_for():
    out = _run(str(BENCH / "compare.py"), "--ops", OPS, "--sizes", "1024", "--rounds", "1", "--settle", "0",
               "--markdown")
    for op in OPS.split(","):
        for d in ("fwd", "bwd"):
            line = next((ln for ln in out.splitlines() if ln.split()[:2] == [op, d]), None)
            assert line is not None, (op, d, out)
            fastact_ns = float(line.split()[2])
            assert fastact_ns > 0
    pytest.importorskip("torch")  # with PyTorch installed every op here has an alternative: a ratio
    for op in OPS.split(","):
        assert any(ln.startswith(f"| {op} | fwd | ") and "x)" in ln for ln in out.splitlines()), (op, out)


def test_alt_accuracy_measures_ops_with_required_parameters():
    out = _run(str(BENCH / "alt_accuracy.py"), "--ops", "softcap,threshold,mish", "--stride", "1000003")
    for op in ("softcap", "threshold", "mish"):
        line = next(ln for ln in out.splitlines() if ln.split()[:2] == [op, "fastact"])
        worst = float(line.split()[2])
        assert worst <= 2.0, line  # fastact's own bound, through the script's reference and parameters


def test_every_alternative_computes_the_op_it_stands_for():
    # the alternatives compare.py times must compute what fastact computes, with the same parameters:
    # every forward (NumPy, PyTorch, JAX, ONNX Runtime, numexpr) and every PyTorch backward, on inputs
    # inside every library's accurate range
    np = pytest.importorskip("numpy")
    sys.path.insert(0, str(BENCH))
    try:
        import compare as C
    finally:
        sys.path.remove(str(BENCH))
    import fastact

    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, 1024).astype(np.float32)
    g = rng.uniform(-2, 2, 1024).astype(np.float32)
    rows = x.reshape(-1, 1024)
    ops = {o["name"]: o for o in fastact.ops() if o["kind"] == "elementwise"}
    ys = {n: C.op_fn(o)(x) for n, o in ops.items()}

    def close(got, want, what):
        if isinstance(got, (list, tuple)):
            got = got[0]
        got = np.asarray(got.detach().numpy() if hasattr(got, "detach") else got, np.float64).reshape(-1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=what)

    checked = 0
    fwd_maps = {"numpy": C.numpy_impls(x, rows), "jax": C.jax_impls(x, rows), "ort": C.ort_impls(x, rows, 1),
                "numexpr": C.numexpr_impls(x, 1)}
    tf, tb = C.torch_impls(x, rows, g, ys)
    fwd_maps["torch"] = tf
    for lib, m in fwd_maps.items():
        for (name, variant), f in (m or {}).items():
            if name in ops and not variant:
                close(f(), ys[name].astype(np.float64), f"{lib} {name}")
                checked += 1
    for (name, variant), f in (tb or {}).items():
        if name in ops and not variant:
            want = C.op_fn(ops[name], "_backward")(g, x).astype(np.float64)
            close(f(), want, f"torch backward {name}")
            checked += 1
    assert checked >= (17 if tf is None else 40), checked


def test_pointwise_losses_bench_times_every_loss_against_alternatives_that_compute_it():
    import numpy as np

    import fastact
    sys.path.insert(0, str(BENCH))
    try:
        from pointwise_losses import numpy_loss
    finally:
        sys.path.pop(0)
    names = [o["name"] for o in fastact.ops() if o["kind"] == "loss"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000).astype(np.float32) * 3
    for name in names:  # the NumPy stand-in is the loss (defaults) and its gradient of the mean
        t = rng.random(5000, dtype=np.float32) if name.startswith("binary") else rng.standard_normal(5000, dtype=np.float32)
        np.testing.assert_allclose(numpy_loss(name, x, t, False), getattr(fastact, name)(x, t), rtol=1e-5)
        np.testing.assert_allclose(numpy_loss(name, x, t, True), getattr(fastact, name + "_backward")(1.0, x, t),
                                   rtol=1e-4, atol=1e-9)
    out = _run(str(BENCH / "pointwise_losses.py"), "--n", "4096", "--runs", "1")
    for name in names:
        for d in ("fwd", "fwd+bwd"):
            assert any(ln.startswith(f"| {name} | float32 | {d} | ") and "x |" in ln for ln in out.splitlines()), (name, d, out)


def _instructions(*args):
    r = subprocess.run([sys.executable, str(BENCH / "instructions.py"), *args], capture_output=True, text=True,
                       timeout=600)
    if "PTRACE_TRACEME) was refused" in r.stderr:
        pytest.skip("this kernel refuses ptrace to the test's child processes")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # "label   isa count  isa count ...": a '?' (inexact) or 'error' makes the float conversion fail
    return {ln[:28].strip(): {i: float(c) for i, c in zip(ln[28:].split()[::2], ln[28:].split()[1::2])}
            for ln in r.stdout.splitlines()}


def test_instruction_counts_are_exact_and_fall_with_the_vector_width():
    """bench/instructions.py counts by single-stepping: the count per element from n to 2n and from 2n to
    3n elements must agree (else '?'), and a wider vector executes fewer instructions per element."""
    import fastact

    isas = fastact.supported_isas()
    rows = _instructions("--ops", "relu", "--isa", "all", "-n", "1024")
    for label in ("relu", "relu bwd(x)", "relu bwd(y)"):
        counts = [rows[label][i] for i in isas]
        assert all(c > 0 for c in counts), (label, rows)
        assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts), (label, isas, counts)
    rows = _instructions("--ops", "softmax", "-n", "1024")  # the row engine's blocks of rows: still exact
    assert rows["softmax"][fastact.get_isa()] > rows["softmax bwd(y)"][fastact.get_isa()] > 0, rows
