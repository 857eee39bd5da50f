// FASTACT_HD marks math that must compile for the host and for CUDA devices alike ("math once").
#pragma once
#if defined(__CUDACC__)
#define FASTACT_HD __host__ __device__ __forceinline__
#else
#define FASTACT_HD inline __attribute__((always_inline))
#endif

// Host+device, inlined at the compiler's discretion: for glue around the math (applying an op,
// reduction steps) that must not multiply the always-inlined math bodies at every call site.
#if defined(__CUDACC__)
#define FASTACT_HD_INLINE __host__ __device__ inline
#else
#define FASTACT_HD_INLINE inline
#endif

// Unroll a loop in device code (more loads in flight per thread); nothing on the host.
#if defined(__CUDA_ARCH__)
#define FASTACT_PRAGMA(x) _Pragma(#x)
#define FASTACT_DEVICE_UNROLL(n) FASTACT_PRAGMA(unroll n)
#else
#define FASTACT_DEVICE_UNROLL(n)
#endif
