"""The fuzzing harness (tests/fuzz/fuzz_calls.py) runs: a short fixed run here, so it cannot rot; CI runs
it for a minute of coverage-guided fuzzing (.ci/run)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_fuzz_harness_runs_clean():
    pytest.importorskip("atheris", reason="atheris (pip install atheris) drives the fuzzing harness")
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", "fuzz_calls.py"), "-runs=20000", "-seed=1",
                        "-rss_limit_mb=4096"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Done 20000 runs" in r.stderr
