// The reduction engine's arithmetic (engine.h run_reduction), generic over the vector type: the
// contributions of one reduced element go to 32 interleaved Kahan lanes (math/rows.h, infinities kept),
// combined by its tree, so every ISA (and the GPU) gives the same bits. Lanes live in memory between
// calls: lane l of m columns at s + l * ld (sums) and c + l * ld (compensations), in the compute type.
#pragma once
#include <cstddef>

#include "../math/rows.h"

namespace fastact::cpu::reduce {
FASTACT_TARGET_BEGIN
using namespace fastact::math;
using namespace fastact::math::rows;

// n contributions of one column (m = 1) from its lane 0 on: v[t] to lane t % 32; a last block short of
// 32 is padded with zeros (every lane gets every block).
template <class V>
void add_lanes(const void* v_, std::size_t n, void* s_, void* c_) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  const T* v = static_cast<const T*>(v_);
  T* s = static_cast<T*>(s_);
  T* c = static_cast<T*>(c_);
  Kahan<V, true> acc[N];
  for (int j = 0; j < N; ++j) {
    acc[j].s = V::load(s + j * V::W);
    acc[j].c = V::load(c + j * V::W);
  }
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < N; ++j) acc[j].add(V::load(v + i + j * V::W));
  if (i < n) {
    T t[kLanes] = {};
    for (std::size_t k = 0; i + k < n; ++k) t[k] = v[i + k];
    for (int j = 0; j < N; ++j) acc[j].add(V::load(t + j * V::W));
  }
  for (int j = 0; j < N; ++j) {
    acc[j].s.store(s + j * V::W);
    acc[j].c.store(c + j * V::W);
  }
}

// One lane of m columns takes v[0..m) (null: zeros, a padded block's missing rows).
template <class V>
void add_row(const void* v_, std::size_t m, void* s_, void* c_) {
  using T = typename V::T;
  const T* v = static_cast<const T*>(v_);
  T* s = static_cast<T*>(s_);
  T* c = static_cast<T*>(c_);
  const auto step = [&](auto vec, std::size_t i) {
    using U = decltype(vec);
    Kahan<U, true> k;
    k.s = U::load(s + i);
    k.c = U::load(c + i);
    k.add(v ? U::load(v + i) : U(T(0)));
    k.s.store(s + i);
    k.c.store(c + i);
  };
  std::size_t i = 0;
  for (; i + V::W <= m; i += V::W) step(V(), i);
  for (; i < m; ++i) step(simd::Scalar<T>(), i);
}

// Each of m columns' 32 lanes (lane j's at s + j * ld, c + j * ld) combined by the tree (its sum minus its
// compensation per lane) -> out[i]. Lanes from `lanes` on are zeros, not read (a sum of fewer than 32).
template <class V>
void combine(const void* s_, const void* c_, std::size_t m, std::size_t ld, int lanes, void* out_) {
  using T = typename V::T;
  const T* s = static_cast<const T*>(s_);
  const T* c = static_cast<const T*>(c_);
  T* out = static_cast<T*>(out_);
  const auto columns = [&](auto vec, std::size_t i) {
    using U = decltype(vec);
    U total;
    combine_tree<U, 1, true>(
        [&](int, int j) { return j < lanes ? U::load(s + j * ld + i) - U::load(c + j * ld + i) : U(T(0)); }, &total);
    total.store(out + i);
  };
  std::size_t i = 0;
  for (; i + V::W <= m; i += V::W) columns(V(), i);
  for (; i < m; ++i) columns(simd::Scalar<T>(), i);
}

FASTACT_TARGET_END
}  // namespace fastact::cpu::reduce
