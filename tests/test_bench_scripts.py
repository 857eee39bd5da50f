"""The benchmark scripts the README quotes still run: bench/compare.py times every catalog op against the
alternatives installed (ops with required parameters included), and bench/alt_accuracy.py measures them
against the same references. A few inputs and one round each: what they print is checked, not their times."""
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
