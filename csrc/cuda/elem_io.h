// One element in and out of the compute type on the GPU (and in the host emulation of its kernels):
// float and double as they are, float16 / bfloat16 widened exactly to float and rounded to nearest
// even on the way back. On the device the conversions are the hardware's (cvt), elsewhere half.h's;
// both are exact on the way in and round-to-nearest-even on the way out, so they give the same bits.
#pragma once
#include "fastact/half.h"
#include "fastact/hd.h"
#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace fastact::cuda {

template <class S>
struct ElemIo {  // float, double
  using C = S;
  FASTACT_HD static C load(S v) { return v; }
  FASTACT_HD static S store(C v) { return v; }
};

template <>
struct ElemIo<half> {
  using C = float;
  FASTACT_HD static C load(half h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h.bits));
#else
    return to_float(h);
#endif
  }
  FASTACT_HD static half store(C v) {
#if defined(__CUDA_ARCH__)
    return half{__half_as_ushort(__float2half_rn(v))};
#else
    return to_half(v);
#endif
  }
};

template <>
struct ElemIo<bfloat16> {
  using C = float;
  FASTACT_HD static C load(bfloat16 b) { return to_float(b); }  // a shift: exact everywhere
  FASTACT_HD static bfloat16 store(C v) {
#if defined(__CUDA_ARCH__)
    return bfloat16{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
#else
    return to_bfloat16(v);
#endif
  }
};

}  // namespace fastact::cuda
