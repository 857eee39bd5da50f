"""Arrays for the tests of the several-operand ops (gated, broadcast): values with special values mixed in,
the four dtypes, layouts of the same values, and bit-for-bit comparison (NaN where NaN, payloads aside)."""
from __future__ import annotations

import numpy as np

try:
    import ml_dtypes

    DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except ImportError:  # pragma: no cover - a test extra
    DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-38, 3e38, -88.7, 20.0, -20.0, 1.0, -1.0]


def values(shape, dtype, seed, specials=True):
    """Normal values (sd 4) of shape, the special values shuffled in (specials=True)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    if specials:
        flat = x.reshape(-1)
        flat[: min(flat.size, len(SPECIALS))] = SPECIALS[: min(flat.size, len(SPECIALS))]
        rng.shuffle(flat)
    with np.errstate(all="ignore"):
        return x.astype(dtype)


def ill_conditioned(shape, dtype, seed):
    """Ordinary values (+-0.5 to 1.5) among a tenth of +-2^26 (+-2^55 for float64): sums whose last bits
    depend on which Kahan lane took which value (a compensated sum of ordinary values is correctly rounded in
    any order, so bit tests on them cannot tell one order from another)."""
    rng = np.random.default_rng(seed)
    big = 2.0 ** (55 if np.dtype(dtype) == np.float64 else 26)
    v = np.where(rng.random(shape) < 0.1, big, rng.uniform(0.5, 1.5, shape))
    return (v * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def compute_type(dtype):
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def bits(x):
    x = np.asarray(x)
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
    v = x.view(u).copy()
    with np.errstate(all="ignore"):
        v[np.isnan(x.astype(np.float64))] = 0  # NaN where NaN; payloads aside
    return v


def same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    with np.errstate(all="ignore"):
        gn, wn = np.isnan(got.astype(np.float64)), np.isnan(want.astype(np.float64))
    np.testing.assert_array_equal(gn, wn)
    bad = bits(got) != bits(want)
    assert not bad.any(), f"{bad.sum()} differ, first at {np.argwhere(bad)[0]}: {got[bad][:4]} vs {want[bad][:4]}"


LAYOUTS = ["c", "f", "reversed", "gapped"]


def laid_out(x, layout):
    """x's values in another layout: Fortran order, negative strides, or every other element of a larger array."""
    if layout == "f":
        return np.array(x, order="F")
    if layout == "reversed":
        return x[tuple(slice(None, None, -1) for _ in x.shape)].copy()[tuple(slice(None, None, -1) for _ in x.shape)]
    if layout == "gapped":
        big = np.zeros(tuple(2 * n for n in x.shape), x.dtype)
        big[tuple(slice(None, None, 2) for _ in x.shape)] = x
        return big[tuple(slice(None, None, 2) for _ in x.shape)]
    return x
