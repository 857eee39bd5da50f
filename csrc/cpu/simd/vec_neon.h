// NEON (AArch64 Advanced SIMD) vectors: 4 floats or 2 doubles. Same interface as simd::Scalar.
// min/max are never used through vminq/vmaxq: their NaN rules differ from the other ISAs'.
#pragma once
#include <arm_neon.h>

#include <cstdint>

namespace fastact::simd::neon {

struct MF {
  uint32x4_t m;
  friend MF operator&(MF a, MF b) { return {vandq_u32(a.m, b.m)}; }
  friend MF operator|(MF a, MF b) { return {vorrq_u32(a.m, b.m)}; }
  friend MF operator~(MF a) { return {vmvnq_u32(a.m)}; }
  friend bool all_of(MF a) { return vminvq_u32(a.m) == 0xffffffffu; }
};

struct VF {
  using T = float;
  using M = MF;
  static constexpr int W = 4;
  float32x4_t v;
  VF() = default;
  VF(float32x4_t x) : v(x) {}
  VF(float x) : v(vdupq_n_f32(x)) {}
  static VF load(const float* p) { return vld1q_f32(p); }
  void store(float* p) const { vst1q_f32(p, v); }
  void store_stream(float* p) const { vst1q_f32(p, v); }  // (no non-temporal hint for a q register here)
  static void stream_fence() {}
  // 16-bit storage: FCVTL/FCVTN for binary16 (round to nearest even); integer rounding for bfloat16.
  static VF load_f16(const std::uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  void store_f16(std::uint16_t* p) const { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static VF load_bf16(const std::uint16_t* p) {
    return vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vld1_u16(p)), 16));
  }
  void store_bf16(std::uint16_t* p) const {
    uint32x4_t u = vreinterpretq_u32_f32(v);
    uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), odd), 16);
    uint32x4_t q = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));  // NaN: quiet
    r = vbslq_u32(vceqq_f32(v, v), r, q);
    vst1_u16(p, vmovn_u32(r));
  }
  friend VF operator+(VF a, VF b) { return vaddq_f32(a.v, b.v); }
  friend VF operator-(VF a, VF b) { return vsubq_f32(a.v, b.v); }
  friend VF operator*(VF a, VF b) { return vmulq_f32(a.v, b.v); }
  friend VF operator/(VF a, VF b) { return vdivq_f32(a.v, b.v); }
  friend VF operator-(VF a) { return vnegq_f32(a.v); }
  friend M operator<(VF a, VF b) { return {vcltq_f32(a.v, b.v)}; }
  friend M operator<=(VF a, VF b) { return {vcleq_f32(a.v, b.v)}; }
  friend M operator>(VF a, VF b) { return {vcgtq_f32(a.v, b.v)}; }
  friend M operator>=(VF a, VF b) { return {vcgeq_f32(a.v, b.v)}; }
  friend M operator==(VF a, VF b) { return {vceqq_f32(a.v, b.v)}; }
  friend M operator!=(VF a, VF b) { return {vmvnq_u32(vceqq_f32(a.v, b.v))}; }
  friend VF fma(VF a, VF b, VF c) { return vfmaq_f32(c.v, a.v, b.v); }
  friend VF select(M m, VF a, VF b) { return vbslq_f32(m.m, a.v, b.v); }
  // not FMIN / FMAX: those order -0 below +0 and return NaN for a NaN c; these are select()'s
  friend VF at_most(VF a, VF c) { return vbslq_f32(vcgtq_f32(a.v, c.v), c.v, a.v); }
  friend VF at_least(VF a, VF c) { return vbslq_f32(vcltq_f32(a.v, c.v), c.v, a.v); }
  friend VF abs(VF a) { return vabsq_f32(a.v); }
  friend VF copysign(VF a, VF s) { return vbslq_f32(vdupq_n_u32(0x80000000u), s.v, a.v); }
  friend VF pow2i(VF n) {
    int32x4_t i = vaddq_s32(vcvtnq_s32_f32(n.v), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(i, 23));
  }
  friend VF shift_to_exponent(VF t) { return vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(t.v), 23)); }
  friend VF exponent_of(VF x) {
    int32x4_t e = vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_f32(x.v), 23));
    return vcvtq_f32_s32(vsubq_s32(e, vdupq_n_s32(127)));
  }
  friend VF mantissa_of(VF x) {
    uint32x4_t b = vandq_u32(vreinterpretq_u32_f32(x.v), vdupq_n_u32(0x007fffffu));
    return vreinterpretq_f32_u32(vorrq_u32(b, vdupq_n_u32(0x3f800000u)));
  }
};

struct MD {
  uint64x2_t m;
  friend MD operator&(MD a, MD b) { return {vandq_u64(a.m, b.m)}; }
  friend MD operator|(MD a, MD b) { return {vorrq_u64(a.m, b.m)}; }
  friend MD operator~(MD a) { return {vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(a.m)))}; }
  friend bool all_of(MD a) { return vminvq_u32(vreinterpretq_u32_u64(a.m)) == 0xffffffffu; }
};

struct VD {
  using T = double;
  using M = MD;
  static constexpr int W = 2;
  float64x2_t v;
  VD() = default;
  VD(float64x2_t x) : v(x) {}
  VD(double x) : v(vdupq_n_f64(x)) {}
  static VD load(const double* p) { return vld1q_f64(p); }
  void store(double* p) const { vst1q_f64(p, v); }
  void store_stream(double* p) const { vst1q_f64(p, v); }
  static void stream_fence() {}
  friend VD operator+(VD a, VD b) { return vaddq_f64(a.v, b.v); }
  friend VD operator-(VD a, VD b) { return vsubq_f64(a.v, b.v); }
  friend VD operator*(VD a, VD b) { return vmulq_f64(a.v, b.v); }
  friend VD operator/(VD a, VD b) { return vdivq_f64(a.v, b.v); }
  friend VD operator-(VD a) { return vnegq_f64(a.v); }
  friend M operator<(VD a, VD b) { return {vcltq_f64(a.v, b.v)}; }
  friend M operator<=(VD a, VD b) { return {vcleq_f64(a.v, b.v)}; }
  friend M operator>(VD a, VD b) { return {vcgtq_f64(a.v, b.v)}; }
  friend M operator>=(VD a, VD b) { return {vcgeq_f64(a.v, b.v)}; }
  friend M operator==(VD a, VD b) { return {vceqq_f64(a.v, b.v)}; }
  friend M operator!=(VD a, VD b) { return ~M{vceqq_f64(a.v, b.v)}; }
  friend VD fma(VD a, VD b, VD c) { return vfmaq_f64(c.v, a.v, b.v); }
  friend VD select(M m, VD a, VD b) { return vbslq_f64(m.m, a.v, b.v); }
  friend VD at_most(VD a, VD c) { return vbslq_f64(vcgtq_f64(a.v, c.v), c.v, a.v); }
  friend VD at_least(VD a, VD c) { return vbslq_f64(vcltq_f64(a.v, c.v), c.v, a.v); }
  friend VD abs(VD a) { return vabsq_f64(a.v); }
  friend VD copysign(VD a, VD s) { return vbslq_f64(vdupq_n_u64(0x8000000000000000ull), s.v, a.v); }
  friend VD pow2i(VD n) {
    int64x2_t i = vaddq_s64(vcvtnq_s64_f64(n.v), vdupq_n_s64(1023));
    return vreinterpretq_f64_s64(vshlq_n_s64(i, 52));
  }
  friend VD shift_to_exponent(VD t) { return vreinterpretq_f64_u64(vshlq_n_u64(vreinterpretq_u64_f64(t.v), 52)); }
  friend VD exponent_of(VD x) {
    int64x2_t e = vreinterpretq_s64_u64(vshrq_n_u64(vreinterpretq_u64_f64(x.v), 52));
    return vcvtq_f64_s64(vsubq_s64(e, vdupq_n_s64(1023)));
  }
  friend VD mantissa_of(VD x) {
    uint64x2_t b = vandq_u64(vreinterpretq_u64_f64(x.v), vdupq_n_u64(0x000fffffffffffffull));
    return vreinterpretq_f64_u64(vorrq_u64(b, vdupq_n_u64(0x3ff0000000000000ull)));
  }
};

}  // namespace fastact::simd::neon
