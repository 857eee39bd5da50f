// 16-bit storage types. Arithmetic happens in float: a half input is widened exactly, the op runs in
// float32, and the result is rounded once (to nearest, ties to even) on store. These conversions are
// the portable path and the reference the SIMD conversions (F16C, AVX-512, NEON) are checked against.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastact/hd.h"

namespace fastact {

// IEEE 754 binary16 (NumPy's float16), stored as its bits.
struct half {
  std::uint16_t bits;
};
// bfloat16 (the upper half of a float32; ml_dtypes.bfloat16, torch.bfloat16), stored as its bits.
struct bfloat16 {
  std::uint16_t bits;
};

FASTACT_TARGET_BEGIN
namespace detail {
FASTACT_HD std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
FASTACT_HD float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

FASTACT_HD float to_float(half h) {
  const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
  const std::uint32_t em = h.bits & 0x7fffu;
  if (em >= 0x7c00u) return detail::bits_float(sign | 0x7f800000u | ((em & 0x3ffu) << 13));  // inf, NaN
  if (em >= 0x0400u) return detail::bits_float(sign | ((em + ((127u - 15u) << 10)) << 13));   // normal
  const float sub = float(em) * 0x1p-24f;  // subnormal or zero: em * 2^-24, exact
  return detail::bits_float(sign | detail::float_bits(sub));
}

// Round to nearest, ties to even; overflow gives inf; NaN stays NaN (quiet).
FASTACT_HD half to_half(float f) {
  std::uint32_t u = detail::float_bits(f);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  std::uint16_t h;
  if (u >= 0x47800000u) {  // |f| >= 65536 (or inf, NaN): inf, or a quiet NaN
    h = u > 0x7f800000u ? std::uint16_t(0x7e00u | ((u >> 13) & 0x3ffu)) : std::uint16_t(0x7c00u);
  } else if (u < 0x38800000u) {  // below 2^-14: a subnormal half or zero
    // Adding 0.5 aligns the half's 10 subnormal bits at the bottom of the float's mantissa; the float
    // addition does the round-to-nearest-even.
    const float aligned = detail::bits_float(u) + 0.5f;
    h = std::uint16_t(detail::float_bits(aligned) - 0x3f000000u);
  } else {  // normal: rebias the exponent, round the 13 dropped bits to nearest even
    const std::uint32_t odd = (u >> 13) & 1u;
    u += 0xc8000fffu + odd;  // (15 - 127) << 23, plus the rounding bias
    h = std::uint16_t(u >> 13);  // a carry out of 65504 lands on inf, as it must
  }
  return half{std::uint16_t(h | sign)};
}

FASTACT_HD float to_float(bfloat16 b) { return detail::bits_float(std::uint32_t(b.bits) << 16); }

// Round to nearest, ties to even; NaN stays NaN (quiet).
FASTACT_HD bfloat16 to_bfloat16(float f) {
  const std::uint32_t u = detail::float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16{std::uint16_t((u >> 16) | 0x40u)};
  return bfloat16{std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

// d rounded to float toward zero, its last bit set where that was inexact ("round to odd"): a float whose
// rounding to a 16-bit type is d's own correct rounding (no double rounding).
FASTACT_HD float round_to_odd(double d) {
  const float f = float(d);
  if (double(f) == d || d != d || f - f != 0.0f) return f;  // exact, NaN, or beyond float's range
  std::uint32_t u = detail::float_bits(f);
  if ((f < 0.0f ? -double(f) : double(f)) > (d < 0 ? -d : d)) u -= 1u;  // toward zero (f is not 0 here)
  return detail::bits_float(u | 1u);
}

// d correctly rounded to a storage type: float, double, half or bfloat16.
template <class S>
FASTACT_HD S from_double(double d) {
  if constexpr (std::is_same_v<S, half>) return to_half(round_to_odd(d));
  else if constexpr (std::is_same_v<S, bfloat16>) return to_bfloat16(round_to_odd(d));
  else return S(d);
}

FASTACT_TARGET_END
}  // namespace fastact
