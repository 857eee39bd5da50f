// NEON path (AArch64, where Advanced SIMD is always present).
#include "simd/vec_neon.h"
#define FASTACT_ISA neon
#define FASTACT_ISA_NAME "neon"
namespace fastact::cpu::neon {
using VF = simd::neon::VF;
using VD = simd::neon::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::neon
#include "kernels.inc"
