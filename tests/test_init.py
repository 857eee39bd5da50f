"""fastact.init against PyTorch's torch.nn.init (gains, fans, the distributions' parameters) and
fastact.dead_units against a direct count."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastact
from fastact import init

torch = pytest.importorskip("torch")

GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
         ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
         ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("leaky_relu", math.sqrt(5)), ("selu", None)]


@pytest.mark.parametrize("name,param", GAINS)
def test_calculate_gain_is_pytorchs(name, param):
    assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope True is not a valid number"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(TypeError, match="nonlinearity must be a str"):
        init.calculate_gain(None)


SHAPES = [(300, 200), (64, 3, 5, 5), (10, 4, 7), (1000, 1)]


def _std_and_bound(fn, shape, **kw):
    """PyTorch's std (normal) or bound (uniform) for fn on shape: read off its own code path by filling a
    tensor of ones through a generator-free scale (a zero-mean distribution's parameter)."""
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    if fn.startswith("kaiming"):
        mode = kw.get("mode", "fan_in")
        fan = fan_in if mode == "fan_in" else fan_out
        std = torch.nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0)) / math.sqrt(fan)
    else:
        std = kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    return std, math.sqrt(3.0) * std


CASES = [("kaiming_normal_", {}), ("kaiming_normal_", {"nonlinearity": "relu"}),
         ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"}), ("kaiming_uniform_", {}),
         ("kaiming_uniform_", {"a": math.sqrt(5)}), ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
         ("xavier_normal_", {}), ("xavier_normal_", {"gain": 5 / 3}), ("xavier_uniform_", {}),
         ("xavier_uniform_", {"gain": 2.0})]


@pytest.mark.parametrize("fn,kw", CASES, ids=[f"{f}-{k}" for f, k in CASES])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_initialisers_follow_pytorch(fn, kw, shape):
    """The same distribution as PyTorch's on the same shape: uniform within PyTorch's bound and reaching
    near it, normal with PyTorch's standard deviation (a sample's, within its sampling error); the same
    seed gives the same array; the array is filled in place and returned."""
    a = np.empty(shape, np.float32)
    r = getattr(init, fn)(a, rng=1, **kw)
    assert r is a and np.isfinite(a).all()
    std, bound = _std_and_bound(fn, shape, **kw)
    t = torch.empty(shape)
    getattr(torch.nn.init, fn)(t, **kw)
    n = a.size
    if "uniform" in fn:
        assert np.abs(a).max() <= bound * (1 + 1e-6)
        assert np.abs(a).max() >= bound * (1 - 20 / n)  # n uniform samples reach within ~bound / n of it
        assert float(t.abs().max()) <= bound * (1 + 1e-6)
    sd = float(a.astype(np.float64).std())
    want = std  # (a uniform's std is bound / sqrt(3) = std too)
    assert abs(sd - want) <= 6 * want / math.sqrt(2 * n) + 1e-12
    assert abs(float(t.double().std()) - want) <= 6 * want / math.sqrt(2 * n) + 1e-12  # the oracle agrees
    assert np.array_equal(getattr(init, fn)(np.empty(shape, np.float32), rng=1, **kw), a)
    g = np.random.default_rng(5)
    b = getattr(init, fn)(np.empty(shape, np.float64), rng=g, **kw)
    assert not np.array_equal(b.astype(np.float32), a)


def test_initialiser_errors_and_edges():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal_(np.empty(5, np.float32))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_uniform_(np.empty((2, 2)), mode="fan")
    with pytest.raises(TypeError, match="expected a NumPy array"):
        init.xavier_normal_([[1.0, 2.0]])
    with pytest.raises(TypeError, match="floating-point dtype"):
        init.zeros_(np.ones((2, 2), np.int64))
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.xavier_uniform_(ro)
    with pytest.raises(TypeError, match="rng must be"):
        init.kaiming_normal_(np.empty((2, 2)), rng="seed")
    with pytest.raises(ValueError, match="gain must be a finite number >= 0"):
        init.xavier_uniform_(np.empty((2, 2)), gain=-1)
    with pytest.raises(ValueError, match="share memory"):
        init.kaiming_normal_(np.lib.stride_tricks.as_strided(np.zeros(3), (4, 3), (0, 8)))
    with pytest.raises(ValueError, match="rng -1"):
        init.kaiming_normal_(np.empty((2, 2)), rng=-1)
    a = init.kaiming_normal_(np.empty((3, 3)), mode="FAN_OUT", rng=np.random.SeedSequence(3))
    np.testing.assert_array_equal(a, init.kaiming_normal_(np.empty((3, 3)), mode="fan_out", rng=3))
    e = np.empty((0, 3), np.float32)
    assert init.kaiming_normal_(e) is e  # an empty weight: nothing to fill (PyTorch warns and returns it)
    z = np.ones((3, 4), np.float32)[:, ::2]
    assert init.zeros_(z) is z and not z.any()


def test_dead_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10))
    h = fastact.relu(x - np.array([0, 0, 0, 50, 50, 0, 0, 0, 0, 50]))  # three units pushed far below 0
    assert fastact.dead_units(h) == pytest.approx(0.3)
    assert fastact.dead_units(h.T, axis=1) == pytest.approx(0.3)
    assert fastact.dead_units(np.zeros((4, 5))) == 1.0
    assert fastact.dead_units(np.ones((4, 5))) == 0.0
    leaky = fastact.leaky_relu(x - 50)  # negative outputs are not firing either
    assert fastact.dead_units(leaky) == 1.0
    seq = np.zeros((8, 6, 4))  # (batch, positions, units): units 0 and 2 fire somewhere
    seq[3, 5, 0] = seq[0, 0, 2] = 1.0
    assert fastact.dead_units(seq, axis=(0, 1)) == 0.5
    nan = np.array([[np.nan, 1.0], [np.nan, 0.0]])
    assert fastact.dead_units(nan) == 0.5
    with pytest.raises(ValueError, match="out of range"):
        fastact.dead_units(h, axis=2)
    assert fastact.dead_units(np.zeros(5)) == 1.0  # a batch of one unit
    with pytest.raises(ValueError, match="no units"):
        fastact.dead_units(np.zeros((5, 0)))
    with pytest.raises(ValueError, match="repeats an axis"):
        fastact.dead_units(seq, axis=(0, 0))
    with pytest.raises(TypeError, match="real numbers"):
        fastact.dead_units(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="axis must be an int"):
        fastact.dead_units(h, axis=1.0)
    with pytest.raises(ValueError, match="got \\(\\)"):
        fastact.dead_units(h, axis=())
    with pytest.raises(ValueError, match="no sample"):
        fastact.dead_units(np.zeros((0, 5)))
    with pytest.raises(TypeError, match="masked arrays"):
        fastact.dead_units(np.ma.masked_array(h))
