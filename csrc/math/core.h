// Building blocks shared by every activation: exp (with a double-word argument and wide scaling, or
// the lean ExpNeg for bounded arguments), expm1, log, tanh, sigmoid, x*sigmoid(w) and the Gaussian tail. Written once against the vector interface of
// simd::Scalar (V), with explicit FMA, so every ISA and CUDA run the same operations in the same order.
#pragma once
#include <cmath>
#include <type_traits>

#include "fastact/hd.h"
#include "polynomials.h"

namespace fastact::math {
FASTACT_TARGET_BEGIN

template <class T>
struct K;

template <>
struct K<float> {
  static constexpr float log2e = 0x1.715476p+0f;
  // Cody-Waite split of ln2: n*ln2_hi is exact for |n| < 2^9.
  static constexpr float ln2_hi = 0x1.62e4p-1f;
  static constexpr float ln2_lo = 0x1.7f7d1cp-20f;
  static constexpr float round_magic = 0x1.8p23f;  // x + magic - magic rounds x to an integer (ties even)
  static constexpr float exp_lo = -262.0f;         // exp(-262) < 2^-378: 0 even after scaling by 2^128
  static constexpr float exp_hi = 89.0f;           // exp(89) overflows
  static constexpr float expm1_lo = -30.0f;        // expm1(x) = -1 below
  static constexpr float gelu_a1 = 2.5f;           // see tools/fit_coeffs.py
  static constexpr float gelu_amax = 16.0f;        // exp(-a^2/2) underflows to 0 beyond
  static constexpr float tanh_small = 0.5625f;
  static constexpr float gelu_small = 0.5f;
  // 2*sqrt(2/pi), 0.044715 and 1/sqrt(2*pi) as double-word constants (hi + lo).
  static constexpr float k_hi = 0x1.988454p+0f, k_lo = -0x1.857936p-25f;
  static constexpr float c_hi = 0x1.6e4e26p-5f, c_lo = 0x1.a9003ep-30f;
  static constexpr float isqrt2pi = 0x1.988454p-2f;
  static constexpr float gelu_a0_hi = 0x1.80ead2p-1f, gelu_a0_lo = -0x1.a03fd4p-27f;  // gelu'(-a0) = 0
  static constexpr float sqrt2 = 0x1.6a09e6p+0f;
  static constexpr float exp_under = 104.0f;     // exp(-104) < 2^-150: rounds to 0
  static constexpr float x_sigmoid_lim = 120.0f; // |x| * exp(-120) underflows for |x| <= 120
  static constexpr float scale_split = 70.0f;    // 2^n = 2^(n + 70) * 2^-70 (ExpNeg)
  static constexpr float inv_split = 0x1p-70f;
  // round_magic + 127 + 70: exp_neg rounds with it, and the rounded value's low bits are then those of
  // the biased exponent of 2^(n + split) (shift_to_exponent)
  static constexpr float exp_shift = 0x1.8p23f + 197.0f;
  static constexpr float sigmoid_clamp = 103.25f;       // n = -149: 2^n exact; exp(-a) rounds to 2^-149
  static constexpr float exp_zero = 0x1.9fe368p+6f;     // the float below 150 ln2: exp(-a) < 2^-150 beyond
  static constexpr float tanh_one = 20.0f;       // tanh(x) rounds to 1 beyond 2|x| = 20
  static constexpr float quick_gelu_hi = 0x1.b3b646p+0f, quick_gelu_lo = -0x1.78d4fep-26f;  // 1.702
  static constexpr float pow2_mant2 = 0x1p25f;  // 1 + x rounds to x beyond (and 1 - 1/x to 1)
  static constexpr float log1p_far = 64.0f;     // exp(-a) is normal below, and its log1p rounds to itself beyond
  static constexpr float third_hi = 0x1.555556p-2f, third_lo = -0x1.555556p-27f;  // 1/3
};

template <>
struct K<double> {
  static constexpr double log2e = 0x1.71547652b82fep+0;
  static constexpr double ln2_hi = 0x1.62e42fee00000p-1;
  static constexpr double ln2_lo = 0x1.a39ef35793c76p-33;
  static constexpr double round_magic = 0x1.8p52;
  static constexpr double exp_lo = -2125.0;
  static constexpr double exp_hi = 710.0;
  static constexpr double expm1_lo = -40.0;
  static constexpr double gelu_a1 = 3.5;
  static constexpr double gelu_amax = 40.0;
  static constexpr double tanh_small = 0.5625;
  static constexpr double gelu_small = 0.5;
  static constexpr double k_hi = 0x1.9884533d43651p+0, k_lo = -0x1.cbc0d30ebfd15p-54;
  static constexpr double c_hi = 0x1.6e4e26d4801f7p-5, c_lo = 0x1.441355475a31ap-59;
  static constexpr double isqrt2pi = 0x1.9884533d43651p-2;
  static constexpr double gelu_a0_hi = 0x1.80ead197f00b4p-1, gelu_a0_lo = -0x1.13e74c58cada8p-56;
  static constexpr double sqrt2 = 0x1.6a09e667f3bcdp+0;
  static constexpr double exp_under = 746.0;     // exp(-746) < 2^-1075
  static constexpr double x_sigmoid_lim = 760.0;
  static constexpr double scale_split = 200.0;
  static constexpr double inv_split = 0x1p-200;
  static constexpr double exp_shift = 0x1.8p52 + 1223.0;
  static constexpr double sigmoid_clamp = 744.5;        // n = -1074
  static constexpr double exp_zero = 0x1.74910d52d3051p+9;  // the double below 1075 ln2
  static constexpr double tanh_one = 40.0;
  static constexpr double quick_gelu_hi = 0x1.b3b645a1cac08p+0, quick_gelu_lo = 0x1.89374bc6a7efap-55;
  static constexpr double pow2_mant2 = 0x1p54;
  static constexpr double log1p_far = 640.0;
  static constexpr double third_hi = 0x1.5555555555555p-2, third_lo = 0x1.5555555555555p-56;
};

template <class V>
using KT = K<typename V::T>;

// Round an integral-range value to the nearest integer, ties to even, with two additions.
template <class V>
FASTACT_HD V round_int(V x) {
  const V magic(KT<V>::round_magic);
  return (x + magic) - magic;
}

// Double-word helpers: exact product and sum.
template <class V>
FASTACT_HD void two_prod(V a, V b, V& p, V& e) {
  p = a * b;
  e = fma(a, b, -p);
}
template <class V>
FASTACT_HD void two_sum(V a, V b, V& s, V& e) {
  s = a + b;
  V bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// exp(hi + lo) as (1 + em) * 2^n, em = expm1(r) in [-0.3, 0.42] within ~0.3 ulp, n integral. Keeping
// 1 + em unrounded lets callers form y * (1 + em) as fma(y, em, y), one rounding. |lo| must be tiny
// next to 1 (a rounding error of hi). Arguments are clamped to [exp_lo, exp_hi]; NaN propagates.
template <class V>
struct ExpParts {
  V em, n;
  FASTACT_HD V p() const { return V(1) + em; }
  FASTACT_HD V times(V y) const { return fma(y, em, y); }  // y * (1 + em)
};
template <class V>
FASTACT_HD ExpParts<V> exp_parts(V hi, V lo) {
  using C = KT<V>;
  const V lo_lim(C::exp_lo), hi_lim(C::exp_hi);
  // lo only matters inside the range; outside (and for inf/NaN hi) it may be garbage, so drop it.
  lo = select((hi > lo_lim) & (hi < hi_lim), lo, V(0));
  hi = at_most(at_least(hi, lo_lim), hi_lim);
  V n = round_int(hi * V(C::log2e));
  // r + rl = (hi - n*ln2_hi) + (lo - n*ln2_lo) exactly: the first difference is exact, the second is
  // tiny; rounding r would cost up to 0.35 ulp of the result.
  V rh = fma(-n, V(C::ln2_hi), hi);
  V t = fma(-n, V(C::ln2_lo), lo);
  V r, rl;
  two_sum(rh, t, r, rl);
  // expm1(r + rl) = r + r^2*Q(r) + rl*(1 + r): the small terms are summed first, r added last.
  V em = r + fma(r * r, poly::exp_q(r), fma(rl, r, rl));
  return {em, n};
}

// Multiplication by 2^n for integral n in [-3*bias, 3*bias]: one multiplication in the lanes where 2^n
// is a normal number (the result is then rounded once, exactly as y * 2^n), three exact steps in the
// others, so that a tiny result is still rounded once, at the last step. Which lanes take which form
// depends on n alone, never on the other lanes of the vector: every ISA gives the same bits. The three
// factors are only formed when some lane needs them (rare: huge or tiny results).
template <class V>
struct Pow2 {
  typename V::M one_step;
  bool all_one_step;
  V f;                           // 2^n in the one-step lanes
  V a{T_one()}, b{T_one()}, c{T_one()};  // the three factors (formed when !all_one_step)
  FASTACT_HD static typename V::T T_one() { return typename V::T(1); }
  FASTACT_HD V operator()(V y) const {
    V r = y * f;
    if (all_one_step) return r;
    return select(one_step, r, ((y * a) * b) * c);
  }
};
template <class V>
FASTACT_HD Pow2<V> pow2_of(V n) {
  using T = typename V::T;
  constexpr T lo = std::is_same_v<T, float> ? T(-126) : T(-1022), hi = std::is_same_v<T, float> ? T(127) : T(1023);
  Pow2<V> p;
  p.one_step = (n >= V(lo)) & (n <= V(hi));
  p.all_one_step = all_of(p.one_step);
  p.f = pow2i(select(p.one_step, n, V(0)));
  if (!p.all_one_step) {
    V n1 = round_int(n * V(T(1) / T(3)));
    V rest = n - n1;
    V n2 = round_int(rest * V(0.5));
    p.a = pow2i(n1);
    p.b = pow2i(n2);
    p.c = pow2i(rest - n2);
  }
  return p;
}
template <class V>
FASTACT_HD V ldexp3(V y, V n) { return pow2_of(n)(y); }

// exp(z + lo) for z from -135 (float) / -847 (double: 2^(n + split) still normal) up to 39, callers
// clamping: (1 + em) * 2^n, em = expm1(r) with r rounded once (up to 0.35 ulp of the result: for callers
// that stay well within their bound), 2^n applied in two exact-or-once-rounded steps, 2^(n + split) *
// 2^-split, so a subnormal result is rounded once with no branch. z * log2e is rounded to n with
// exp_shift, whose sum leaves the bits of 2^(n + split) in place: no float-to-integer conversion. NaN
// propagates.
template <class V>
struct ExpNeg {
  V em, n, s1;  // s1 = 2^(n + split)
  FASTACT_HD V scale(V y) const { return (y * s1) * V(KT<V>::inv_split); }  // y * 2^n: y * s1 normal, finite
  // 2^n itself: exact down to the smallest subnormal (n = -149 / -1074), 0 below.
  FASTACT_HD V pow2() const { return s1 * V(KT<V>::inv_split); }
};
template <class V>
FASTACT_HD ExpNeg<V> exp_neg(V z, V lo) {
  using C = KT<V>;
  const V shift(C::exp_shift);
  V t = fma(z, V(C::log2e), shift);
  V n = t - shift;
  V r = fma(n, V(-C::ln2_hi), z) + fma(n, V(-C::ln2_lo), lo);
  V r2 = r * r;
  V em = fma(r2, poly::exp_q_estrin(r, r2), r);
  return {em, n, shift_to_exponent(t)};
}

// exp(z + lo) for z <= 0 (NaN propagates): 1 + em rounded, then scaled (within ~1 ulp).
template <class V>
FASTACT_HD V exp_nonpositive(V z, V lo = V(0)) {
  using C = KT<V>;
  auto under = z < -V(C::exp_under);
  ExpNeg<V> e = exp_neg(at_least(z, -V(C::exp_under)), select(under, V(0), lo));
  return e.scale(V(1) + e.em);
}

// expm1(x) for x <= 80 (float) / 700 (double): 2^n * expm1(r) + (2^n - 1), one rounding.
template <class V>
FASTACT_HD V expm1_upto80(V x) {
  using C = KT<V>;
  ExpParts<V> e = exp_parts(at_least(x, V(C::expm1_lo)), V(0));
  V t = pow2i(e.n);
  V res = fma(t, e.em, t - V(1));
  return select(x == V(0), x, res);  // keeps the sign of -0
}

// Natural log of a positive normal x (+inf -> +inf). Used for log-sum-exp, where x >= 1.
template <class V>
FASTACT_HD V log_positive(V x) {
  using C = KT<V>;
  V m = mantissa_of(x);
  V e = exponent_of(x);
  auto big = m > V(C::sqrt2);
  m = select(big, m * V(0.5), m);
  e = select(big, e + V(1), e);
  V f = m - V(1);
  V s = f / (V(2) + f);
  V z = s * s;
  V lm = fma(s * z, poly::log_l(z), s);  // atanh(s)
  V res = fma(e, V(C::ln2_hi), fma(e, V(C::ln2_lo), lm + lm));
  // +inf and NaN map to themselves (x == 2x only for 0 and inf; x is positive here)
  return select((x == x * V(2)) | (x != x), x, res);
}

// log(1 + z) for a double word z = zh + zl in [0, 1] (z normal or 0, zl tiny next to zh), as a double
// word h + l within about 0.51 ulp: 1 + z = 2^e * m exactly as a double word (e = 0 or 1, m in
// [sqrt2/2, sqrt2]), then e ln2 + 2 atanh(s), s = (m - 1) / (m + 1) a double word (the quotient corrected
// by its remainder): 2s carries the result, and atanh's odd tail (at most 1% of it) rounds harmlessly.
template <class V>
FASTACT_HD void log1p_dw(V zh, V zl, V& h, V& l) {
  using C = KT<V>;
  V wh = V(1) + zh;
  V wl = ((V(1) - wh) + zh) + zl;  // z <= 1: the fast two-sum is exact
  auto big = wh > V(C::sqrt2);
  V m = select(big, wh * V(0.5), wh);
  V ml = select(big, wl * V(0.5), wl);
  V e = select(big, V(1), V(0));
  V f = m - V(1);  // exact: m in [1/2, 2]
  V dh = V(2) + f;
  V dl = (V(2) - dh) + f;  // 2 + f exactly
  V sh = f / dh;
  V sl = ((fma(-sh, dh, f) + ml) - sh * (dl + ml)) / dh;  // s = (f + ml) / (2 + f + ml) - sh, to first order
  V s2 = sh * sh;
  V tail = (sh + sh) * (s2 * poly::log_l(s2));  // 2 atanh(s) - 2s
  two_sum(e * V(C::ln2_hi), sh + sh, h, l);
  l = l + (fma(e, V(C::ln2_lo), sl + sl) + tail);
}

// softplus(w) = log(1 + exp(w)) = max(w, 0) + log1p(exp(-|w|)) for w = wh + wl, as a double word h + l.
// z = exp(-|w|) = (1 + em) 2^n (ExpNeg: about 0.35 ulp) is a double word while it is normal (log1p_dw);
// beyond log1p_far, log1p(z) is z: in those lanes (tail) h + l is 1 + em, still to be scaled by 2^n
// (e.scale, or after a division: ldexp3), so a subnormal result is rounded once. For w > 0 the sum
// w + log1p(z) has no cancellation. +inf gives +inf, -inf 0 (a tail lane), NaN NaN.
// Wide: w < 0 is clamped at exp_lo instead of exp_under, for a tail that is divided by up to 2^128 /
// 2^1024 before ldexp3 (value()'s e.scale is then not valid there).
template <class V>
struct SoftplusParts {
  V h, l;
  ExpNeg<V> e;
  typename V::M tail;  // w < -log1p_far: h + l = 1 + em, the result 2^n (h + l)
  FASTACT_HD V value() const { return select(tail, e.scale(h), h + l); }
};
template <class V, bool Wide = false>
FASTACT_HD SoftplusParts<V> softplus_dw(V wh, V wl) {
  using C = KT<V>;
  auto pos = wh > V(0);
  V a = abs(wh);
  V lim = Wide ? select(pos, V(C::exp_under), V(-C::exp_lo)) : V(C::exp_under);
  auto under = a > lim;  // exp(-a) rounds to 0 (and wl may be garbage: wh overflowed)
  SoftplusParts<V> r;
  r.e = exp_neg(-at_most(a, lim), select(under, V(0), select(pos, -wl, wl)));
  V p2n = r.e.pow2();
  V ph = V(1) + r.e.em, pl = (V(1) - ph) + r.e.em;  // 1 + em exactly
  auto far = a > V(C::log1p_far);
  V lh, ll;
  log1p_dw(select(far, V(0), ph * p2n), select(far, V(0), pl * p2n), lh, ll);
  lh = select(far, r.e.scale(ph), lh);  // w > 0: far below w's last bit
  V sh, sl;
  two_sum(wh, lh, sh, sl);
  r.tail = far & ~pos;
  r.h = select(pos, sh, select(far, ph, lh));
  r.l = select(pos, select(wh == V(typename V::T(INFINITY)), V(0), sl + (wl + ll)), select(far, pl, ll));  // no inf - inf
  return r;
}

// tanh below tanh_small: x + x^3 T(x^2), odd; tanh(-0) = -0.
template <class V>
FASTACT_HD V tanh_near0(V x) {
  V s = x * x;
  return select(x == V(0), x, fma(x * s, poly::tanh_t(s), x));
}

// tanh: odd polynomial near 0, 1 - 2/(exp(2|x|) + 1) elsewhere (no cancellation: the result is >= 0.51).
// exp(2|x|) is rounded once from (1 + em) * 2^n; 2|x| is clamped where tanh has rounded to 1.
template <class V>
FASTACT_HD V tanh(V x) {
  using C = KT<V>;
  V a = abs(x);
  V small = tanh_near0(x);
  V a2 = a + a;
  ExpNeg<V> e = exp_neg(at_most(a2, V(C::tanh_one)), V(0));
  V p2n = e.pow2();  // n <= 29: normal
  V large = copysign(V(1) - V(2) / (fma(p2n, e.em, p2n) + V(1)), x);
  return select(a < V(C::tanh_small), small, large);
}

// tanh'(x) = 1 - tanh(x)^2, computed without cancellation: 4z/(1+z)^2 with z = exp(-2|x|).
template <class V>
FASTACT_HD V tanh_grad(V x) {
  using C = KT<V>;
  V t = tanh_near0(x);  // tanh(x) where the small side is taken
  V small = fma(-t, t, V(1));
  V z = exp_nonpositive(V(-2) * abs(x));
  V d = V(1) + z;
  V large = (V(4) * z) / (d * d);
  return select(abs(x) < V(C::tanh_small), small, large);
}

// x * sigmoid(w), w = wh + wl (double word), within ~1.2 ulp: with z = exp(-|w|) = (1 + em) * 2^n,
//   w >= 0: x / (1 + z)        w < 0: x * (1 + em) / (1 + z) * 2^n   (scaled last: tails that reach
// the subnormals are rounded once, and huge x with tiny sigmoid(w) stays right).
// Numerator and 1 + z are double words, and the quotient is corrected by its remainder: the result is
// rounded about once, on top of exp's error.
template <class V>
FASTACT_HD V x_sigmoid(V x, V wh, V wl) {
  using T = typename V::T;
  auto neg = wh < V(0);
  ExpParts<V> e = exp_parts(-abs(wh), select(neg, wl, -wl));
  Pow2<V> s = pow2_of(e.n);
  V ph = V(1) + e.em, pl = (V(1) - ph) + e.em;  // 1 + em exactly
  V zh = s(ph), zl = s(pl);
  V dh = V(1) + zh, dl = ((V(1) - dh) + zh) + zl;  // 1 + z (z <= 1)
  auto huge = abs(x) > V(T(0x1p100));  // keep x * (1 + em) finite
  V xs = select(huge, x * V(T(0x1p-100)), x);
  // numerator: x, or x * (1 + em) as a double word (its rounding alone could cost a full ulp)
  V xeh, xel, nh, nl;
  two_prod(xs, e.em, xeh, xel);
  two_sum(xs, xeh, nh, nl);
  V num = select(neg, nh, x);
  V num_lo = select(neg, nl + xel, V(0));
  // One division: q0 = num * (1/dh) is within ~1.5 ulp; the remainder num + num_lo - q0 * (dh + dl),
  // exact to first order through the fma, times 1/dh corrects it to about half an ulp.
  V r = V(1) / dh;
  V q = num * r;
  V corr = ((fma(-q, dh, num) + num_lo) - q * dl) * r;
  q = select((abs(num) == V(T(INFINITY))) | (num == V(0)), q, q + corr);  // keeps inf and the sign of 0
  V neg_r = ldexp3(q, select(huge, e.n + V(100), e.n));
  // x = +-inf with w -> -inf: the limit is a zero of x's sign (exp wins).
  neg_r = select(abs(x) == V(T(INFINITY)), copysign(V(0), x), neg_r);
  return select(neg, neg_r, q);
}

// The quotient shared by sigmoid and x_sigmoid_bounded. With z = exp(-a + lo) = (1 + em) * 2^n
// (ExpNeg, a >= 0 already clamped), q + c is
//   w >= 0: 1 / (1 + z)        w < 0: (1 + em) / (1 + z), to be scaled by 2^n last (subnormal tails
// round once). 1 + em and 1 + z are double words and c is q's remainder correction, so q + c rounds about
// once on top of exp's error. z is scaled in one step by 2^n (0 where n < -149: z is then far below
// 1 + z's last bit either way).
template <class V>
struct SigmoidQuotient {
  ExpNeg<V> e;
  V p2n, q, c;  // p2n = e.pow2()
};
template <class V>
FASTACT_HD SigmoidQuotient<V> sigmoid_quotient(V a, V lo, typename V::M neg) {
  ExpNeg<V> e = exp_neg(-a, lo);
  V p2n = e.pow2();
  V ph = V(1) + e.em, pl = (V(1) - ph) + e.em;  // 1 + em exactly
  V zh = ph * p2n, zl = pl * p2n;
  V dh = V(1) + zh, dl = ((V(1) - dh) + zh) + zl;  // 1 + z
  V nh = select(neg, ph, V(1)), nl = select(neg, pl, V(0));
  V rd = V(1) / dh;
  V q = nh * rd;
  return {e, p2n, q, ((fma(-q, dh, nh) + nl) - q * dl) * rd};
}

// sigmoid(x), or sigmoid(x + lo) for a double word (WithLo). For x < 0 the result is q * 2^n with 2^n
// exact, rounded once: |x| is clamped where n = -149 and exp(x) rounds to 2^-149 (up to 150 ln2), and
// is 0 beyond 150 ln2 (lo dropped there: x may have overflowed).
template <class V, bool WithLo = false>
FASTACT_HD V sigmoid(V x, V lo = V(0)) {
  using C = KT<V>;
  auto neg = x < V(0);
  V a = abs(x);
  V el = V(0);
  if constexpr (WithLo) el = select(a > V(C::sigmoid_clamp), V(0), select(neg, lo, -lo));
  SigmoidQuotient<V> s = sigmoid_quotient(at_most(a, V(C::sigmoid_clamp)), el, neg);
  V q = s.q + s.c;
  V neg_r = select(a > V(C::exp_zero), V(0), q * s.p2n);
  return select(neg, neg_r, q);
}

// x * sigmoid(w), w = wh + wl, for ops with |x| <= |w| wherever |w| > ln2/2 (silu with beta >= 1, gelu's
// tanh form): then w < -x_sigmoid_lim means the product underflows, and x * q * 2^(n + split) stays
// normal and finite wherever the result does not underflow. sigmoid's quotient with the product
// x * (q + c) rounded once by an fma, and none of x_sigmoid's huge- or tiny-x scaling.
// Worst 1.06 ulp (silu) and 1.10 ulp (gelu tanh form) in float, all 2^32 inputs.
template <class V>
FASTACT_HD V x_sigmoid_bounded(V x, V wh, V wl) {
  using C = KT<V>;
  using T = typename V::T;
  auto neg = wh < V(0);
  V a = abs(wh);
  auto big = a > V(C::x_sigmoid_lim);
  SigmoidQuotient<V> s =
      sigmoid_quotient(at_most(a, V(C::x_sigmoid_lim)), select(big, V(0), select(neg, wl, -wl)), neg);
  V u = fma(x, s.q, x * s.c);
  V res = select(neg, s.e.scale(u), u);
  res = select((x == V(0)) | (x == V(T(INFINITY))), x, res);  // the sign of -0; +inf (x * c would be -inf)
  return select(wh < -V(C::x_sigmoid_lim), V(T(-0.0)), res);
}

// d/dx [x * sigmoid(w(x))] = s + x*w'*s*(1-s), s = sigmoid(w). With z = exp(-|w|), d = 1 + z:
//   w >= 0: (d + x*w'*z) / d^2        w < 0: z * (d + x*w') / d^2  (scaled last)
// d + x*w' vanishes at the derivative's zero, so it is summed from exact double-word pieces.
// For the ops here |x*w'| <= 3|w| + 1 (silu: x*w' = w; gelu's tanh form: ~3w), so beyond |w| =
// x_sigmoid_lim the w < 0 side has underflowed (a zero of d + x*w''s sign) and the w > 0 side is 1:
// exp runs on the clamped |w|, with the lean ExpNeg and its two-step scaling.
template <class V>
FASTACT_HD V x_sigmoid_grad(V wh, V wl, V xwh, V xwl) {  // xw = x * w' as a double word
  using C = KT<V>;
  using T = typename V::T;
  auto neg = wh < V(0);
  V a = abs(wh);
  auto big = a > V(C::x_sigmoid_lim);
  ExpNeg<V> e = exp_neg(-at_most(a, V(C::x_sigmoid_lim)), select(big, V(0), select(neg, wl, -wl)));
  V ph = V(1) + e.em, pl = (V(1) - ph) + e.em;
  V p2n = e.pow2();
  V zh = ph * p2n, zl = pl * p2n;
  V dh = V(1) + zh, dl = ((V(1) - dh) + zh) + zl;
  V inv_d2 = V(1) / (dh * dh);  // one division serves both signs
  V nneg = (dh + xwh) + (dl + xwl);
  V neg_r = e.scale(fma(nneg * inv_d2, e.em, nneg * inv_d2));  // (1 + em) * 2^n * (d + x*w') / d^2
  neg_r = select(wh < -V(C::x_sigmoid_lim), copysign(V(0), nneg), neg_r);
  neg_r = select(abs(xwh) == V(T(INFINITY)), V(0), neg_r);  // e^w * x*w' -> 0
  V xwz = select(big, V(0), xwh * zh);
  V pos_r = (dh + xwz) * inv_d2;
  return select(neg, neg_r, pos_r);
}

// Gaussian pieces for gelu. For a = |x| >= 1/2: Phi(-a) = exp(-a^2/2) * G(a) / a, with G from the
// fitted polynomials (in a - 1.5 up to A1, in 1/a beyond; one Horner chain, its coefficients chosen per
// lane). exp(-a^2/2) uses the exact square.
template <class V>
struct GaussTail {
  ExpNeg<V> e;  // exp(-a^2/2): -a^2/2 >= -128 (float) / -800 (double), inside ExpNeg's two-step scaling
  V G;     // a * Phi(-a) * exp(a^2/2)
  V ac;    // a, clamped to amax
  FASTACT_HD V times_exp(V y) const { return e.scale(fma(y, e.em, y)); }  // y * exp(-a^2/2), rounded once
};
template <class V>
FASTACT_HD GaussTail<V> gauss_tail(V a) {
  using C = KT<V>;
  V ac = at_most(a, V(C::gelu_amax));
  V sh, sl;
  two_prod(ac, ac, sh, sl);
  ExpNeg<V> e = exp_neg(V(-0.5) * sh, V(-0.5) * sl);
  // one polynomial per lane: gelu_g in a - 1.5 below A1, gelu_h in 1/a beyond (the bits of each fit)
  auto far = ~(ac < V(C::gelu_a1));  // NaN too, as before
  V G = poly::gelu_g_or_h(select(far, V(1) / ac, ac - V(1.5)), far);
  return {e, G, ac};
}

// D(a) = G(a) - a^2/sqrt(2 pi) without cancellation: below A1 as (a - a0) * E(a), a - a0 formed
// exactly (a0 its root, a double word); beyond, the two terms no longer cancel.
template <class V>
FASTACT_HD V gauss_d(const GaussTail<V>& t) {
  using C = KT<V>;
  V sh, sl;
  two_prod(t.ac, t.ac, sh, sl);
  V direct = fma(-V(C::isqrt2pi), sh, fma(-V(C::isqrt2pi), sl, t.G));
  V near = ((t.ac - V(C::gelu_a0_hi)) - V(C::gelu_a0_lo)) * poly::gelu_e(t.ac - V(1.5));
  return select(t.ac < V(C::gelu_a1), near, direct);
}

// gelu(x) = x * Phi(x), exact form.
template <class V>
FASTACT_HD V gelu_erf(V x) {
  using C = KT<V>;
  using T = typename V::T;
  V s = x * x;
  // 0.5x + x^2 S(x^2); below 1e-30 the square is below rounding: 0.5x keeps the sign of tiny and -0 x
  V small = select(abs(x) < V(T(1e-30)), V(0.5) * x, fma(s, poly::gelu_s(s), V(0.5) * x));
  GaussTail<V> t = gauss_tail(abs(x));
  V eg = t.times_exp(t.G);  // |x| * Phi(-|x|)
  V tail = select(x < V(0), -eg, x - eg);
  V res = select(abs(x) < V(C::gelu_small), small, tail);
  return select(x == x, res, x);
}

// gelu'(x) = Phi(x) + x*phi(x).
template <class V>
FASTACT_HD V gelu_erf_grad(V x) {
  using C = KT<V>;
  V s = x * x;
  GaussTail<V> t = gauss_tail(abs(x));
  // below gelu_small, exp(-x^2/2) = 1 + em (n = 0): the tail's own exp, of the exact square
  V phi_small = (V(1) + t.e.em) * V(C::isqrt2pi);
  V small = fma(x, phi_small, fma(x, poly::gelu_s(s), V(0.5)));
  // Phi(-a) - a*phi(a) = exp(-a^2/2) * D(a) / a
  V q = t.times_exp(gauss_d(t) / t.ac);
  V tail = select(x < V(0), q, V(1) - q);
  V res = select(abs(x) < V(C::gelu_small), small, tail);
  return select(x == x, res, x);
}

// w = 2*sqrt(2/pi)*(x + 0.044715 x^3) as a double word: its rounding error would be multiplied by |w|
// (up to ~100) in exp(w). Also x*w' = 2*sqrt(2/pi)*(x + 3*0.044715 x^3), for the gradient.
template <class V>
FASTACT_HD void gelu_tanh_arg(V x, V& wh, V& wl, V* xwh = nullptr, V* xwl = nullptr) {
  using C = KT<V>;
  V x2h, x2l, x3h, x3l, th, tl, uh, ul;
  two_prod(x, x, x2h, x2l);
  two_prod(x, x2h, x3h, x3l);
  x3l = fma(x, x2l, x3l);
  two_prod(V(C::c_hi), x3h, th, tl);
  tl = fma(V(C::c_hi), x3l, fma(V(C::c_lo), x3h, tl));
  two_sum(x, th, uh, ul);
  ul = ul + tl;
  two_prod(V(C::k_hi), uh, wh, wl);
  wl = fma(V(C::k_hi), ul, fma(V(C::k_lo), uh, wl));
  if (xwh) {
    V vh, vl;
    two_sum(uh, th + th, vh, vl);  // u + 2 c x^3
    vl = vl + (ul + (tl + tl));
    two_prod(V(C::k_hi), vh, *xwh, *xwl);
    *xwl = fma(V(C::k_hi), vl, fma(V(C::k_lo), vh, *xwl));
  }
}

template <class V>
FASTACT_HD V gelu_tanh(V x) {
  V wh, wl;
  gelu_tanh_arg(x, wh, wl);
  return x_sigmoid_bounded(x, wh, wl);  // |w| >= 1.59 |x|
}

template <class V>
FASTACT_HD V gelu_tanh_grad(V x) {
  // Beyond |x| = 40 the derivative is exactly 0 or 1 in both precisions; clamping keeps x^3 finite.
  V xc = at_most(at_least(x, V(-40)), V(40));
  V wh, wl, xwh, xwl;
  gelu_tanh_arg(xc, wh, wl, &xwh, &xwl);
  return select(x == x, x_sigmoid_grad(wh, wl, xwh, xwl), x);
}

FASTACT_TARGET_END
}  // namespace fastact::math
