// The row kernels of the losses (logsumexp, cross-entropy), generic over the vector type: one contiguous
// row at a time, 32 interleaved lanes (math/rows.h) held in 32 / W vectors of W lanes, so every ISA gives
// the same bits. The softmax is never stored: stats reads the row twice (its max, then the sums), grad
// three times (max, sums, the gradient written once).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "row_kernels.h"

namespace fastact::cpu::losses {
FASTACT_TARGET_BEGIN
using namespace fastact::math;
using namespace fastact::math::rows;

// The sums of one row after its max m: s = sum of exp(x - m) over the elements below m, c = how many
// equal m (their exp is 1 exactly, kept out of s: log_count_sum), and with Smooth, a = sum of
// w_j (m - x_j) (w null: all 1; a term of weight 0 is 0), the label-smoothing term, or with per-row
// weights a probability target's. The last block is padded with -inf (exp 0,
// never the max) and weight 0.
template <class V, class S, bool Smooth>
void row_sums(const S* x, std::size_t len, typename V::T m_, const typename V::T* w, typename V::T* s_out,
              typename V::T* c_out, typename V::T* a_out) {
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const V m(m_);
  Kahan<V> sum[N];
  Kahan<V, true> smooth[N];  // a -inf logit makes a term +inf: the sum stays +inf (a plain Kahan sum gives NaN)
  V count[N];
  for (auto& c : count) c = V(T(0));
  const auto block = [&](const S* a, const T* wb) {
    for (int j = 0; j < N; ++j) {
      const V xv = IO::load(a + j * V::W);
      const auto top = xv == m;
      sum[j].add(select(top, V(T(0)), exp_shifted(xv, m)));
      count[j] = count[j] + select(top, V(T(1)), V(T(0)));
      if constexpr (Smooth) {
        const V d = m - xv;
        if (wb) {  // a weight of 0 adds 0, also beside a -inf logit (0 log 0 = 0: a probability target's zero)
          const V wv = V::load(wb + j * V::W);
          smooth[j].add(select(wv == V(T(0)), V(T(0)), d * wv));
        } else {
          smooth[j].add(d);
        }
      }
    }
  };
  std::size_t i = 0;
  for (; i + kLanes <= len; i += kLanes) block(x + i, w ? w + i : nullptr);
  if (i < len) {
    S tx[kLanes];
    T tw[kLanes];
    const std::size_t r = len - i;
    const S ninf = IO::value(-std::numeric_limits<T>::infinity());
    for (std::size_t j = 0; j < std::size_t(kLanes); ++j) {
      tx[j] = j < r ? x[i + j] : ninf;
      tw[j] = j < r && w ? w[i + j] : T(0);
    }
    if constexpr (Smooth) {
      // the padding's m - (-inf) is +inf: weight 0 would make it NaN, so the padded lanes add 0 instead
      for (int j = 0; j < N; ++j) {
        const V xv = IO::load(tx + j * V::W);
        const auto top = xv == m;
        sum[j].add(select(top, V(T(0)), exp_shifted(xv, m)));
        count[j] = count[j] + select(top, V(T(1)), V(T(0)));
        V d = m - xv;
        if (w) {
          const V wv = V::load(tw + j * V::W);
          d = select(wv == V(T(0)), V(T(0)), d * wv);
        }
        T valid[V::W];
        for (int k = 0; k < V::W; ++k) valid[k] = std::size_t(j * V::W + k) < r ? T(1) : T(0);
        smooth[j].add(select(V::load(valid) == V(T(1)), d, V(T(0))));
      }
    } else {
      block(tx, nullptr);
    }
  }
  *s_out = cpu::rows::reduce_sum(sum);
  T cl[kLanes];
  for (int j = 0; j < N; ++j) count[j].store(cl + j * V::W);
  T c = T(0);
  for (int j = 0; j < kLanes; ++j) c += cl[j];  // small integers: exact in any order
  *c_out = c;
  if constexpr (Smooth) *a_out = cpu::rows::reduce_sum(smooth);
}

// A row whose max is not finite: NaN if any element is NaN, else L = 0 (logsumexp = the max, +-inf).
template <class V, class S>
typename V::T nonfinite_row_L(const S* x, std::size_t len, typename V::T m) {
  using T = typename V::T;
  if (m != m) return m;
  for (std::size_t j = 0; j < len; ++j) {
    S v = x[j];
    T t = StorageIo<simd::Scalar<T>, S>::load(&v).v;
    if (t != t) return t;
  }
  return T(0);
}

// stats: out = {m, L, a}: a (with smooth) the label-smoothing sum of w_j (m - x_j), else 0.
template <class V, class S>
void row_stats(const void* x_, std::size_t len, const void* w_, bool smooth, double* out) {
  using T = typename V::T;
  const S* x = static_cast<const S*>(x_);
  const T* w = static_cast<const T*>(w_);
  const T m = cpu::rows::row_max<V>(x, len);
  T s = T(0), c = T(1), a = T(0), L;
  if (!(m - m == T(0))) {
    L = nonfinite_row_L<V>(x, len, m);
    if (smooth) a = std::numeric_limits<T>::quiet_NaN();  // log_softmax is NaN or -inf somewhere: so is the sum
  } else {
    if (smooth) row_sums<V, S, true>(x, len, m, w, &s, &c, &a);
    else row_sums<V, S, false>(x, len, m, nullptr, &s, &c, &a);
    L = log_count_sum(c, s);
  }
  out[0] = double(m);
  out[1] = double(L);
  out[2] = double(a);
}

// grad: dx_j = a p_j - cw w_j (w null: 1), p_j = exp(x_j - m - L), a = coef[0] + coef[1] * lse, cw =
// coef[3] (coef = {a0, a1, alpha, cw}); the row's m and L (lse = m + L, computed here) go to m_L.
template <class V, class S>
void row_grad(const void* x_, void* dx_, std::size_t len, const void* w_, const double* coef, double* m_L) {
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const S* x = static_cast<const S*>(x_);
  S* dx = static_cast<S*>(dx_);
  const T* w = static_cast<const T*>(w_);
  double st[3];
  row_stats<V, S>(x_, len, nullptr, false, st);
  const T m = T(st[0]), L = T(st[1]);
  const double lse = double(m) + double(L);
  m_L[0] = st[0];
  m_L[1] = st[1];
  const V va = V(T(coef[0] + coef[1] * lse)), vcw = V(T(coef[3])), vm = V(m), vL = V(L);
  const auto block = [&](const S* xb, const T* wb, S* ob, std::size_t count) {
    V r[N];
    for (int j = 0; j < N; ++j)
      r[j] = softmax_gradient(IO::load(xb + j * V::W), vm, vL, va, wb ? vcw * V::load(wb + j * V::W) : vcw);
    cpu::rows::store_block(r, ob, count);
  };
  std::size_t i = 0;
  for (; i + kLanes <= len; i += kLanes) block(x + i, w ? w + i : nullptr, dx + i, std::size_t(kLanes));
  if (i < len) {
    S tx[kLanes];
    T tw[kLanes];
    const std::size_t r = len - i;
    for (std::size_t j = 0; j < std::size_t(kLanes); ++j) {
      tx[j] = j < r ? x[i + j] : IO::value(T(0));
      tw[j] = j < r && w ? w[i + j] : T(0);
    }
    block(tx, w ? tw : nullptr, dx + i, r);
  }
}

// The target's element of a row written by row_grad: dx_t = alpha expm1(zt) + (a - alpha) p_t - cw w_t,
// zt = x_t - lse <= 0 (x_t read before dx, which may be x, was written): p_t - 1 without cancellation.
template <class V, class S>
void target_grad(void* dx, std::int64_t t, const void* w_, const double* coef, double zt_, double lse) {
  using T = typename V::T;
  using Sc = simd::Scalar<T>;
  const T* w = static_cast<const T*>(w_);
  const Sc zt = Sc(T(zt_));
  const Sc rest = Sc(T((coef[0] - coef[2]) + coef[1] * lse));  // a - alpha, without a's rounding
  const Sc g = target_gradient(zt, Sc(T(coef[2])), rest, Sc(T(coef[3])) * Sc(w ? w[t] : T(1)));
  StorageIo<Sc, S>::store(static_cast<S*>(dx) + t, g);
}

FASTACT_TARGET_END
}  // namespace fastact::cpu::losses
