// Portable scalar path: the reference every SIMD path must match bit for bit.
#define FASTACT_ISA scalar  // before any include: names the inline namespace of this ISA's code (fastact/hd.h)
#define FASTACT_ISA_NAME "scalar"
#include "../math/vec_scalar.h"
namespace fastact::cpu::scalar {
using VF = simd::Scalar<float>;
using VD = simd::Scalar<double>;
constexpr int kInterleave = 1;
}  // namespace fastact::cpu::scalar
#include "kernels.inc"
