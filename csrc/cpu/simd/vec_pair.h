// Two vectors of any ISA advanced in lockstep, with the same interface: each operation of the math is
// issued for both halves back to back. Long dependency chains (exp, a division and its correction)
// otherwise fill the core's scheduler before the next vector's independent work is reached; two or four
// chains interleaved keep its pipes busy (sigmoid on AVX-512: 1.7x with Pair<Pair<VF>>). Every lane
// still sees exactly the operations of V, so the bits are V's.
#pragma once
#include <cstdint>

#include "fastact/hd.h"

namespace fastact::simd {
FASTACT_TARGET_BEGIN

template <class V>
struct Pair {
  using T = typename V::T;
  static constexpr int W = 2 * V::W;
  struct M {
    typename V::M a, b;
    FASTACT_HD friend M operator&(M x, M y) { return {x.a & y.a, x.b & y.b}; }
    FASTACT_HD friend M operator|(M x, M y) { return {x.a | y.a, x.b | y.b}; }
    FASTACT_HD friend M operator~(M x) { return {~x.a, ~x.b}; }
    FASTACT_HD friend bool all_of(M x) { return all_of(x.a) && all_of(x.b); }
  };
  V a, b;
  Pair() = default;
  FASTACT_HD Pair(V x, V y) : a(x), b(y) {}
  FASTACT_HD Pair(T x) : a(x), b(x) {}

  FASTACT_HD static Pair load(const T* p) { return {V::load(p), V::load(p + V::W)}; }
  FASTACT_HD void store(T* p) const { a.store(p), b.store(p + V::W); }
  FASTACT_HD void store_stream(T* p) const { a.store_stream(p), b.store_stream(p + V::W); }
  FASTACT_HD static void stream_fence() { V::stream_fence(); }
  FASTACT_HD static Pair load_f16(const std::uint16_t* p) { return {V::load_f16(p), V::load_f16(p + V::W)}; }
  FASTACT_HD void store_f16(std::uint16_t* p) const { a.store_f16(p), b.store_f16(p + V::W); }
  FASTACT_HD static Pair load_bf16(const std::uint16_t* p) { return {V::load_bf16(p), V::load_bf16(p + V::W)}; }
  FASTACT_HD void store_bf16(std::uint16_t* p) const { a.store_bf16(p), b.store_bf16(p + V::W); }

#define FASTACT_PAIR_OP(op) \
  FASTACT_HD friend Pair operator op(Pair x, Pair y) { return {x.a op y.a, x.b op y.b}; }
  FASTACT_PAIR_OP(+)
  FASTACT_PAIR_OP(-)
  FASTACT_PAIR_OP(*)
  FASTACT_PAIR_OP(/)
#undef FASTACT_PAIR_OP
#define FASTACT_PAIR_CMP(op) \
  FASTACT_HD friend M operator op(Pair x, Pair y) { return {x.a op y.a, x.b op y.b}; }
  FASTACT_PAIR_CMP(<)
  FASTACT_PAIR_CMP(<=)
  FASTACT_PAIR_CMP(>)
  FASTACT_PAIR_CMP(>=)
  FASTACT_PAIR_CMP(==)
  FASTACT_PAIR_CMP(!=)
#undef FASTACT_PAIR_CMP
  FASTACT_HD friend Pair operator-(Pair x) { return {-x.a, -x.b}; }
  FASTACT_HD friend Pair fma(Pair x, Pair y, Pair z) { return {fma(x.a, y.a, z.a), fma(x.b, y.b, z.b)}; }
  FASTACT_HD friend Pair select(M m, Pair x, Pair y) { return {select(m.a, x.a, y.a), select(m.b, x.b, y.b)}; }
  FASTACT_HD friend Pair at_most(Pair x, Pair c) { return {at_most(x.a, c.a), at_most(x.b, c.b)}; }
  FASTACT_HD friend Pair at_least(Pair x, Pair c) { return {at_least(x.a, c.a), at_least(x.b, c.b)}; }
  FASTACT_HD friend Pair abs(Pair x) { return {abs(x.a), abs(x.b)}; }
  FASTACT_HD friend Pair copysign(Pair x, Pair s) { return {copysign(x.a, s.a), copysign(x.b, s.b)}; }
  FASTACT_HD friend Pair pow2i(Pair n) { return {pow2i(n.a), pow2i(n.b)}; }
  FASTACT_HD friend Pair shift_to_exponent(Pair x) { return {shift_to_exponent(x.a), shift_to_exponent(x.b)}; }
  FASTACT_HD friend Pair exponent_of(Pair x) { return {exponent_of(x.a), exponent_of(x.b)}; }
  FASTACT_HD friend Pair mantissa_of(Pair x) { return {mantissa_of(x.a), mantissa_of(x.b)}; }
};

FASTACT_TARGET_END
}  // namespace fastact::simd
