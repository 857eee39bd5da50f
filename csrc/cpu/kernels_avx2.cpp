// AVX2 + FMA path (compiled with -mavx2 -mfma).
#define FASTACT_ISA avx2  // before any include: names the inline namespace of this ISA's code (fastact/hd.h)
#define FASTACT_ISA_NAME "avx2"
#include "simd/vec_avx2.h"
namespace fastact::cpu::avx2 {
using VF = simd::avx2::VF;
using VD = simd::avx2::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::avx2
#include "kernels.inc"
