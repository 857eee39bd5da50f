// Kernel tables: one per ISA, each filled from the registry by kernels.inc compiled with that ISA's flags.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastact/registry.h"
#include "../kinds.h"

namespace fastact::cpu {
using namespace fastact::kinds;

// An element-wise kernel: n elements of each operand, contiguous. in: the op's inputs in its direction
// (ops::Signature: a unary op's x, or dy and x / y), out: its outputs.
struct EwKernel {
  void (*fn)(const void* const* in, void* const* out, std::size_t n, const double* params) = nullptr;
  // A unary op's call: a = x (forward) or dy, b = unused (forward) or x / y, one output.
  void operator()(const void* a, const void* b, void* out, std::size_t n, const double* params) const {
    const void* in[2] = {a, b};
    void* o[1] = {out};
    fn(in, o, n, params);
  }
  explicit operator bool() const { return fn != nullptr; }
};
// Contiguous rows of len elements (forward: a = x; backward: a = dy, b = y), whole (several equally
// spaced rows per call, so that short rows can share their fixed costs), or one row in phases over
// whole chunks (math/rows.h kChunk) so that threads can share one long row and give the same bits:
// forward max -> m; sums over a run of chunks -> one partial per chunk; the partials of the row summed by
// math::rows::PartialSums -> total; write. The backward has no max phase.
struct RowKernel {
  // nrows whole rows of len; row r at a + r*sa, b + r*sb, out + r*so (strides in elements)
  void (*rows)(const void* a, const void* b, void* out, std::size_t len, std::size_t nrows, std::int64_t sa,
               std::int64_t sb, std::int64_t so) = nullptr;
  double (*max)(const void* a, std::size_t n) = nullptr;
  void (*sums)(const void* a, const void* b, void* out, std::size_t n, double m, double* partials) = nullptr;
  void (*write)(const void* a, const void* b, void* out, std::size_t n, double m, double total) = nullptr;
  void operator()(const void* a, const void* b, void* out, std::size_t len) const { rows(a, b, out, len, 1, 0, 0, 0); }
  explicit operator bool() const { return rows != nullptr; }
};

// The reduction engine's arithmetic in one compute type (reduce_kernels.h): 32 Kahan lanes of m columns
// each, lane l's sums at s + l * ld and compensations at c + l * ld.
struct ReduceKernel {
  void (*add_lanes)(const void* v, std::size_t n, void* s, void* c) = nullptr;  // one column: v[t] to lane t % 32
  void (*add_row)(const void* v, std::size_t m, void* s, void* c) = nullptr;    // one lane of m columns (v null: 0)
  // each column's lanes -> out; lanes from `lanes` on are zeros, not read
  void (*combine)(const void* s, const void* c, std::size_t m, std::size_t ld, int lanes, void* out) = nullptr;
};

// The losses' row kernels (loss_kernels.h; the engine is losses.cpp): one contiguous row of len, w the
// class weights in the compute type (float for float32 / 16-bit rows, double for float64) or null.
struct LossKernel {
  void (*stats)(const void* x, std::size_t len, const void* w, bool smooth, double* m_L_a) = nullptr;
  void (*grad)(const void* x, void* dx, std::size_t len, const void* w, const double* coef, double* m_L) = nullptr;
  void (*target)(void* dx, std::int64_t t, const void* w, const double* coef, double zt, double lse) = nullptr;
};

// Element-wise float32 / float64 kernel calls that write at least this many bytes store with
// non-temporal stores (half the last-level cache: such an output cannot stay in cache anyway, and the
// line is then written without being read first, a third of a copy's memory traffic saved).
// FASTACT_STREAM_STORES=0 turns them off (the threshold is then SIZE_MAX).
std::size_t stream_min_bytes();
void set_stream_min_bytes(std::size_t bytes);  // for the tests: streaming at small sizes

struct KernelTable {
  const char* isa;
  EwKernel ew[int(ElementwiseOp::count)][kNumDirections][kNumDtypes];  // null: direction not offered
  // Large 16-bit calls of the ops that declare tabulate16 (tables16.h); null elsewhere.
  EwKernel ew_tabulated[int(ElementwiseOp::count)][kNumDirections][kNumDtypes];
  RowKernel row[int(RowOp::count)][2][kNumDtypes];                    // [forward, backward from y]
  ReduceKernel reduce[2];                                              // [float, double] compute types
  LossKernel loss[kNumDtypes];
};

namespace scalar { const KernelTable& table(); }
namespace avx2 { const KernelTable& table(); }
namespace avx512 { const KernelTable& table(); }
namespace neon { const KernelTable& table(); }

}  // namespace fastact::cpu
