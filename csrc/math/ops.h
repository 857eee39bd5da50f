// One functor per activation: forward and the gradient (dx from dy and x, or from dy and y), written
// once against the vector interface. p points at the op's parameters, already converted to T, in the
// order of its registry line. Which backward forms exist is declared in the registry.
#pragma once
#include <type_traits>

#include "fastact/registry.h"
#include "../kinds.h"
#include "core.h"
#include "rows.h"

namespace fastact::ops {
FASTACT_TARGET_BEGIN
using namespace fastact::math;

// tabulate16 = true: the op's math is costly enough that large float16 / bfloat16 calls look results up
// in tables of all 65,536 inputs (cpu/tables16.h). Such an op's backward_x(dy, x) must be dy * g(x) with
// the multiplication by dy last (the table holds g(x) = backward_x(1, x)); a C++ test checks it bit for bit.
template <class Op, class = void>
struct is_tabulated16 {
  static constexpr bool value = false;
};
template <class Op>
struct is_tabulated16<Op, std::void_t<decltype(Op::tabulate16)>> {
  static constexpr bool value = Op::tabulate16;
};

// NaN in x gives NaN in dx: a gradient through an undefined input is undefined.
template <class V>
FASTACT_HD V nan_or(V x, V v) { return select(x != x, x, v); }

struct Relu {
  static constexpr const char* range = "[0, inf)";
  static constexpr const char* derivative = "1 if x > 0 else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) { return select(x <= V(0), V(0), x); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    return select(x > V(0), dy, nan_or(x, V(0)));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T* p) { return backward_x(dy, y, p); }
};

// x with slope s below zero: leaky_relu (s a parameter) and prelu (s a weight per element).
template <class V>
FASTACT_HD V leaky(V x, V s) { return select(x > V(0), x, x * s); }
template <class V>
FASTACT_HD V leaky_grad(V dy, V x, V s) { return select(x > V(0), dy, nan_or(x, dy * s)); }

struct LeakyRelu {  // p[0] = negative_slope
  static constexpr const char* range = "(-inf, inf) for negative_slope > 0";
  static constexpr const char* derivative = "1 if x > 0 else negative_slope";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) { return leaky(x, V(p[0])); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return leaky_grad(dy, x, V(p[0]));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T* p) { return backward_x(dy, y, p); }
};

struct Elu {  // p[0] = alpha
  static constexpr const char* range = "(-alpha, inf) for alpha > 0";
  static constexpr const char* derivative = "1 if x > 0 else alpha * exp(x) (= y + alpha)";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    auto pos = x > V(0);
    return select(pos, x, V(p[0]) * expm1_upto80(at_most(x, V(0))));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    auto pos = x > V(0);
    return select(pos, dy, dy * (V(p[0]) * exp_nonpositive(at_most(x, V(0)))));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T* p) {
    return select(y > V(0), dy, dy * (y + V(p[0])));
  }
};

struct Gelu {  // p[0] = approximate (0: exact erf form, 1: tanh form)
  static constexpr const char* range = "[-0.16997, inf) (the minimum at x = -0.75179; tanh form -0.17004)";
  static constexpr const char* derivative = "Phi(x) + x * phi(x), phi the standard normal density (approximate='tanh': the tanh form's own derivative)";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return p[0] != T(0) ? gelu_tanh(x) : gelu_erf(x);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return dy * (p[0] != T(0) ? gelu_tanh_grad(x) : gelu_erf_grad(x));
  }
};

struct Silu {  // p[0] = beta; silu(x) = x * sigmoid(beta*x)
  static constexpr const char* range = "[-0.27846 / beta, inf) for beta > 0 (the minimum at x = -1.27846 / beta)";
  static constexpr const char* derivative = "s + beta * x * s * (1 - s), s = sigmoid(beta * x)";
  static constexpr bool tabulate16 = true;
  // beta = 1 (the default) passes w = x + 0 as two_prod(1, x) would give it: the same bits, without the
  // product's operations
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    if (p[0] == T(1)) return x_sigmoid_bounded(x, x, V(0));
    V wh, wl;
    two_prod(V(p[0]), x, wh, wl);
    if (p[0] >= T(1)) return x_sigmoid_bounded(x, wh, wl);  // |x| <= |w|: the lean form holds
    return x_sigmoid(x, wh, wl);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    if (p[0] == T(1)) return dy * x_sigmoid_grad(x, V(0), x, V(0));
    V wh, wl;
    two_prod(V(p[0]), x, wh, wl);
    return dy * x_sigmoid_grad(wh, wl, wh, wl);  // x * w' = beta * x = w
  }
};

struct Sigmoid {
  static constexpr const char* range = "(0, 1)";
  static constexpr const char* derivative = "y * (1 - y)";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) { return math::sigmoid(x); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    // z/(1+z)^2, z = exp(-|x|): symmetric, no 1 - s cancellation
    V z = exp_nonpositive(-abs(x));
    V d = V(1) + z;
    return dy * (z / (d * d));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T*) { return dy * (y * (V(1) - y)); }
};

struct Tanh {
  static constexpr const char* range = "(-1, 1)";
  static constexpr const char* derivative = "1 - y^2";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) { return math::tanh(x); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) { return dy * tanh_grad(x); }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T*) { return dy * fma(-y, y, V(1)); }
};

struct Selu {  // p[0] = alpha, p[1] = scale: scale * elu(x, alpha)
  static constexpr const char* range = "(-scale * alpha, inf)";
  static constexpr const char* derivative = "scale if x > 0 else scale * alpha * exp(x)";
  static constexpr bool tabulate16 = true;
  // scale * alpha * e: one rounding of the product with scale * alpha as a double word; where that product
  // overflows the compute type (a branch on the parameters: the same in every lane), alpha * e first
  template <class V, class T> FASTACT_HD static V times_scale_alpha(V e, const T* p) {
    const T sa = p[1] * p[0];
    if (!(sa - sa == T(0))) return V(p[1]) * (V(p[0]) * e);
    V sh, sl;
    two_prod(V(p[1]), V(p[0]), sh, sl);
    return fma(sh, e, sl * e);
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    V e = expm1_upto80(at_most(x, V(0)));
    return select(x >= V(0), V(p[1]) * x, times_scale_alpha(e, p));  // +-0: scale * x keeps the sign
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    V e = exp_nonpositive(at_most(x, V(0)));
    return dy * select(x > V(0), V(p[1]), times_scale_alpha(e, p));
  }
};

// x / alpha for x <= 0 as a double word u + ul (ul the exact remainder over alpha; 0 where exp(u) has
// underflowed, and where u overflowed).
template <class V>
FASTACT_HD void celu_arg(V x, V alpha, V& u, V& ul) {
  u = x / alpha;
  ul = select(u > -V(KT<V>::exp_under), fma(-u, alpha, x) / alpha, V(0));
}

struct Celu {  // p[0] = alpha (> 0): max(0, x) + min(0, alpha * expm1(x / alpha))
  static constexpr const char* range = "(-alpha, inf)";
  static constexpr const char* derivative = "1 if x > 0 else exp(x / alpha)";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    using C = KT<V>;
    const V alpha(p[0]);
    V u, ul;
    celu_arg(at_most(x, V(0)), alpha, u, ul);
    V e = expm1_upto80(u);
    // alpha * expm1(u + ul) = alpha * (e + ul * (1 + e)), rounded once; where |u| is tiny it is x (u may
    // be subnormal there, its bits lost)
    V neg = fma(alpha, e, alpha * (ul * (e + V(1))));
    return select(x > V(0), x, select(abs(u) < V(T(1) / C::pow2_mant2), x, neg));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    V u, ul;
    celu_arg(at_most(x, V(0)), V(p[0]), u, ul);
    return dy * select(x > V(0), V(1), exp_nonpositive(u, ul));
  }
};

struct QuickGelu {  // x * sigmoid(1.702 x), 1.702 a double-word constant (exact to the compute type's precision)
  static constexpr const char* range = "[-0.16361, inf) (the minimum at x = -0.75115)";
  static constexpr const char* derivative = "s + 1.702 * x * s * (1 - s), s = sigmoid(1.702 x)";
  static constexpr bool tabulate16 = true;
  template <class V> FASTACT_HD static void arg(V x, V& wh, V& wl) {
    using C = KT<V>;
    two_prod(V(C::quick_gelu_hi), x, wh, wl);
    wl = fma(V(C::quick_gelu_lo), x, wl);
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    V wh, wl;
    arg(x, wh, wl);
    return x_sigmoid_bounded(x, wh, wl);  // |x| <= |w|
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    V wh, wl;
    arg(x, wh, wl);
    return dy * x_sigmoid_grad(wh, wl, wh, wl);  // x * w' = w
  }
};

// cap * tanh(x / cap). u = x / cap is a double word u + ul (ul the remainder over cap), and the cap is
// folded in without a rounding of its own: near 0, x + x u^2 T(u^2) (tanh's polynomial); elsewhere
// cap - cap / ((exp(2|u|) + 1) / 2), tanh's 1 - 2 / (exp(2|u|) + 1) scaled.
struct Softcap {  // p[0] = cap (> 0)
  static constexpr const char* range = "(-cap, cap)";
  static constexpr const char* derivative = "1 - (y / cap)^2";
  static constexpr bool tabulate16 = true;
  template <class V> FASTACT_HD static void arg(V x, V cap, V& a, V& al) {  // |u| = a + al
    using C = KT<V>;
    V u = x / cap;
    a = abs(u);
    V ul = fma(-u, cap, x) / cap;
    al = select(a < V(C::exp_under), select(u < V(0), -ul, ul), V(0));  // none where tanh' is 0 (u may be inf)
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    using C = KT<V>;
    const V cap(p[0]);
    V a, al;
    arg(x, cap, a, al);
    V u2 = a * a;
    V small = select(x == V(0), x, fma(x * u2, poly::tanh_t(u2), x));  // T(0) < 0 would turn -0 into +0
    V a2 = a + a;  // clamped where tanh is +-1; al dropped there
    ExpNeg<V> e = exp_neg(at_most(a2, V(C::tanh_one)), select(a2 < V(C::tanh_one), al + al, V(0)));
    V p2n = e.pow2();
    V large = copysign(cap - cap / ((fma(p2n, e.em, p2n) + V(1)) * V(0.5)), x);
    return select(a < V(C::tanh_small), small, large);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    using C = KT<V>;
    V a, al;
    arg(x, V(p[0]), a, al);
    V t = tanh_near0(a);
    V small = fma(-t, t, V(1));
    V z = exp_nonpositive(V(-2) * a, V(-2) * al);
    V d = V(1) + z;
    return dy * select(a < V(C::tanh_small), small, (V(4) * z) / (d * d));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T* p) {
    // 1 - t^2, t = y / cap as a double word th + tl: 1 - th^2 - 2 th tl from exact pieces (ph + pl = th^2,
    // h + l = 1 - ph), the small terms summed first, then one rounding
    const V cap(p[0]);
    V th = y / cap;
    V tl = fma(-th, cap, y) / cap;
    V ph = th * th;
    V pl = fma(th, th, -ph);
    V h = V(1) - ph;  // |ph| <= 1: fast two-sum
    V l = (V(1) - h) - ph;
    return dy * (h + (l + fma(V(-2) * th, tl, -pl)));
  }
};

// Piecewise-linear ops. Kinks follow PyTorch: the gradient is 0 at a clamp's bounds and at a shrink's
// +-lambd. A NaN x gives NaN (forward and gradient).
struct Hardtanh {  // p[0] = min_val, p[1] = max_val (either may be +-inf: ONNX Clip)
  static constexpr const char* range = "[min_val, max_val]";
  static constexpr const char* derivative = "1 if min_val < x < max_val else 0";
  static constexpr const char* param_rule = "min_val <= max_val";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return at_least(at_most(x, V(p[1])), V(p[0]));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return select((x > V(p[0])) & (x < V(p[1])), dy, nan_or(x, V(0)));
  }
};

struct Relu6 {  // clamp(x, 0, 6), 0 (not -0) where x <= 0 as relu
  static constexpr const char* range = "[0, 6]";
  static constexpr const char* derivative = "1 if 0 < x < 6 else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    return select(x <= V(0), V(0), at_most(x, V(6)));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    return select((x > V(0)) & (x < V(6)), dy, nan_or(x, V(0)));
  }
};

// p[0] = alpha, p[1] = beta: clamp(alpha x + beta, 0, 1). The gradient's window is the forward's own t.
struct Hardsigmoid {
  static constexpr const char* range = "[0, 1]";
  static constexpr const char* derivative = "alpha if 0 < alpha * x + beta < 1 else 0";
  // alpha x + beta rounded once. PyTorch's defaults (alpha = 1/6, rounded, and beta = 1/2) are its
  // x / 6 + 1/2 = (x + 3) / 6 exactly: the rounded 1/6 would move the zero off -3 (and make t 37% off
  // next to it). alpha = 0 is beta for every x (0 * inf would be NaN). Branches on the parameters: the
  // same in every lane.
  template <class V, class T> FASTACT_HD static V arg(V x, const T* p) {
    if (p[0] == T(1.0 / 6.0) && p[1] == T(0.5)) {
      // (x + 3) / 6 with x + 3 a double word s + sl and the quotient corrected by its remainder: one
      // rounding (x + 3 alone rounds 2.9999998f up to 6, a t of 1 inside the window)
      V s = x + V(3);
      V sl = x - (s - V(3));
      V q = s / V(6);
      V c = (fma(-q, V(6), s) + sl) / V(6);
      return q + select(abs(x) <= V(3), c, V(0));  // beyond, t is clamped anyway (and c may be NaN at inf)
    }
    if (p[0] == T(0)) return nan_or(x, V(p[1]));
    return fma(V(p[0]), x, V(p[1]));
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return at_least(at_most(arg(x, p), V(1)), V(0));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    V t = arg(x, p);
    return select((t > V(0)) & (t < V(1)), dy * V(p[0]), nan_or(x, V(0)));
  }
};

struct Hardswish {  // x * clamp(x / 6 + 1/2, 0, 1) = x (x + 3) / 6 on (-3, 3)
  static constexpr const char* range = "[-0.375, inf) (the minimum at x = -1.5)";
  static constexpr const char* derivative = "0 if x <= -3, x / 3 + 1/2 if -3 < x < 3, 1 if x >= 3";
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    V s = x + V(3);  // x + 3 as a double word (|x| < 3 where it is used)
    V sl = x - (s - V(3));
    V mid = fma(x, s, x * sl) / V(6);
    // -0 below -3 (x * 0, as PyTorch), and -0 stays -0
    return select(x <= V(-3), V(T(-0.0)), select((x >= V(3)) | (x == V(0)), x, mid));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    V mid = dy * ((x + x + V(3)) / V(6));  // 2x + 3: 2x exact, one rounding
    return select(x <= V(-3), nan_or(x, V(0)), select(x >= V(3), dy, mid));
  }
};

// ONNX Shrink: x - bias above lambd, x + bias below -lambd, 0 between. softshrink is bias = lambd,
// hardshrink bias = 0.
template <class V>
FASTACT_HD V shrink(V x, V lambd, V bias) {
  return select(x > lambd, x - bias, select(x < -lambd, x + bias, nan_or(x, V(0))));
}
template <class V>
FASTACT_HD V shrink_grad(V dy, V x, V lambd) {
  return select((x > lambd) | (x < -lambd), dy, nan_or(x, V(0)));
}

struct Shrink {  // p[0] = lambd, p[1] = bias
  static constexpr const char* range = "(-inf, bias - lambd), (lambd - bias, inf) and 0";
  static constexpr const char* derivative = "1 if |x| > lambd else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) { return shrink(x, V(p[0]), V(p[1])); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) { return shrink_grad(dy, x, V(p[0])); }
};

struct Softshrink {  // p[0] = lambd
  static constexpr const char* range = "(-inf, inf); 0 on [-lambd, lambd]";
  static constexpr const char* derivative = "1 if |x| > lambd else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) { return shrink(x, V(p[0]), V(p[0])); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) { return shrink_grad(dy, x, V(p[0])); }
};

struct Hardshrink {  // p[0] = lambd: x where |x| > lambd, else 0
  static constexpr const char* range = "0, and values of magnitude > lambd";
  static constexpr const char* derivative = "1 if |x| > lambd else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return select(abs(x) > V(p[0]), x, nan_or(x, V(0)));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) { return shrink_grad(dy, x, V(p[0])); }
};

struct Threshold {  // p[0] = threshold, p[1] = value: x where x > threshold, else value
  static constexpr const char* range = "(threshold, inf) and value";
  static constexpr const char* derivative = "1 if x > threshold else 0";
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return select(x > V(p[0]), x, nan_or(x, V(p[1])));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return select(x > V(p[0]), dy, nan_or(x, V(0)));
  }
};

struct Softsign {  // x / (1 + |x|): two roundings; +-1 at +-inf (where the quotient would be inf / inf)
  static constexpr const char* range = "(-1, 1)";
  static constexpr const char* derivative = "1 / (1 + |x|)^2";
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    using C = KT<V>;
    V a = abs(x);
    return select(a > V(C::pow2_mant2), copysign(V(1), x), x / (V(1) + a));
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    V r = V(1) / (V(1) + abs(x));  // 1 / (1 + |x|)^2 as r * r: no overflow of the square
    return dy * (r * r);
  }
};

// softplus and logsigmoid through softplus_dw: log1p(exp(-|w|)) as a double word, no cancellation where the
// result is tiny.
struct Softplus {  // p[0] = beta (> 0), p[1] = threshold: log1p(exp(beta x)) / beta; x where beta x > threshold
  static constexpr const char* range = "(0, inf)";
  static constexpr const char* derivative = "sigmoid(beta * x); 1 where beta * x > threshold";
  static constexpr bool tabulate16 = true;
  // w = beta x as a double word (beta = 1, the default: x itself)
  template <class V, class T> FASTACT_HD static void arg(V x, const T* p, V& wh, V& wl) {
    if (p[0] == T(1)) {
      wh = x;
      wl = V(0);
    } else {
      two_prod(V(p[0]), x, wh, wl);
    }
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    V wh, wl;
    arg(x, p, wh, wl);
    V r;
    if (p[0] == T(1)) {
      r = softplus_dw(wh, wl).value();
    } else {  // (h + l) / beta, the quotient corrected by its remainder, then the tail's 2^n
      SoftplusParts<V> s = softplus_dw<V, true>(wh, wl);
      const V beta(p[0]);
      V q = s.h / beta;
      q = q + select(abs(q) == V(T(INFINITY)), V(0), (fma(-q, beta, s.h) + s.l) / beta);
      r = select(s.tail, ldexp3(q, s.e.n), q);
    }
    // beyond log1p_far, x + log1p(exp(-w)) / beta rounds to x (and beta x may have overflowed)
    return select((wh > V(p[1])) | (wh > V(KT<V>::log1p_far)), x, r);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    V wh, wl;
    arg(x, p, wh, wl);
    V s = p[0] == T(1) ? math::sigmoid(x) : math::sigmoid<V, true>(wh, wl);
    return dy * select(wh > V(p[1]), V(1), nan_or(x, s));
  }
};

struct Logsigmoid {  // log(sigmoid(x)) = -softplus(-x)
  static constexpr const char* range = "(-inf, 0)";
  static constexpr const char* derivative = "sigmoid(-x) = 1 - sigmoid(x)";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    return -softplus_dw(-x, V(0)).value();
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) { return dy * math::sigmoid(-x); }
};

// mish(x) = x tanh(softplus(x)). With z = exp(-|x|) = (1 + em) 2^n, tanh(softplus(x)) = N / D:
//   x >= 0: (1 + 2z) / (1 + 2z + 2z^2)        x < 0: z A / E, A = 2 + z, E = z A + 2,
// N, D, A and E double words from z's exact pieces (so the exp's error is the only one before the
// quotient, which is corrected by its remainder). For x < 0 the factor (1 + em) 2^n is applied last: the
// subnormal tail x e^x rounds about once.
struct Mish {
  static constexpr const char* range = "[-0.30884, inf) (the minimum at x = -1.19243)";
  static constexpr const char* derivative = "tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2), sp = softplus(x)";
  static constexpr bool tabulate16 = true;
  template <class V>
  struct Parts {
    ExpNeg<V> e;
    V ph, pl, zh, zl;  // 1 + em and z, exactly
    V Ah, Al, Eh, El;  // x < 0: A and E
  };
  template <class V> FASTACT_HD static Parts<V> parts(V x) {
    using C = KT<V>;
    Parts<V> t;
    t.e = exp_neg(-at_most(abs(x), V(C::x_sigmoid_lim)), V(0));
    V p2n = t.e.pow2();
    t.ph = V(1) + t.e.em;
    t.pl = (V(1) - t.ph) + t.e.em;
    t.zh = t.ph * p2n;
    t.zl = t.pl * p2n;
    t.Ah = V(2) + t.zh;
    t.Al = ((V(2) - t.Ah) + t.zh) + t.zl;
    V mh, ml;
    two_prod(t.zh, t.Ah, mh, ml);
    ml = ml + fma(t.zh, t.Al, t.zl * t.Ah);
    two_sum(V(2), mh, t.Eh, t.El);
    t.El = t.El + ml;
    return t;
  }
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    using C = KT<V>;
    auto neg = x < V(0);
    Parts<V> t = parts(x);
    // x >= 0: N = 1 + 2z, D = N + 2z^2
    V Nh, Nl, qh, ql, Dh, Dl;
    two_sum(V(1), t.zh + t.zh, Nh, Nl);
    Nl = Nl + (t.zl + t.zl);
    two_prod(t.zh, t.zh, qh, ql);
    ql = fma(t.zh + t.zh, t.zl, ql);
    two_sum(Nh, qh + qh, Dh, Dl);
    Dl = Dl + (Nl + (ql + ql));
    V nh = select(neg, t.Ah, Nh), nl = select(neg, t.Al, Nl);
    V dh = select(neg, t.Eh, Dh), dl = select(neg, t.El, Dl);
    V q = nh / dh;
    V c = ((fma(-q, dh, nh) + nl) - q * dl) / dh;
    // the multiplier: x, or x (1 + em) as a double word for x < 0
    V xh, xl;
    two_prod(x, t.ph, xh, xl);
    xl = fma(x, t.pl, xl);
    V mh = select(neg, xh, x), ml = select(neg, xl, V(0));
    V u = fma(mh, q, fma(mh, c, ml * q));
    V res = select(neg, t.e.scale(u), u);
    res = select(x < -V(C::x_sigmoid_lim), V(T(-0.0)), res);
    return select((x == V(0)) | (x == V(T(INFINITY))), x, res);
  }
  // mish'(x) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2):
  //   x >= 0: (N D + 4x z^2 (1 + z)) / D^2      (positive terms)
  //   x < 0: z (A E + 4x (1 + z)) / E^2         (the sum vanishes at mish's minimum: double words)
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    using C = KT<V>;
    auto neg = x < V(0);
    Parts<V> t = parts(x);
    V xc = at_most(x, V(C::x_sigmoid_lim));  // z^2 is 0 beyond (x = inf: no inf * 0)
    V N = fma(V(2), t.zh, V(1));
    V z2 = t.zh * t.zh;
    V D = fma(V(2), z2, N);
    V pos_r = fma(N, D, (V(4) * xc) * (z2 * (V(1) + t.zh))) / (D * D);
    V p1h, p1l, p2h, p2l, sh, sl;
    two_prod(t.Ah, t.Eh, p1h, p1l);
    p1l = p1l + fma(t.Ah, t.El, t.Al * t.Eh);
    V Bh = V(1) + t.zh;
    V Bl = ((V(1) - Bh) + t.zh) + t.zl;  // z < 1
    V x4 = V(4) * x;
    two_prod(x4, Bh, p2h, p2l);
    p2l = fma(x4, Bl, p2l);
    two_sum(p1h, p2h, sh, sl);
    V G = sh + (sl + (p1l + p2l));
    V neg_r = t.e.scale((G * t.ph) / (t.Eh * fma(V(2), t.El, t.Eh)));
    neg_r = select(x < -V(C::x_sigmoid_lim), V(T(-0.0)), neg_r);
    return dy * nan_or(x, select(neg, neg_r, pos_r));
  }
};

// tanhshrink(x) = x - tanh(x), odd (computed on |x|, the sign copied):
//   |x| < 1: x^3 (1/3 + s Q(s)), s = x^2, with x^3 and 1/3 double words: no x - tanh(x) cancellation;
//   |x| >= 1: (|x| - 1) + 2 sigmoid(-2|x|) (the quotient and its remainder: tanh's 2 / (exp(2|x|) + 1)),
//             |x| - 1 exact, the sum rounded once.
struct Tanhshrink {
  static constexpr const char* range = "(-inf, inf)";
  static constexpr const char* derivative = "tanh(x)^2";
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) {
    using C = KT<V>;
    V a = abs(x);
    V sh, sl, ch, cl;
    two_prod(a, a, sh, sl);
    two_prod(a, sh, ch, cl);
    cl = fma(a, sl, cl);
    V t = fma(sh, poly::tanhshrink_q(sh), V(C::third_lo));
    V small = fma(ch, V(C::third_hi), fma(ch, t, cl * V(C::third_hi)));
    V a2 = at_most(a + a, V(C::tanh_one));  // 2 sigmoid(-2|x|) is far below |x| - 1's last bit beyond
    SigmoidQuotient<V> s = sigmoid_quotient(a2, V(0), a2 == a2);
    V p2 = s.p2n + s.p2n;
    V gh, gl;
    two_sum(a - V(1), s.q * p2, gh, gl);
    V large = gh + (gl + s.c * p2);
    large = select(a == V(T(INFINITY)), a, large);
    return copysign(select(a < V(1), small, large), x);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) {
    V t = math::tanh(x);  // 1 - tanh'(x) = tanh(x)^2
    return dy * (t * t);
  }
};

// One element of an op in direction Dir: a is x (forward) or dy; b is unused (forward), x or y.
template <class Op, int Dir, class V, class T>
FASTACT_HD V apply(V a, V b, const T* p) {
  if constexpr (Dir == kinds::kForward) return Op::template forward<V>(a, p);
  else if constexpr (Dir == kinds::kBackwardX) return Op::template backward_x<V>(a, b, p);
  else return Op::template backward_y<V>(a, b, p);
}

// The operands of an element-wise op in each direction (kinds::Direction): how many inputs it reads and
// outputs it writes per element, in the order the engines pass them. A unary op reads x (forward), or dy
// and x / y (backward), and writes one value; ops with more operands specialize this (own_eval: the op
// defines eval<Dir> itself).
// reduced: how many of the last outputs are contributions to a reduction (the gradient of a broadcast
// operand: cpu/engine.h run_reduction), written in the compute type, unrounded.
template <class Op>
struct Signature {
  static constexpr int in[kinds::kNumDirections] = {1, 2, 2};
  static constexpr int out[kinds::kNumDirections] = {1, 1, 1};
  static constexpr int reduced[kinds::kNumDirections] = {0, 0, 0};
  static constexpr bool own_eval = false;
};

// One element of an element-wise op in direction Dir, on Signature<Op>'s operands: in[0..in-1] read,
// out[0..out-1] written.
template <class Op, int Dir, class V, class T>
FASTACT_HD void eval(const V* in, V* out, const T* p) {
  if constexpr (Signature<Op>::own_eval) Op::template eval<Dir>(in, out, p);
  else if constexpr (Dir == kinds::kForward) out[0] = apply<Op, Dir>(in[0], V(T(0)), p);
  else out[0] = apply<Op, Dir>(in[0], in[1], p);
}

// Gated ops (the GLU family): an activation of one half times the other half. Gate::First: act(a) * b
// (SwiGLU, GeGLU, ReGLU, as ONNX's SwiGLU and LLM code have it); Gate::Second: a * act(b) (PyTorch's glu).
// The parameters are the activation's. The bits are the unfused composition's: forward act(a) * b in the
// compute type; backward, the activation's gradient given dy * b (what act_backward(dy * b, a) gives),
// and dy * act(a) for the other half.
enum class Gate { First, Second };

template <class Act, Gate G>
struct Gated {
  template <int Dir, class V, class T>
  FASTACT_HD static void eval(const V* in, V* out, const T* p) {
    if constexpr (Dir == kinds::kForward) {  // in: a, b; out: y
      out[0] = G == Gate::First ? Act::template forward<V>(in[0], p) * in[1] : in[0] * Act::template forward<V>(in[1], p);
    } else {  // in: dy, a, b; out: da, db
      const V dy = in[0], a = in[1], b = in[2];
      if constexpr (G == Gate::First) {
        out[0] = Act::template backward_x<V>(dy * b, a, p);
        out[1] = dy * Act::template forward<V>(a, p);
      } else {
        out[0] = dy * Act::template forward<V>(b, p);
        out[1] = Act::template backward_x<V>(dy * a, b, p);
      }
    }
  }
};
template <class Act, Gate G>
struct Signature<Gated<Act, G>> {  // forward (a, b) -> y; backward (dy, a, b) -> (da, db); no backward from y
  static constexpr int in[kinds::kNumDirections] = {2, 3, 0};
  static constexpr int out[kinds::kNumDirections] = {1, 2, 0};
  static constexpr int reduced[kinds::kNumDirections] = {0, 0, 0};
  static constexpr bool own_eval = true;
};

// Ops with a broadcast operand w (a weight or a bias: registry.h FASTACT_BROADCAST_OPS and bias_act):
// forward (x, w) -> y; backward (dy, x, w) -> (dx, the contribution of each element to dw), dw being the
// sum of the contributions over the axes w is broadcast along.
struct BroadcastSignature {
  static constexpr int in[kinds::kNumDirections] = {2, 3, 0};
  static constexpr int out[kinds::kNumDirections] = {1, 2, 0};
  static constexpr int reduced[kinds::kNumDirections] = {0, 1, 0};
  static constexpr bool own_eval = true;
};

// prelu: leaky_relu with a slope per element of the weight; dw's contribution is dy * x where x <= 0
// (NaN where x is NaN), 0 elsewhere.
struct Prelu {
  template <int Dir, class V, class T>
  FASTACT_HD static void eval(const V* in, V* out, const T*) {
    if constexpr (Dir == kinds::kForward) {
      out[0] = leaky(in[0], in[1]);
    } else {
      const V dy = in[0], x = in[1], w = in[2];
      out[0] = leaky_grad(dy, x, w);
      out[1] = select(x > V(0), V(T(0)), dy * x);
    }
  }
};
template <>
struct Signature<Prelu> : BroadcastSignature {};

// bias_act: act(x + bias), x + bias rounded to the compute type (the bits of act applied to that sum);
// the bias's contribution is dx itself (before dx is rounded to a 16-bit storage type).
template <class Act>
struct BiasAct {
  template <int Dir, class V, class T>
  FASTACT_HD static void eval(const V* in, V* out, const T* p) {
    if constexpr (Dir == kinds::kForward) {
      out[0] = Act::template forward<V>(in[0] + in[1], p);
    } else {
      const V dx = Act::template backward_x<V>(in[0], in[1] + in[2], p);
      out[0] = dx;
      out[1] = dx;
    }
  }
};
template <class Act>
struct Signature<BiasAct<Act>> : BroadcastSignature {};

// Element-wise losses (registry.h FASTACT_LOSS_OPS). A loss functor gives one element's loss, value(in, p),
// and its derivative in the input, grad(in, p), from its operands: in[0] the input, in[1] the target, then
// the op's weights (kOperands in all). The engines see it through two wrappers:
//   LossOp<L>      forward (operands) -> the loss, stored (reduction "none"); backward (dy, operands) ->
//                  dy * p[kGradScale] * grad: the scale is 1 for "none", the scalar grad_output (over the
//                  element count for "mean") otherwise, its dy then a splat of 1.
//   SummedLoss<L>  forward (operands) -> the loss as a contribution, summed by the reduction engine in its
//                  fixed order ("mean", "sum").

// (x - t)^2 within about half an ulp: x - t as a double word s + e, then s^2 + 2 s e with one rounding.
template <class V>
FASTACT_HD V squared_difference(V x, V t) {
  V s, e;
  two_sum(x, -t, s, e);
  const V c = select(abs(s) < V(typename V::T(INFINITY)), (s + s) * e, V(0));  // s = +-inf: e is NaN, s^2 inf
  return fma(s, s, c);
}
// 1, -1 or d itself (0, -0, NaN): the sign the L1 branches' gradient takes (PyTorch's sign(0) = 0).
template <class V>
FASTACT_HD V sign_of(V d) {
  return select(d > V(0), V(1), select(d < V(0), V(-1), d));
}

struct MseLoss {
  static constexpr int kOperands = 2;
  template <class V, class T> FASTACT_HD static V value(const V* in, const T*) { return squared_difference(in[0], in[1]); }
  template <class V, class T> FASTACT_HD static V grad(const V* in, const T*) { return V(2) * (in[0] - in[1]); }
};
// p[0] = delta (> 0): 0.5 d^2 where |d| <= delta, delta (|d| - delta / 2) beyond; the gradient d clamped to
// [-delta, delta] (NaN stays NaN).
struct HuberLoss {
  static constexpr int kOperands = 2;
  template <class V, class T> FASTACT_HD static V value(const V* in, const T* p) {
    const V delta(p[0]), a = abs(in[0] - in[1]);
    return select(a <= delta, V(T(0.5)) * squared_difference(in[0], in[1]), delta * (a - V(T(0.5)) * delta));
  }
  template <class V, class T> FASTACT_HD static V grad(const V* in, const T* p) {
    const V delta(p[0]), d = in[0] - in[1];
    return select(abs(d) > delta, copysign(delta, d), d);
  }
};
// p[0] = beta (>= 0): 0.5 d^2 / beta where |d| < beta, |d| - beta / 2 beyond (beta = 0: |d|, the L1 loss).
struct SmoothL1Loss {
  static constexpr int kOperands = 2;
  template <class V, class T> FASTACT_HD static V value(const V* in, const T* p) {
    const V beta(p[0]), a = abs(in[0] - in[1]);
    return select(a < beta, V(T(0.5)) * squared_difference(in[0], in[1]) / beta, a - V(T(0.5)) * beta);
  }
  template <class V, class T> FASTACT_HD static V grad(const V* in, const T* p) {
    const V beta(p[0]), d = in[0] - in[1];
    return select(abs(d) < beta, d / beta, sign_of(d));
  }
};
// w * (pw * t * softplus(-x) + (1 - t) * softplus(x)), in[2] = w, in[3] = pw: two terms that are never
// negative for t in [0, 1], so no cancellation (PyTorch's (1 - t) x + (1 + (pw - 1) t) softplus(-x) loses
// every digit where the loss is small, as at x = -20, t = 0). softplus(-|x|) = log1p(exp(-|x|)) once,
// softplus(|x|) = |x| + that. A term whose coefficient is 0 is 0, also beside an infinite softplus.
// The gradient w * ((1 - t) sigmoid(x) - pw t sigmoid(-x)), the same way.
struct BceWithLogits {
  static constexpr int kOperands = 4;
  template <class V, class T> FASTACT_HD static V value(const V* in, const T*) {
    const V x = in[0], t = in[1], ax = abs(x);
    const V small = softplus_dw(-ax, V(0)).value(), big = ax + small;
    const auto pos = x > V(0);
    const V a = in[3] * t, b = V(1) - t;
    const V ta = select(a == V(0), V(0), a * select(pos, small, big));
    const V tb = select(b == V(0), V(0), b * select(pos, big, small));
    return in[2] * (ta + tb);
  }
  template <class V, class T> FASTACT_HD static V grad(const V* in, const T*) {
    const V x = in[0], t = in[1];
    return in[2] * ((V(1) - t) * math::sigmoid(x) - (in[3] * t) * math::sigmoid(-x));
  }
};

template <class L>
struct LossOp {
  template <int Dir, class V, class T>
  FASTACT_HD static void eval(const V* in, V* out, const T* p) {
    if constexpr (Dir == kinds::kForward) out[0] = L::value(in, p);
    else out[0] = (in[0] * V(p[kGradScale])) * L::grad(in + 1, p);
  }
};
template <class L>
struct Signature<LossOp<L>> {
  static constexpr int in[kinds::kNumDirections] = {L::kOperands, L::kOperands + 1, 0};
  static constexpr int out[kinds::kNumDirections] = {1, 1, 0};
  static constexpr int reduced[kinds::kNumDirections] = {0, 0, 0};
  static constexpr bool own_eval = true;
};
template <class L>
struct SummedLoss {
  template <int Dir, class V, class T>
  FASTACT_HD static void eval(const V* in, V* out, const T* p) { out[0] = L::value(in, p); }
};
template <class L>
struct Signature<SummedLoss<L>> {
  static constexpr int in[kinds::kNumDirections] = {L::kOperands, 0, 0};
  static constexpr int out[kinds::kNumDirections] = {1, 0, 0};
  static constexpr int reduced[kinds::kNumDirections] = {1, 0, 0};
  static constexpr bool own_eval = true;
};

// Row ops (softmax family): a row functor holds an op's per-element math; the row engines (cpu/row_kernels.h,
// cuda RowBody) do the rest: the row's max m, the compensated sums in their fixed order, the walk.
//   forward: the sums pass adds exp(x - m) (math::rows::exp_shifted); c = row_constant(sum); then
//            y = value(x, m, c), or y = from_exp(e, c) from the sums pass's e = exp(x - m) where keeps_exp
//            (the engine then keeps e, unrounded, between the passes);
//   backward (from y): s = the sum of backward_term(dy, y); dx = backward_value(dy, y, s).
struct Softmax {
  static constexpr const char* range = "(0, 1], each row summing to 1 (a row of one element: 1)";
  static constexpr const char* derivative = "dx = y * (dy - sum(dy * y)) along axis";
  static constexpr bool keeps_exp = true;
  template <class T>
  FASTACT_HD_INLINE static T row_constant(T sum) { return T(1) / sum; }
  template <class V>
  FASTACT_HD_INLINE static V from_exp(V e, V c) { return e * c; }
  template <class V>
  FASTACT_HD_INLINE static V value(V x, V m, V c) { return from_exp(rows::exp_shifted(x, m), c); }
  template <class V>
  FASTACT_HD_INLINE static V backward_term(V dy, V y) { return dy * y; }
  template <class V>
  FASTACT_HD_INLINE static V backward_value(V dy, V y, V s) { return y * (dy - s); }  // y * (dy - sum(dy * y))
};
struct LogSoftmax {
  static constexpr const char* range = "(-inf, 0], each row's exp summing to 1 (a row of one element: 0)";
  static constexpr const char* derivative = "dx = dy - exp(y) * sum(dy) along axis";
  static constexpr bool keeps_exp = false;
  template <class T>
  FASTACT_HD_INLINE static T row_constant(T sum) { return rows::log_sum(sum); }
  template <class V>
  FASTACT_HD_INLINE static V value(V x, V m, V c) { return rows::log_softmax_value(x, m, c); }
  template <class V>
  FASTACT_HD_INLINE static V backward_term(V dy, V) { return dy; }
  template <class V>
  FASTACT_HD_INLINE static V backward_value(V dy, V y, V s) { return dy - exp_nonpositive(y) * s; }  // dy - softmax * sum(dy)
};

FASTACT_TARGET_END
}  // namespace fastact::ops
