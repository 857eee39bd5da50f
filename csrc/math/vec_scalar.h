// One-lane "vector" with the interface every SIMD type implements. It is the CPU scalar path, the
// reference the SIMD paths are checked against bit for bit, and the type the CUDA kernels use.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastact/half.h"
#include "fastact/hd.h"

namespace fastact::simd {
FASTACT_TARGET_BEGIN

template <class T>
struct IntOf;
template <>
struct IntOf<float> { using type = std::int32_t; };
template <>
struct IntOf<double> { using type = std::int64_t; };

template <class To, class From>
FASTACT_HD To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From));
#if defined(__CUDA_ARCH__)
  To t;
  memcpy(&t, &f, sizeof(To));
  return t;
#else
  return __builtin_bit_cast(To, f);
#endif
}

struct ScalarMask {
  bool m;
  FASTACT_HD friend ScalarMask operator&(ScalarMask a, ScalarMask b) { return {a.m && b.m}; }
  FASTACT_HD friend ScalarMask operator|(ScalarMask a, ScalarMask b) { return {a.m || b.m}; }
  FASTACT_HD friend ScalarMask operator~(ScalarMask a) { return {!a.m}; }
  FASTACT_HD friend bool all_of(ScalarMask a) { return a.m; }  // every lane set
};

template <class T_>
struct Scalar {
  using T = T_;
  using M = ScalarMask;
  static constexpr int W = 1;
  T v;
  Scalar() = default;  // implicitly host and device
  FASTACT_HD constexpr Scalar(T x) : v(x) {}
  FASTACT_HD static Scalar load(const T* p) { return Scalar(*p); }
  FASTACT_HD void store(T* p) const { *p = v; }
  FASTACT_HD void store_stream(T* p) const { *p = v; }  // the reference path streams nothing
  FASTACT_HD static void stream_fence() {}
  // 16-bit storage (T = float only): widen exactly; round to nearest even on store.
  FASTACT_HD static Scalar load_f16(const std::uint16_t* p) { return to_float(half{*p}); }
  FASTACT_HD void store_f16(std::uint16_t* p) const { *p = to_half(v).bits; }
  FASTACT_HD static Scalar load_bf16(const std::uint16_t* p) { return to_float(bfloat16{*p}); }
  FASTACT_HD void store_bf16(std::uint16_t* p) const { *p = to_bfloat16(v).bits; }

  FASTACT_HD friend Scalar operator+(Scalar a, Scalar b) { return a.v + b.v; }
  FASTACT_HD friend Scalar operator-(Scalar a, Scalar b) { return a.v - b.v; }
  FASTACT_HD friend Scalar operator*(Scalar a, Scalar b) { return a.v * b.v; }
  FASTACT_HD friend Scalar operator/(Scalar a, Scalar b) { return a.v / b.v; }
  FASTACT_HD friend Scalar operator-(Scalar a) { return -a.v; }
  FASTACT_HD friend M operator<(Scalar a, Scalar b) { return {a.v < b.v}; }
  FASTACT_HD friend M operator<=(Scalar a, Scalar b) { return {a.v <= b.v}; }
  FASTACT_HD friend M operator>(Scalar a, Scalar b) { return {a.v > b.v}; }
  FASTACT_HD friend M operator>=(Scalar a, Scalar b) { return {a.v >= b.v}; }
  FASTACT_HD friend M operator==(Scalar a, Scalar b) { return {a.v == b.v}; }
  FASTACT_HD friend M operator!=(Scalar a, Scalar b) { return {a.v != b.v}; }
  // a*b + c with a single rounding.
  FASTACT_HD friend Scalar fma(Scalar a, Scalar b, Scalar c) {
#if defined(__CUDA_ARCH__)
    return ::fma(a.v, b.v, c.v);
#else
    return std::fma(a.v, b.v, c.v);
#endif
  }
  FASTACT_HD friend Scalar select(M m, Scalar a, Scalar b) { return m.m ? a : b; }
  // Clamps: c where a is beyond it, else a (a NaN stays NaN): select(a > c, c, a) and select(a < c, c, a),
  // one instruction on x86 (minps / maxps return their second operand when unordered).
  FASTACT_HD friend Scalar at_most(Scalar a, Scalar c) { return a.v > c.v ? c : a; }
  FASTACT_HD friend Scalar at_least(Scalar a, Scalar c) { return a.v < c.v ? c : a; }
  FASTACT_HD friend Scalar abs(Scalar a) {
    using U = std::make_unsigned_t<typename IntOf<T>::type>;
    return bit_cast<T>(U(bit_cast<U>(a.v) & ~(U(1) << (8 * sizeof(T) - 1))));
  }
  // a with the sign bit of s (bitwise, so NaN and -0 behave as on every SIMD path).
  FASTACT_HD friend Scalar copysign(Scalar a, Scalar s) {
    using U = std::make_unsigned_t<typename IntOf<T>::type>;
    const U sign = U(1) << (8 * sizeof(T) - 1);
    return bit_cast<T>(U((bit_cast<U>(a.v) & ~sign) | (bit_cast<U>(s.v) & sign)));
  }
  // 2^n for an integral-valued n inside the normal exponent range. A NaN n (from a NaN argument, whose
  // NaN reaches the result through the other operand) must not reach the integer conversion: in C++
  // that is undefined, where the SIMD instructions define it.
  FASTACT_HD friend Scalar pow2i(Scalar n) {
    using I = typename IntOf<T>::type;
    using U = std::make_unsigned_t<I>;
    constexpr int mant = std::is_same_v<T, float> ? 23 : 52;
    constexpr I bias = std::is_same_v<T, float> ? 127 : 1023;
    const I e = n.v == n.v ? I(n.v) + bias : bias;
    return bit_cast<T>(U(U(e) << mant));
  }
  // The value whose bits are t's shifted up into the exponent field: 2^k for t = R + k + bias + s, where
  // R = 1.5 * 2^mant (T's rounding constant) makes t's low bits those of k + bias + s, an integer in
  // (0, 2 * bias]; exp() rounds its argument with such an R and gets its 2^(n + s) from the same
  // float, no integer conversion. Any t gives some value (NaN and inf too): only bits move.
  FASTACT_HD friend Scalar shift_to_exponent(Scalar t) {
    using U = std::make_unsigned_t<typename IntOf<T>::type>;
    constexpr int mant = std::is_same_v<T, float> ? 23 : 52;
    return bit_cast<T>(U(bit_cast<U>(t.v) << mant));
  }
  // Unbiased exponent (as T) and mantissa in [1, 2) of a positive normal x.
  FASTACT_HD friend Scalar exponent_of(Scalar x) {
    using I = typename IntOf<T>::type;
    constexpr int mant = std::is_same_v<T, float> ? 23 : 52;
    constexpr I bias = std::is_same_v<T, float> ? 127 : 1023;
    return T((bit_cast<I>(x.v) >> mant) - bias);
  }
  FASTACT_HD friend Scalar mantissa_of(Scalar x) {
    using I = typename IntOf<T>::type;
    constexpr int mant = std::is_same_v<T, float> ? 23 : 52;
    constexpr I one = std::is_same_v<T, float> ? I(0x3f800000) : I(0x3ff0000000000000LL);
    return bit_cast<T>(I((bit_cast<I>(x.v) & ((I(1) << mant) - 1)) | one));
  }
};

FASTACT_TARGET_END
}  // namespace fastact::simd
