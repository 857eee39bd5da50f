// One functor per activation: forward and the gradient (dx from dy and x, or from dy and y), written
// once against the vector interface. p points at the op's parameters, already converted to T, in the
// order of its registry line. Which backward forms exist is declared in the registry.
#pragma once
#include <type_traits>

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
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) { return leaky(x, V(p[0])); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return leaky_grad(dy, x, V(p[0]));
  }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T* p) { return backward_x(dy, y, p); }
};

struct Elu {  // p[0] = alpha
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
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T* p) {
    return p[0] != T(0) ? gelu_tanh(x) : gelu_erf(x);
  }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T* p) {
    return dy * (p[0] != T(0) ? gelu_tanh_grad(x) : gelu_erf_grad(x));
  }
};

struct Silu {  // p[0] = beta; silu(x) = x * sigmoid(beta*x)
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
  static constexpr bool tabulate16 = true;
  template <class V, class T> FASTACT_HD static V forward(V x, const T*) { return math::tanh(x); }
  template <class V, class T> FASTACT_HD static V backward_x(V dy, V x, const T*) { return dy * tanh_grad(x); }
  template <class V, class T> FASTACT_HD static V backward_y(V dy, V y, const T*) { return dy * fma(-y, y, V(1)); }
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

// Row ops (softmax family): a row functor holds an op's per-element math; the row engines (cpu/row_kernels.h,
// cuda RowBody) do the rest: the row's max m, the compensated sums in their fixed order, the walk.
//   forward: the sums pass adds exp(x - m) (math::rows::exp_shifted); c = row_constant(sum); then
//            y = value(x, m, c), or y = from_exp(e, c) from the sums pass's e = exp(x - m) where keeps_exp
//            (the engine then keeps e, unrounded, between the passes);
//   backward (from y): s = the sum of backward_term(dy, y); dx = backward_value(dy, y, s).
struct Softmax {
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
