"""The worked examples run (in a reduced form) and show what they claim."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

pytest.importorskip("sklearn", reason="pip install .[test] installs scikit-learn (the digits data set)")
import dying_relu  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return dying_relu.load_digits(0)


def _variant(prefix):
    return next(v for v in dying_relu.VARIANTS if v.name.startswith(prefix))


def test_the_script_prints_its_table_and_draws_its_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "d.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "dying_relu.py"), "--epochs", "2", "--plot", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n| ") == len(dying_relu.VARIANTS) + 1
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_dying_relu_and_its_fixes_in_a_short_run(digits):
    res = {v.name: dying_relu.train(v, digits, 3) for v in dying_relu.VARIANTS}
    base = res[_variant("baseline").name]
    assert base["dead"] == [0.0, 0.0] and base["accuracy"] > 0.8
    high = res[_variant("relu, learning rate 2").name]
    assert np.isfinite(high["losses"]).all()
    assert high["dead"][1] > 0.5 and high["accuracy"] < 0.5  # large steps kill the second layer's units
    clipped = res[_variant("fix: relu, lr 1 with gradient clipping").name]
    assert max(clipped["dead"]) < 0.05 and clipped["accuracy"] > 0.9
    assert max(res[_variant("fix: relu, lr 2 with gradient clipping").name]["dead"]) < 0.1
    biased = res[_variant("relu, hidden biases").name]
    assert biased["dead"][1] > 0.8 and biased["accuracy"] < 0.2
    kaiming = res[_variant("fix: relu, Kaiming").name]
    assert max(kaiming["dead"]) < 0.05 and kaiming["accuracy"] > 0.9


@pytest.mark.parametrize("variant", dying_relu.VARIANTS, ids=lambda v: v.name)
def test_the_same_model_in_pytorch_gives_the_same_losses(variant, digits):
    pytest.importorskip("torch")
    ours = np.array(dying_relu.train(variant, digits, 1)["losses"])
    theirs = np.array(dying_relu.train_torch(variant, digits, 1))
    # float32 rounding in the first steps (a wrong gradient anywhere is ~1e-3 at the second step); the two
    # trainings then drift apart as any two float32 runs do, fastest at the highest rates
    first, _ = dying_relu._rel_diff(ours, theirs, 10)
    assert first < 1e-5, f"{variant.name}: step losses differ from PyTorch's by {first:.1e} (relative)"
