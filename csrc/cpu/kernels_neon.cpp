// NEON path (AArch64, where Advanced SIMD is always present).
#define FASTACT_ISA neon  // before any include: names the inline namespace of this ISA's code (fastact/hd.h)
#define FASTACT_ISA_NAME "neon"
#include "simd/vec_neon.h"
namespace fastact::cpu::neon {
using VF = simd::neon::VF;
using VD = simd::neon::VD;
constexpr int kInterleave = 4;
}  // namespace fastact::cpu::neon
#include "kernels.inc"
