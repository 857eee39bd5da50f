// The softmax family's arithmetic, shared by the CPU row kernels and the CUDA row kernels.
// The reduction order is part of the contract: 32 interleaved lanes (lane j takes elements j, j+32,
// ..., the last block padded), each a compensated (Kahan) sum or a running max, then the 32 lanes
// combined by a fixed tree (combine_sums). A SIMD register of any width and a CUDA warp both walk that
// same order, so every path gives the same bits. Sums over rows longer than kChunk go by chunks
// (PartialSums), so that a GPU can spread one long row over many warps and still give the CPU's bits.
// (The max's order does not matter: it can differ only in the sign of a zero or a NaN's payload,
// neither of which reaches a result.)
#pragma once
#include <limits>

#include "core.h"
#include "vec_scalar.h"

namespace fastact::math::rows {
FASTACT_TARGET_BEGIN

constexpr int kLanes = 32;

// max that propagates NaN from either side.
template <class V>
FASTACT_HD V max_nan(V a, V b) { return select((b > a) | (b != b), b, a); }

// Inf = true (the reductions: gradients may hold infinities): once the sum is infinite (or NaN) the
// compensation, NaN by then, is dropped, so that an infinite sum stays one (and +inf plus -inf is NaN).
template <class V, bool Inf = false>
struct Kahan {
  V s{typename V::T(0)}, c{typename V::T(0)};
  FASTACT_HD void add(V v) {
    V y = v - c;
    V t = s + y;
    c = (t - s) - y;
    if constexpr (Inf) c = select(t - t == V(typename V::T(0)), c, V(typename V::T(0)));
    s = t;
  }
};

// The 32 lane maxima, combined in lane order; lane(j) gives lane j's value (an array read on the CPU,
// a warp shuffle on the GPU).
template <class T, class Lane>
FASTACT_HD_INLINE T combine_max(Lane lane) {
  simd::Scalar<T> m(lane(0));
  for (int j = 1; j < kLanes; ++j) m = max_nan(m, simd::Scalar<T>(lane(j)));
  return m.v;
}

// The 32 lane sums of G rows, each combined by the same tree: at step w = 16, 8, 4, 2, 1, lane j < w takes
// lane j + w, the sum's rounding error (two_sum) added to the errors both already carry; the result is
// lane 0's sum plus its errors. Five dependent steps instead of a chain of 32 (a Kahan chain over the
// lanes was a sixth of a 1,024-element softmax), and no less accurate: every rounding of the sums is
// kept. lane(i, j) gives row i's lane j (its Kahan sum minus its compensation) as a V: a scalar
// (simd::Scalar), or a vector whose every element is a row of its own (the reductions' columns). The G
// rows run side by side, each with the bits of combine_sum alone.
// Inf (as Kahan's): a sum that is not finite is the plain sum of the lanes, its errors (NaN) dropped.
template <class V, int G, bool Inf = false, class Lane>
FASTACT_HD_INLINE void combine_tree(Lane lane, V* total) {
  V s[kLanes][G], e[kLanes / 2][G];
  for (int j = 0; j < kLanes; ++j)
    for (int i = 0; i < G; ++i) s[j][i] = lane(i, j);
  for (int j = 0; j < kLanes / 2; ++j)
    for (int i = 0; i < G; ++i) two_sum(s[j][i], s[j + kLanes / 2][i], s[j][i], e[j][i]);
  for (int w = kLanes / 4; w > 0; w /= 2)
    for (int j = 0; j < w; ++j)
      for (int i = 0; i < G; ++i) {
        V l;
        two_sum(s[j][i], s[j + w][i], s[j][i], l);
        e[j][i] = (e[j][i] + e[j + w][i]) + l;
      }
  for (int i = 0; i < G; ++i) {
    total[i] = s[0][i] + e[0][i];
    if constexpr (Inf) total[i] = select(s[0][i] - s[0][i] == V(typename V::T(0)), total[i], s[0][i]);
  }
}

template <class T, int G, bool Inf = false, class Lane>
FASTACT_HD_INLINE void combine_sums(Lane lane, T* total) {
  using S = simd::Scalar<T>;
  S t[G];
  combine_tree<S, G, Inf>([&](int i, int j) { return S(lane(i, j)); }, t);
  for (int i = 0; i < G; ++i) total[i] = t[i].v;
}

// One row's: lane(j) gives lane j's Kahan sum minus its compensation.
template <class T, bool Inf = false, class Lane>
FASTACT_HD_INLINE T combine_sum(Lane lane) {
  T total;
  combine_sums<T, 1, Inf>([&](int, int j) { return lane(j); }, &total);
  return total;
}

// Sums over a row go by chunks of kChunk elements (a multiple of 32, so only a row's last chunk pads):
// each chunk's lanes are combined into a partial (combine_sum), and the partials are summed by the same
// rule -- partial c to lane c % 32 (Kahan), then the lanes' tree. A row of one chunk is its partial.
constexpr int kChunk = 4096;

template <class T, bool Inf = false>
struct PartialSums {
  Kahan<simd::Scalar<T>, Inf> lane[kLanes];
  T first = T(0);
  long long n = 0;
  FASTACT_HD_INLINE void add(T partial) {
    if (n == 0) first = partial;
    lane[n % kLanes].add(simd::Scalar<T>(partial));
    ++n;
  }
  FASTACT_HD_INLINE T total() const {
    return n == 1 ? first : combine_sum<T, Inf>([&](int j) { return (lane[j].s - lane[j].c).v; });
  }
};

// exp(x - m) with x - m kept as a double word: its rounding would otherwise cost |x - m| ulps.
template <class V>
FASTACT_HD V exp_shifted(V x, V m) {
  V dh, dl;
  two_sum(x, -m, dh, dl);
  return exp_nonpositive(dh, dl);  // x <= m; x = -inf makes dl NaN, dropped below exp's range
}

// log_softmax: x - m - lse, with x - m as a double word (x = -inf: dl is NaN, the result -inf).
template <class V>
FASTACT_HD V log_softmax_value(V x, V m, V lse) {
  V dh, dl;
  two_sum(x, -m, dh, dl);
  return (dh - lse) + select(dl == dl, dl, V(typename V::T(0)));
}

// A compensated (Neumaier) sum in float64: the row losses' sums of per-row and per-class values.
struct Neumaier {
  double s = 0, c = 0;
  FASTACT_HD void add(double v) {
    const double t = s + v;
    c += (s < 0 ? -s : s) >= (v < 0 ? -v : v) ? (s - t) + v : (v - t) + s;
    s = t;
  }
  FASTACT_HD double value() const { return s - s == 0 ? s + c : s; }  // an infinite sum stays one
};

// Cross-entropy with class probabilities p (a soft target): class j's weight in the loss,
// v_j = w_j ((1 - eps) p_j + eps / K), in the compute type C (w = 1 without class weights).
template <class C>
FASTACT_HD C soft_target_weight(double p, double eps, double K, double w) {
  return C(w * ((1 - eps) * p + eps / K));
}
// The row's sum V of its v_j, in a fixed order: lane l's Neumaier sum over classes l, l + 32, ..., then the
// 32 lanes' values summed (Neumaier) in lane order; lane(j) gives lane j's value().
template <class Lane>
FASTACT_HD double combine_soft_weights(Lane lane) {
  Neumaier total;
  for (int j = 0; j < kLanes; ++j) total.add(lane(j));
  return total.value();
}

// Cross-entropy's gradient, one element (cpu/loss_kernels.h, cuda LossRowBody): a p - cww with
// p = exp(x - m - L), x - m - L kept as a double word (x = -inf: p = 0).
template <class V>
FASTACT_HD V softmax_gradient(V x, V m, V L, V a, V cww) {
  V dh, dl, h2, l2;
  two_sum(x, -m, dh, dl);
  two_sum(dh, -L, h2, l2);
  const V p = exp_nonpositive(h2, l2 + select(dl == dl, dl, V(typename V::T(0))));  // x = -inf: dl is NaN, p 0
  return a * p - cww;
}
// The target's element: alpha expm1(zt) + (rest p_t - cww), zt = x_t - lse <= 0 and rest = a - alpha, so
// that p_t - 1 has no cancellation.
template <class V>
FASTACT_HD V target_gradient(V zt, V alpha, V rest, V cww) {
  return alpha * expm1_upto80(zt) + (rest * exp_nonpositive(zt) - cww);
}

// The log of the row's sum of exp(x - m), for log_softmax.
template <class T>
FASTACT_HD_INLINE T log_sum(T sum) { return log_positive(simd::Scalar<T>(sum)).v; }

// log(c + s): c >= 1 the count of a row's elements equal to its max m, s the sum of exp(x - m) over the
// others, so that log-sum-exp is m + log_count_sum(c, s). For c = 1 this is log1p(s) with no rounding of
// 1 + s: a confident row's cross-entropy is s itself, which log(1 + s) would round to 0.
template <class T>
FASTACT_HD_INLINE T log_count_sum(T c, T s) {
  using S = simd::Scalar<T>;
  const T z = (c - T(1)) + s;
  if (z < std::numeric_limits<T>::epsilon()) return z;  // log1p(z) = z(1 - z/2): z is within half an ulp
  if (z <= T(1)) {
    S h, l;
    log1p_dw(S(z), S(T(0)), h, l);
    return (h + l).v;
  }
  return log_positive(S(T(1) + z)).v;  // >= log 2: the rounding of 1 + z costs under half an ulp
}

FASTACT_TARGET_END
}  // namespace fastact::math::rows
