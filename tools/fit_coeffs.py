#!/usr/bin/env python3
"""Fit the polynomial kernels of csrc/math and write csrc/math/polynomials.h.

Every transcendental in fastact reduces to a short polynomial on a small interval. The coefficients
are fitted here once, in 60-digit arithmetic (mpmath), as weighted least-squares fits on Chebyshev
nodes (within a small factor of minimax), then rounded to the target type; the error reported is that
of the rounded coefficients, measured in mpmath on a dense grid.

Run:  python tools/fit_coeffs.py            (rewrites csrc/math/polynomials.h, prints the errors)
Needs: mpmath (a dev tool; not needed to build fastact).
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import mpmath as mp

mp.mp.dps = 60

# The Gaussian tail pieces: gelu(x) = x*Phi(x). For a = |x| >= X0, Phi(-a) = exp(-a^2/2) * g(a) / a.
GELU_X0 = mp.mpf("0.5")     # below: Phi(x) = 1/2 + x*S(x^2)
GELU_A1 = {"float": mp.mpf("2.5"), "double": mp.mpf("3.5")}  # [X0, A1): g in v = a - GELU_AC; beyond: u = 1/a
GELU_AC = mp.mpf("1.5")
GELU_AMAX = {"float": mp.mpf(16), "double": mp.mpf(40)}  # exp(-a^2/2) underflows to 0 beyond


# Root of D(a) = g(a) - a^2/sqrt(2 pi): gelu'(-GELU_A0) = 0 (a double word in the C++ constants).
GELU_A0 = mp.mpf("0.75179152469356445745790494677952403966447115342345384838654")


def Phi(x):
    return mp.ncdf(x)


def g_of_a(a):
    """g(a) = a * Phi(-a) * exp(a^2/2): smooth, -> 1/sqrt(2 pi) as a -> inf."""
    return a * Phi(-a) * mp.exp(a * a / 2)


# name: (function of the polynomial variable, interval per type, degree per type, comment)
FITS = {
    # exp(r) = 1 + r + r^2*Q(r), expm1(r) = r + r^2*Q(r), |r| <= ln2/2 after range reduction.
    "exp_q": (lambda r: (mp.expm1(r) - r) / (r * r) if r != 0 else mp.mpf(1) / 2,
              {"float": (-0.35, 0.35), "double": (-0.35, 0.35)}, {"float": 5, "double": 10},
              "exp(r) = 1 + r + r^2*Q(r) on |r| <= ln2/2"),
    # tanh(x) = x + x^3*T(x^2) on |x| <= 0.5625
    "tanh_t": (lambda s: (mp.tanh(mp.sqrt(s)) - mp.sqrt(s)) / (s * mp.sqrt(s)) if s != 0 else -mp.mpf(1) / 3,
               {"float": (0, 0.5625 ** 2), "double": (0, 0.5625 ** 2)}, {"float": 5, "double": 11},
               "tanh(x) = x + x^3*T(x^2) on |x| <= 0.5625"),
    # x - tanh(x) = x^3 (1/3 + s*Q(s)), s = x^2, on |x| <= 1 (tanhshrink; 1/3 is a double word in the caller)
    "tanhshrink_q": (lambda s: ((mp.sqrt(s) - mp.tanh(mp.sqrt(s))) / (s * mp.sqrt(s)) - mp.mpf(1) / 3) / s
                     if s != 0 else -mp.mpf(2) / 15,
                     {"float": (0, 1), "double": (0, 1)}, {"float": 7, "double": 15},
                     "x - tanh(x) = x^3*(1/3 + s*Q(s)), s = x^2, on |x| <= 1"),
    # atanh(s) = s + s^3*L(s^2), |s| <= 3 - 2*sqrt(2) (log of a mantissa in [sqrt(2)/2, sqrt(2)))
    "log_l": (lambda z: (mp.atanh(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)) if z != 0 else mp.mpf(1) / 3,
              {"float": (0, 0.1716 ** 2 * 1.01), "double": (0, 0.1716 ** 2 * 1.01)}, {"float": 3, "double": 7},
              "log(1+f) = 2*atanh(s), s = f/(2+f), atanh(s) = s + s^3*L(s^2)"),
    # Phi(x) = 1/2 + x*S(x^2) on |x| < X0
    "gelu_s": (lambda s: (Phi(mp.sqrt(s)) - mp.mpf(1) / 2) / mp.sqrt(s) if s != 0 else 1 / mp.sqrt(2 * mp.pi),
               {"float": (0, GELU_X0 ** 2), "double": (0, GELU_X0 ** 2)}, {"float": 4, "double": 9},
               "Phi(x) = 1/2 + x*S(x^2) on |x| < 0.5"),
    # g(a) = a*Phi(-a)*exp(a^2/2) as a polynomial in v = a - 1.5 on [X0, A1]
    "gelu_g": (lambda v: g_of_a(v + GELU_AC),
               {t: (GELU_X0 - GELU_AC, GELU_A1[t] - GELU_AC) for t in ("float", "double")},
               {"float": 11, "double": 24},
               "g(a) = a*Phi(-a)*exp(a^2/2), v = a - 1.5, 0.5 <= a <= A1 (2.5 float, 3.5 double)"),
    # D(a) = g(a) - a^2/sqrt(2 pi) = a * exp(a^2/2) * gelu'(-a) vanishes at a0 = 0.7518 (gelu's
    # minimum). Fitting E = D / (a - a0) and forming (a - a0) exactly keeps gelu' accurate near 0.
    "gelu_e": (lambda v: (g_of_a(v + GELU_AC) - (v + GELU_AC) ** 2 / mp.sqrt(2 * mp.pi)) / (v + GELU_AC - GELU_A0),
               {t: (GELU_X0 - GELU_AC, GELU_A1[t] - GELU_AC) for t in ("float", "double")},
               {"float": 11, "double": 24},
               "E(a) = (g(a) - a^2/sqrt(2 pi)) / (a - a0), v = a - 1.5, 0.5 <= a <= A1"),
    # the same g as a polynomial in u = 1/a on [1/AMAX, 1/A1]
    "gelu_h": (lambda u: g_of_a(1 / u),
               {t: (1 / GELU_AMAX[t], 1 / GELU_A1[t]) for t in ("float", "double")},
               {"float": 11, "double": 24},
               "g(a) as a polynomial in u = 1/a, A1 <= a <= AMAX (16 float, 40 double)"),
}


# Fits also emitted as <name>_estrin, evaluated by Estrin's scheme: pairs c[2i] + c[2i+1] x, combined
# with x^2, x^4, ... (the caller passes x^2, which it has): a dependency chain of about log2(degree) FMAs
# instead of one per coefficient. For the lean exp (ExpNeg) on the critical path of sigmoid, silu and
# softmax; the double-word exp keeps Horner's rounding (elu's and gelu's worst cases are the closest
# to 2 ulp, and Estrin's rounding moves them 0.02-0.1 ulp up).
ESTRIN = {"exp_q"}


def estrin_lines(coef, typ):
    """Lines of C++ computing p = sum c[k] x^k by Estrin's scheme, from x and x2 = x*x."""
    out, terms, k = [], [], 0
    for i in range(0, len(coef) - 1, 2):
        out.append(f"    V t{k} = fma(V({fmt(coef[i + 1], typ)}), x, V({fmt(coef[i], typ)}));")
        terms.append(f"t{k}")
        k += 1
    if len(coef) % 2:
        terms.append(f"V({fmt(coef[-1], typ)})")
    power, level = "x2", 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            out.append(f"    V t{k} = fma({terms[i + 1]}, {power}, {terms[i]});")
            nxt.append(f"t{k}")
            k += 1
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        if len(terms) > 1:
            level += 1
            out.append(f"    V x{2 ** (level + 1)} = {power} * {power};")
            power = f"x{2 ** (level + 1)}"
    out.append(f"    return {terms[0]};")
    return out


# Pairs of fits evaluated as one polynomial with per-lane coefficients: a lane takes the first fit's
# coefficients where `second` is false, the second's where it is true (each lane runs exactly the FMAs of
# its own fit, so the bits are those of the separate functions), and a vector pays for one polynomial
# instead of two. The shorter fit is padded with leading zeros (0 * x + c = c for finite x).
PAIRS = {
    "gelu_g_or_h": ("gelu_g", "gelu_h", "gelu_g(x) where second is false, gelu_h(x) where it is true"),
}


def round_to(x, typ):
    f = float(x)
    if typ == "float":
        f = struct.unpack("f", struct.pack("f", f))[0]
    return f


ABSOLUTE: set = set()  # fits weighted for absolute rather than relative error


def _lsq(nodes, vals, weights, deg, fixed):
    """Weighted least squares for the coefficients after the `fixed` (already rounded) ones."""
    k0 = len(fixed)
    m = len(nodes)
    A = mp.matrix(m, deg + 1 - k0)
    b = mp.matrix(m, 1)
    for i, (x, v, w) in enumerate(zip(nodes, vals, weights)):
        r = v - sum(c * x ** j for j, c in enumerate(fixed))
        for j in range(k0, deg + 1):
            A[i, j - k0] = w * x ** j
        b[i] = w * r
    sol, _ = mp.qr_solve(A, b)
    return [sol[j] for j in range(deg + 1 - k0)]


def fit(func, lo, hi, deg, typ, absolute=False):
    """Least squares on Chebyshev nodes, then round-and-refit: round the lowest coefficient to the
    target type, refit the others around it, and so on, so the rounding of each coefficient is
    absorbed by the ones not yet rounded."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    m = 6 * (deg + 1)
    nodes = [(lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (2 * k + 1) / (2 * m)) for k in range(m)]
    vals = [func(x) for x in nodes]
    weights = [1 if absolute else 1 / abs(v) for v in vals]
    rc = []
    for k in range(deg + 1):
        rest = _lsq(nodes, vals, weights, deg, [mp.mpf(c) for c in rc])
        rc.append(round_to(rest[0], typ))
    grid = [lo + (hi - lo) * k / 2000 for k in range(2001)]
    err = 0
    for x in grid:
        p = mp.mpf(0)
        for c in reversed(rc):
            p = p * x + mp.mpf(c)
        err = max(err, abs(p - func(x)) if absolute else abs(p / func(x) - 1))
    return rc, err


def fmt(c, typ):
    if typ == "float":
        return f"{float(c).hex()}f"  # hex literals: exact, no decimal round trip
    return f"{float(c).hex()}"


def main():
    out = Path(__file__).resolve().parent.parent / "csrc" / "math" / "polynomials.h"
    lines = [
        "// Generated by tools/fit_coeffs.py: do not edit by hand; rerun the script instead.",
        "// Each function evaluates one fitted polynomial by Horner's rule (the _estrin ones by Estrin's)",
        "// with explicit FMA, so every ISA (and CUDA) performs the same operations in the same order (a pair:",
        "// two fits, chosen per lane).",
        "#pragma once",
        "#include <type_traits>",
        '#include "fastact/hd.h"',
        "",
        "namespace fastact::math::poly {",
        "FASTACT_TARGET_BEGIN",
        "",
    ]
    report = []
    fitted = {}
    paired = {n for first, second, _ in PAIRS.values() for n in (first, second)}
    for name, (func, ranges, degs, comment) in FITS.items():
        body = lines if name not in paired else []  # a fit used only in a pair is emitted in the pair
        body.append(f"// {comment}")
        body.append("template <class V>")
        body.append(f"FASTACT_HD V {name}(V x) {{")
        for k, typ in enumerate(("float", "double")):
            lo, hi = ranges[typ]
            coef, err = fit(func, lo, hi, degs[typ], typ, name in ABSOLUTE)
            fitted[name, typ] = coef, err, comment, (lo, hi)
            report.append(f"{name:8s} {typ:6s} deg {degs[typ]:2d}  max {'abs' if name in ABSOLUTE else 'rel'} err {float(err):.3e}"
                          f"  ({float(err) / (2.0 ** -24 if typ == 'float' else 2.0 ** -53):.3f} ulp)")
            body.append(f"  {'if' if k == 0 else '} else'} constexpr (std::is_same_v<typename V::T, {typ}>) {{"
                         if k == 0 else "  } else {")
            body.append(f"    // max {'absolute' if name in ABSOLUTE else 'relative'} error {float(err):.2e} on [{float(lo):.6g}, {float(hi):.6g}]")
            body.append(f"    V p = V({fmt(coef[-1], typ)});")
            for c in reversed(coef[:-1]):
                body.append(f"    p = fma(p, x, V({fmt(c, typ)}));")
            body.append("    return p;")
        body.append("  }")
        body.append("}")
        body.append("")
    for name in sorted(ESTRIN):
        comment = FITS[name][3]
        lines.append(f"// {comment}; Estrin's scheme, x2 = x * x")
        lines.append("template <class V>")
        lines.append(f"FASTACT_HD V {name}_estrin(V x, V x2) {{")
        for k, typ in enumerate(("float", "double")):
            lines.append(f"  {'if' if k == 0 else '} else'} constexpr (std::is_same_v<typename V::T, {typ}>) {{"
                         if k == 0 else "  } else {")
            lines.extend(estrin_lines(fitted[name, typ][0], typ))
        lines.append("  }")
        lines.append("}")
        lines.append("")
    for name, (first, second, comment) in PAIRS.items():
        lines.append(f"// {comment}:")
        lines.append(f"//   {first}: {fitted[first, 'float'][2]}")
        lines.append(f"//   {second}: {fitted[second, 'float'][2]}")
        lines.append("template <class V, class M>")
        lines.append(f"FASTACT_HD V {name}(V x, M second) {{")
        for k, typ in enumerate(("float", "double")):
            (a, ea, _, ra), (b, eb, _, rb) = fitted[first, typ], fitted[second, typ]
            n = max(len(a), len(b))
            a, b = a + [0.0] * (n - len(a)), b + [0.0] * (n - len(b))
            lines.append(f"  {'if' if k == 0 else '} else'} constexpr (std::is_same_v<typename V::T, {typ}>) {{"
                         if k == 0 else "  } else {")
            for nm, e, (lo, hi) in ((first, ea, ra), (second, eb, rb)):
                lines.append(f"    // {nm}: max relative error {float(e):.2e} on [{float(lo):.6g}, {float(hi):.6g}]")
            lines.append(f"    V p = select(second, V({fmt(b[-1], typ)}), V({fmt(a[-1], typ)}));")
            for ca, cb in zip(reversed(a[:-1]), reversed(b[:-1])):
                lines.append(f"    p = fma(p, x, select(second, V({fmt(cb, typ)}), V({fmt(ca, typ)})));")
            lines.append("    return p;")
        lines.append("  }")
        lines.append("}")
        lines.append("")
    lines.append("FASTACT_TARGET_END")
    lines.append("}  // namespace fastact::math::poly")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
