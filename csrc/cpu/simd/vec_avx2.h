// AVX2 + FMA vectors: 8 floats or 4 doubles. Same interface and semantics as simd::Scalar.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace fastact::simd::avx2 {

struct VF;
struct MF {
  __m256 m;
  friend MF operator&(MF a, MF b) { return {_mm256_and_ps(a.m, b.m)}; }
  friend MF operator|(MF a, MF b) { return {_mm256_or_ps(a.m, b.m)}; }
  friend MF operator~(MF a) { return {_mm256_xor_ps(a.m, _mm256_castsi256_ps(_mm256_set1_epi32(-1)))}; }
  friend bool all_of(MF a) { return _mm256_movemask_ps(a.m) == 0xff; }
};

struct VF {
  using T = float;
  using M = MF;
  static constexpr int W = 8;
  __m256 v;
  VF() = default;
  VF(__m256 x) : v(x) {}
  VF(float x) : v(_mm256_set1_ps(x)) {}
  static VF load(const float* p) { return _mm256_loadu_ps(p); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_stream(float* p) const { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  static void stream_fence() { _mm_sfence(); }
  // 16-bit storage: F16C for binary16; integer round-to-nearest-even for bfloat16 (as fastact::to_bfloat16).
  static VF load_f16(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  void store_f16(std::uint16_t* p) const {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static VF load_bf16(const std::uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  void store_bf16(std::uint16_t* p) const {
    __m256i u = _mm256_castps_si256(v);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));  // NaN: quiet
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), nan));
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  friend VF operator+(VF a, VF b) { return _mm256_add_ps(a.v, b.v); }
  friend VF operator-(VF a, VF b) { return _mm256_sub_ps(a.v, b.v); }
  friend VF operator*(VF a, VF b) { return _mm256_mul_ps(a.v, b.v); }
  friend VF operator/(VF a, VF b) { return _mm256_div_ps(a.v, b.v); }
  friend VF operator-(VF a) { return _mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f)); }
  friend M operator<(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
  friend M operator<=(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
  friend M operator>(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
  friend M operator>=(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
  friend M operator==(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)}; }
  friend M operator!=(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend VF fma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
  friend VF select(M m, VF a, VF b) { return _mm256_blendv_ps(b.v, a.v, m.m); }
  friend VF at_most(VF a, VF c) { return _mm256_min_ps(c.v, a.v); }   // c < a ? c : a (a if unordered)
  friend VF at_least(VF a, VF c) { return _mm256_max_ps(c.v, a.v); }
  friend VF abs(VF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v); }
  friend VF copysign(VF a, VF s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign, a.v), _mm256_and_ps(sign, s.v));
  }
  friend VF pow2i(VF n) {
    __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(i, 23));
  }
  friend VF shift_to_exponent(VF t) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t.v), 23)); }
  friend VF exponent_of(VF x) {
    __m256i e = _mm256_srli_epi32(_mm256_castps_si256(x.v), 23);
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(e, _mm256_set1_epi32(127)));
  }
  friend VF mantissa_of(VF x) {
    __m256i b = _mm256_and_si256(_mm256_castps_si256(x.v), _mm256_set1_epi32(0x007fffff));
    return _mm256_castsi256_ps(_mm256_or_si256(b, _mm256_set1_epi32(0x3f800000)));
  }
};

struct MD {
  __m256d m;
  friend MD operator&(MD a, MD b) { return {_mm256_and_pd(a.m, b.m)}; }
  friend MD operator|(MD a, MD b) { return {_mm256_or_pd(a.m, b.m)}; }
  friend MD operator~(MD a) { return {_mm256_xor_pd(a.m, _mm256_castsi256_pd(_mm256_set1_epi64x(-1)))}; }
  friend bool all_of(MD a) { return _mm256_movemask_pd(a.m) == 0xf; }
};

struct VD {
  using T = double;
  using M = MD;
  static constexpr int W = 4;
  __m256d v;
  VD() = default;
  VD(__m256d x) : v(x) {}
  VD(double x) : v(_mm256_set1_pd(x)) {}
  static VD load(const double* p) { return _mm256_loadu_pd(p); }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store_stream(double* p) const { _mm256_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }
  friend VD operator+(VD a, VD b) { return _mm256_add_pd(a.v, b.v); }
  friend VD operator-(VD a, VD b) { return _mm256_sub_pd(a.v, b.v); }
  friend VD operator*(VD a, VD b) { return _mm256_mul_pd(a.v, b.v); }
  friend VD operator/(VD a, VD b) { return _mm256_div_pd(a.v, b.v); }
  friend VD operator-(VD a) { return _mm256_xor_pd(a.v, _mm256_set1_pd(-0.0)); }
  friend M operator<(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ)}; }
  friend M operator<=(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)}; }
  friend M operator>(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)}; }
  friend M operator>=(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GE_OQ)}; }
  friend M operator==(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_EQ_OQ)}; }
  friend M operator!=(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend VD fma(VD a, VD b, VD c) { return _mm256_fmadd_pd(a.v, b.v, c.v); }
  friend VD select(M m, VD a, VD b) { return _mm256_blendv_pd(b.v, a.v, m.m); }
  friend VD at_most(VD a, VD c) { return _mm256_min_pd(c.v, a.v); }
  friend VD at_least(VD a, VD c) { return _mm256_max_pd(c.v, a.v); }
  friend VD abs(VD a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v); }
  friend VD copysign(VD a, VD s) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    return _mm256_or_pd(_mm256_andnot_pd(sign, a.v), _mm256_and_pd(sign, s.v));
  }
  friend VD pow2i(VD n) {
    // n is integral and small: n + 1.5*2^52 puts n in the low mantissa bits, a 64-bit add of the
    // bias and a shift finish the job (AVX2 has no double->int64 conversion).
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    __m256i i = _mm256_castpd_si256(_mm256_add_pd(n.v, magic));
    i = _mm256_sub_epi64(i, _mm256_castpd_si256(magic));
    i = _mm256_add_epi64(i, _mm256_set1_epi64x(1023));
    return _mm256_castsi256_pd(_mm256_slli_epi64(i, 52));
  }
  friend VD shift_to_exponent(VD t) { return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t.v), 52)); }
  friend VD exponent_of(VD x) {
    // exponent field (11 bits) via the same magic-number trick in reverse
    __m256i e = _mm256_srli_epi64(_mm256_castpd_si256(x.v), 52);
    const __m256d magic = _mm256_set1_pd(4503599627370496.0);  // 2^52
    __m256d d = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(e, _mm256_castpd_si256(magic))), magic);
    return _mm256_sub_pd(d, _mm256_set1_pd(1023.0));
  }
  friend VD mantissa_of(VD x) {
    __m256i b = _mm256_and_si256(_mm256_castpd_si256(x.v), _mm256_set1_epi64x(0x000fffffffffffffLL));
    return _mm256_castsi256_pd(_mm256_or_si256(b, _mm256_set1_epi64x(0x3ff0000000000000LL)));
  }
};

}  // namespace fastact::simd::avx2
