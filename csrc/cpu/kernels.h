// Kernel tables: one per ISA, each filled from the registry by kernels.inc compiled with that ISA's flags.
#pragma once
#include <cstddef>

#include "fastact/registry.h"
#include "../kinds.h"

namespace fastact::cpu {
using namespace fastact::kinds;

// a: x (forward) or dy (backward); b: unused (forward) or x / y (backward). Contiguous, n elements.
using EwKernel = void (*)(const void* a, const void* b, void* out, std::size_t n, const double* params);
// One contiguous row of len elements. Forward: a = x. Backward: a = dy, b = y.
using RowKernel = void (*)(const void* a, const void* b, void* out, std::size_t len);

struct KernelTable {
  const char* isa;
  EwKernel ew[int(ElementwiseOp::count)][kNumDirections][kNumDtypes];  // null: direction not offered
  // Large 16-bit calls of the ops that declare tabulate16 (tables16.h); null elsewhere.
  EwKernel ew_tabulated[int(ElementwiseOp::count)][kNumDirections][kNumDtypes];
  RowKernel row[int(RowOp::count)][2][kNumDtypes];                    // [forward, backward from y]
};

namespace scalar { const KernelTable& table(); }
namespace avx2 { const KernelTable& table(); }
namespace avx512 { const KernelTable& table(); }
namespace neon { const KernelTable& table(); }

}  // namespace fastact::cpu
