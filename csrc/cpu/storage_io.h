// How a storage type moves into and out of compute vectors: float and double as they are, float16 and
// bfloat16 widened exactly into float vectors and rounded once on store. Shared by the element-wise and
// row kernels of every ISA.
#pragma once
#include <cstdint>
#include <type_traits>

#include "fastact/half.h"

namespace fastact::cpu {
FASTACT_TARGET_BEGIN

template <class V, class S>
struct StorageIo {
  using Vec = V;
  static V load(const S* p) {
    if constexpr (std::is_same_v<S, half>) return V::load_f16(reinterpret_cast<const std::uint16_t*>(p));
    else if constexpr (std::is_same_v<S, bfloat16>) return V::load_bf16(reinterpret_cast<const std::uint16_t*>(p));
    else return V::load(p);
  }
  static void store(S* p, V v) {
    if constexpr (std::is_same_v<S, half>) v.store_f16(reinterpret_cast<std::uint16_t*>(p));
    else if constexpr (std::is_same_v<S, bfloat16>) v.store_bf16(reinterpret_cast<std::uint16_t*>(p));
    else v.store(p);
  }
  // A storage value of v (padding for partial blocks).
  static S value(typename V::T v) {
    if constexpr (std::is_same_v<S, half>) return to_half(float(v));
    else if constexpr (std::is_same_v<S, bfloat16>) return to_bfloat16(float(v));
    else return v;
  }
};

FASTACT_TARGET_END
}  // namespace fastact::cpu
