// Softmax-family row kernels, generic over the vector type: the lanes of math/rows.h (32 interleaved
// lanes, combined in lane order), held in 32 / W vectors of W lanes, so every ISA gets the same bits.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

#include "../math/rows.h"

namespace fastact::cpu::rows {
using namespace fastact::math;
using namespace fastact::math::rows;

// Calls f(const T* block_of_32_per_operand..., count) over the row; the last block is padded with pad.
template <class T, class F>
void blocks(std::size_t len, const T* a, const T* b, T pad_a, T pad_b, F f) {
  std::size_t i = 0;
  for (; i + kLanes <= len; i += kLanes) f(a + i, b ? b + i : nullptr, i, std::size_t(kLanes));
  if (i < len) {
    T ta[kLanes], tb[kLanes];
    std::size_t r = len - i;
    for (int j = 0; j < kLanes; ++j) {
      ta[j] = j < int(r) ? a[i + j] : pad_a;
      if (b) tb[j] = j < int(r) ? b[i + j] : pad_b;
    }
    f(ta, b ? tb : nullptr, i, r);
  }
}

template <class V>
void store_block(const V* v, typename V::T* out, std::size_t count) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  if (count == std::size_t(kLanes)) {
    for (int j = 0; j < N; ++j) v[j].store(out + j * V::W);
  } else {
    T tmp[kLanes];
    for (int j = 0; j < N; ++j) v[j].store(tmp + j * V::W);
    for (std::size_t j = 0; j < count; ++j) out[j] = tmp[j];
  }
}

template <class V>
typename V::T reduce_max(const V* acc) {
  using T = typename V::T;
  T l[kLanes];
  for (int j = 0; j < kLanes / V::W; ++j) acc[j].store(l + j * V::W);
  return combine_max<T>([&](int j) { return l[j]; });
}

template <class V>
typename V::T reduce_sum(const Kahan<V>* acc) {
  using T = typename V::T;
  T s[kLanes], c[kLanes];
  for (int j = 0; j < kLanes / V::W; ++j) {
    acc[j].s.store(s + j * V::W);
    acc[j].c.store(c + j * V::W);
  }
  return combine_sum<T>([&](int j) { return s[j] - c[j]; });
}

template <class V>
typename V::T row_max(const typename V::T* x, std::size_t len) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  V acc[N];
  for (auto& a : acc) a = V(-std::numeric_limits<T>::infinity());
  blocks<T>(len, x, nullptr, -std::numeric_limits<T>::infinity(), T(0),
            [&](const T* a, const T*, std::size_t, std::size_t) {
              for (int j = 0; j < N; ++j) acc[j] = max_nan(acc[j], V::load(a + j * V::W));
            });
  return reduce_max(acc);
}

template <class V, bool Log>
void forward(const void* a_, const void*, void* o_, std::size_t len) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  const T* x = static_cast<const T*>(a_);
  T* y = static_cast<T*>(o_);
  if (len == 0) return;
  const T mx = row_max<V>(x, len);
  const V m(mx);
  Kahan<V> acc[N];
  blocks<T>(len, x, nullptr, -std::numeric_limits<T>::infinity(), T(0),
            [&](const T* a, const T*, std::size_t i, std::size_t count) {
              V e[N];
              for (int j = 0; j < N; ++j) {
                e[j] = exp_shifted(V::load(a + j * V::W), m);
                acc[j].add(e[j]);
              }
              if (!Log) store_block(e, y + i, count);
            });
  const T sum = reduce_sum(acc);
  if (!Log) {
    const V r(T(1) / sum);
    blocks<T>(len, y, nullptr, T(0), T(0), [&](const T* a, const T*, std::size_t i, std::size_t count) {
      V v[N];
      for (int j = 0; j < N; ++j) v[j] = V::load(a + j * V::W) * r;
      store_block(v, y + i, count);
    });
  } else {
    const V lse(log_sum(sum));
    blocks<T>(len, x, nullptr, T(0), T(0), [&](const T* a, const T*, std::size_t i, std::size_t count) {
      V v[N];
      for (int j = 0; j < N; ++j) v[j] = log_softmax_value(V::load(a + j * V::W), m, lse);
      store_block(v, y + i, count);
    });
  }
}

template <class V, bool Log>
void backward(const void* a_, const void* b_, void* o_, std::size_t len) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  const T* dy = static_cast<const T*>(a_);
  const T* y = static_cast<const T*>(b_);
  T* dx = static_cast<T*>(o_);
  if (len == 0) return;
  Kahan<V> acc[N];
  blocks<T>(len, dy, y, T(0), T(0), [&](const T* a, const T* b, std::size_t, std::size_t) {
    for (int j = 0; j < N; ++j) {
      acc[j].add(backward_term<Log>(V::load(a + j * V::W), V::load(b + j * V::W)));
    }
  });
  const V s(reduce_sum(acc));
  blocks<T>(len, dy, y, T(0), T(0), [&](const T* a, const T* b, std::size_t i, std::size_t count) {
    V v[N];
    for (int j = 0; j < N; ++j) {
      v[j] = backward_value<Log>(V::load(a + j * V::W), V::load(b + j * V::W), s);
    }
    store_block(v, dx + i, count);
  });
}

}  // namespace fastact::cpu::rows
