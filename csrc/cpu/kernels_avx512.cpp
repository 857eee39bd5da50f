// AVX-512F path (compiled with -mavx512f -mfma).
#define FASTACT_ISA avx512  // before any include: names the inline namespace of this ISA's code (fastact/hd.h)
#define FASTACT_ISA_NAME "avx512"
#include "simd/vec_avx512.h"
namespace fastact::cpu::avx512 {
using VF = simd::avx512::VF;
using VD = simd::avx512::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::avx512
#include "kernels.inc"
