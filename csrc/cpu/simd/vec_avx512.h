// AVX-512F vectors: 16 floats or 8 doubles, with mask registers. Same interface as simd::Scalar.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace fastact::simd::avx512 {

template <class K>
struct Mask {
  K m;
  friend Mask operator&(Mask a, Mask b) { return {K(a.m & b.m)}; }
  friend Mask operator|(Mask a, Mask b) { return {K(a.m | b.m)}; }
  friend Mask operator~(Mask a) { return {K(~a.m)}; }
  friend bool all_of(Mask a) { return a.m == K(~K(0)); }
};

struct VF {
  using T = float;
  using M = Mask<__mmask16>;
  static constexpr int W = 16;
  __m512 v;
  VF() = default;
  VF(__m512 x) : v(x) {}
  VF(float x) : v(_mm512_set1_ps(x)) {}
  static VF load(const float* p) { return _mm512_loadu_ps(p); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  // Non-temporal store (p 64-byte aligned): the line goes to memory without being read first; callers
  // end a run of them with stream_fence().
  void store_stream(float* p) const { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  // 16-bit storage: AVX-512F conversions for binary16; integer round-to-nearest-even for bfloat16
  // (not VCVTNEPS2BF16, which flushes subnormals).
  static VF load_f16(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  void store_f16(std::uint16_t* p) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static VF load_bf16(const std::uint16_t* p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  void store_bf16(std::uint16_t* p) const {
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));  // NaN: quiet
    r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), r, q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  friend VF operator+(VF a, VF b) { return _mm512_add_ps(a.v, b.v); }
  friend VF operator-(VF a, VF b) { return _mm512_sub_ps(a.v, b.v); }
  friend VF operator*(VF a, VF b) { return _mm512_mul_ps(a.v, b.v); }
  friend VF operator/(VF a, VF b) { return _mm512_div_ps(a.v, b.v); }
  friend VF operator-(VF a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MIN)));
  }
  friend M operator<(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
  friend M operator<=(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
  friend M operator>(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
  friend M operator>=(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
  friend M operator==(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
  friend M operator!=(VF a, VF b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend VF fma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
  friend VF select(M m, VF a, VF b) { return _mm512_mask_blend_ps(m.m, b.v, a.v); }
  friend VF at_most(VF a, VF c) { return _mm512_min_ps(c.v, a.v); }   // c < a ? c : a (a if unordered)
  friend VF at_least(VF a, VF c) { return _mm512_max_ps(c.v, a.v); }
  friend VF abs(VF a) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MAX)));
  }
  friend VF copysign(VF a, VF s) {
    // bit select: sign from s, the rest from a
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_set1_epi32(INT32_MAX), _mm512_castps_si512(a.v),
                                                         _mm512_castps_si512(s.v), 0xca));
  }
  friend VF pow2i(VF n) {
    __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(i, 23));
  }
  friend VF shift_to_exponent(VF t) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t.v), 23)); }
  friend VF exponent_of(VF x) {
    __m512i e = _mm512_srli_epi32(_mm512_castps_si512(x.v), 23);
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(e, _mm512_set1_epi32(127)));
  }
  friend VF mantissa_of(VF x) {
    __m512i b = _mm512_and_si512(_mm512_castps_si512(x.v), _mm512_set1_epi32(0x007fffff));
    return _mm512_castsi512_ps(_mm512_or_si512(b, _mm512_set1_epi32(0x3f800000)));
  }
};

struct VD {
  using T = double;
  using M = Mask<__mmask8>;
  static constexpr int W = 8;
  __m512d v;
  VD() = default;
  VD(__m512d x) : v(x) {}
  VD(double x) : v(_mm512_set1_pd(x)) {}
  static VD load(const double* p) { return _mm512_loadu_pd(p); }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void store_stream(double* p) const { _mm512_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }
  friend VD operator+(VD a, VD b) { return _mm512_add_pd(a.v, b.v); }
  friend VD operator-(VD a, VD b) { return _mm512_sub_pd(a.v, b.v); }
  friend VD operator*(VD a, VD b) { return _mm512_mul_pd(a.v, b.v); }
  friend VD operator/(VD a, VD b) { return _mm512_div_pd(a.v, b.v); }
  friend VD operator-(VD a) {
    return _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a.v), _mm512_set1_epi64(INT64_MIN)));
  }
  friend M operator<(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ)}; }
  friend M operator<=(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LE_OQ)}; }
  friend M operator>(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ)}; }
  friend M operator>=(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_GE_OQ)}; }
  friend M operator==(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_EQ_OQ)}; }
  friend M operator!=(VD a, VD b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend VD fma(VD a, VD b, VD c) { return _mm512_fmadd_pd(a.v, b.v, c.v); }
  friend VD select(M m, VD a, VD b) { return _mm512_mask_blend_pd(m.m, b.v, a.v); }
  friend VD at_most(VD a, VD c) { return _mm512_min_pd(c.v, a.v); }
  friend VD at_least(VD a, VD c) { return _mm512_max_pd(c.v, a.v); }
  friend VD abs(VD a) {
    return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a.v), _mm512_set1_epi64(INT64_MAX)));
  }
  friend VD copysign(VD a, VD s) {
    return _mm512_castsi512_pd(_mm512_ternarylogic_epi64(_mm512_set1_epi64(INT64_MAX), _mm512_castpd_si512(a.v),
                                                         _mm512_castpd_si512(s.v), 0xca));
  }
  friend VD pow2i(VD n) {
    const __m512d magic = _mm512_set1_pd(6755399441055744.0);  // 1.5 * 2^52
    __m512i i = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_add_pd(n.v, magic)), _mm512_castpd_si512(magic));
    i = _mm512_add_epi64(i, _mm512_set1_epi64(1023));
    return _mm512_castsi512_pd(_mm512_slli_epi64(i, 52));
  }
  friend VD shift_to_exponent(VD t) { return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(t.v), 52)); }
  friend VD exponent_of(VD x) {
    __m512i e = _mm512_srli_epi64(_mm512_castpd_si512(x.v), 52);
    const __m512d magic = _mm512_set1_pd(4503599627370496.0);  // 2^52
    __m512d d = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(e, _mm512_castpd_si512(magic))), magic);
    return _mm512_sub_pd(d, _mm512_set1_pd(1023.0));
  }
  friend VD mantissa_of(VD x) {
    __m512i b = _mm512_and_si512(_mm512_castpd_si512(x.v), _mm512_set1_epi64(0x000fffffffffffffLL));
    return _mm512_castsi512_pd(_mm512_or_si512(b, _mm512_set1_epi64(0x3ff0000000000000LL)));
  }
};

}  // namespace fastact::simd::avx512
