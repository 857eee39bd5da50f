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

// Code compiled once per instruction set (the math, the vector types, the storage moves, the row kernels)
// is declared between FASTACT_TARGET_BEGIN and FASTACT_TARGET_END: an inline namespace named after the
// translation unit's ISA (FASTACT_ISA, defined by csrc/cpu/kernels_<isa>.cpp before any include;
// isa_baseline elsewhere, isa_cuda under nvcc). Each ISA's copy of an inline function is then a symbol
// of its own, so the linker can never keep the AVX-512 copy for the scalar path (the ctest isa_symbols
// checks the objects). Callers name things as if the namespace were not there.
#if defined(__CUDACC__)
#define FASTACT_TARGET_NS isa_cuda
#elif defined(FASTACT_ISA)
#define FASTACT_TARGET_NS FASTACT_TARGET_NS_I(FASTACT_ISA)
#else
#define FASTACT_TARGET_NS isa_baseline
#endif
#define FASTACT_TARGET_NS_I(isa) FASTACT_TARGET_NS_II(isa)
#define FASTACT_TARGET_NS_II(isa) isa_##isa
#define FASTACT_TARGET_BEGIN inline namespace FASTACT_TARGET_NS {
#define FASTACT_TARGET_END }
