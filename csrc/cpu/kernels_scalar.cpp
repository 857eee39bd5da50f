// Portable scalar path: the reference every SIMD path must match bit for bit.
#include "../math/vec_scalar.h"
#define FASTACT_ISA scalar
#define FASTACT_ISA_NAME "scalar"
namespace fastact::cpu::scalar {
using VF = simd::Scalar<float>;
using VD = simd::Scalar<double>;
constexpr int kInterleave = 1;
}  // namespace fastact::cpu::scalar
#include "kernels.inc"
