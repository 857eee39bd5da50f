// AVX2 + FMA path (compiled with -mavx2 -mfma).
#include "simd/vec_avx2.h"
#define FASTACT_ISA avx2
#define FASTACT_ISA_NAME "avx2"
namespace fastact::cpu::avx2 {
using VF = simd::avx2::VF;
using VD = simd::avx2::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::avx2
#include "kernels.inc"
