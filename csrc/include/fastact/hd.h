// FASTACT_HD marks math that must compile for the host and for CUDA devices alike ("math once").
#pragma once
#if defined(__CUDACC__)
#define FASTACT_HD __host__ __device__ __forceinline__
#else
#define FASTACT_HD inline __attribute__((always_inline))
#endif
