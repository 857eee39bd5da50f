"""python -m fastact plot: every activation of the registry and its derivative, drawn from fastact itself."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="pip install .[test] installs matplotlib")

from fastact import plot  # noqa: E402


def test_the_command_writes_a_png_of_every_activation(tmp_path):
    out = tmp_path / "acts.png"
    r = subprocess.run([sys.executable, "-m", "fastact", "plot", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{len(plot.activations())} activations" in r.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_every_registry_activation_is_drawn():
    kinds = {o["name"]: o["kind"] for o in plot.activations()}
    assert {"relu", "gelu", "softmax", "swiglu"} <= set(kinds)
    assert not {"mse_loss", "prelu", "bias_act"} & set(kinds)


@pytest.mark.parametrize("op", plot.activations(), ids=lambda o: o["name"])
def test_each_panel_shows_the_derivative_of_its_curve(op):
    x = np.linspace(-5, 5, 801)
    y, dy, _ = plot._curves(op, x)
    assert y.shape == dy.shape == x.shape and np.isfinite(y).all() and np.isfinite(dy).all()
    fd = np.gradient(y, x)
    assert np.median(np.abs(fd - dy)) < 1e-3, op["name"]


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="ops must name activations"):
        plot.plot_activations(str(tmp_path / "a.png"), ["gelu", "mse_loss"])
    with pytest.raises(ValueError, match="x_range"):
        plot.plot_activations(str(tmp_path / "a.png"), ["gelu"], (1.0, -1.0))
    r = subprocess.run([sys.executable, "-m", "fastact", "plot", "--out", str(tmp_path / "b.png"), "--range", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--range" in r.stderr
    for args in (["--ops", "gelu,nope"], ["--out", str(tmp_path / "c.xyz")], ["--out", str(tmp_path / "no" / "d.png")],
                 ["--range", "5,-5"]):
        argv = ["--out", str(tmp_path / "e.png")] + args if args[0] != "--out" else args
        r = subprocess.run([sys.executable, "-m", "fastact", "plot", *argv], capture_output=True, text=True)
        assert r.returncode == 2 and "usage" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
