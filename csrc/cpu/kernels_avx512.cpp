// AVX-512F path (compiled with -mavx512f -mfma).
#include "simd/vec_avx512.h"
#define FASTACT_ISA avx512
#define FASTACT_ISA_NAME "avx512"
namespace fastact::cpu::avx512 {
using VF = simd::avx512::VF;
using VD = simd::avx512::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::avx512
#include "kernels.inc"
