// From an N-d call (shape and element strides per operand) to what a CUDA launch takes: a Walk or a
// RowWalk, and the grid. Host-only and shared by the launcher (launch.cu) and the host emulation test.
#pragma once
#include <stdexcept>
#include <string>

#include "../layout.h"
#include "bodies.h"

namespace fastact::cuda {

inline Walk to_walk(const layout::Dims& d, int nops = 3) {
  if (d.n > kMaxDims)
    throw std::invalid_argument("this layout has " + std::to_string(d.n) +
                                " dimensions that cannot be merged; the CUDA kernels take at most " +
                                std::to_string(kMaxDims) + " (copy the array to a contiguous one first)");
  Walk w;
  w.ndim = d.n;
  w.nops = nops;
  for (int i = 0; i < d.n; ++i) {
    w.size[i] = d.size[i];
    for (int k = 0; k < nops; ++k) w.st[k][i] = d.st[k][i];
  }
  return w;
}

struct EwPlan {
  i64 n = 0;
  bool contiguous = false;
  Walk walk;  // when not contiguous
};

// nops operands' strides: the outputs, then the inputs.
inline EwPlan plan_elementwise(int ndim, const i64* shape, int nops, const i64* const* strides) {
  if (nops > kMaxOps) throw std::invalid_argument("an element-wise launch takes at most " + std::to_string(kMaxOps) + " operands");
  const layout::Flat f = layout::flatten(ndim, shape, nops, strides);
  EwPlan p;
  p.n = f.n;
  p.contiguous = f.contiguous;
  if (!f.contiguous && f.n > 0) p.walk = to_walk(f.d, nops);
  return p;
}
// out, a and (sb non-null) b.
inline EwPlan plan_elementwise(int ndim, const i64* shape, const i64* so, const i64* sa, const i64* sb) {
  const i64* strides[3] = {so, sa, sb ? sb : so};
  return plan_elementwise(ndim, shape, sb ? 3 : 2, strides);
}

// Rows along axis; sb null: no b operand.
inline RowWalk plan_rows(int ndim, const i64* shape, int axis, const i64* so, const i64* sa, const i64* sb) {
  i64 oshape[layout::kMaxDims], oso[layout::kMaxDims], osa[layout::kMaxDims], osb[layout::kMaxDims];
  int m = 0;
  RowWalk r;
  r.len = shape[axis];
  r.nrows = 1;
  for (int i = 0; i < ndim; ++i) {
    if (i == axis) continue;
    oshape[m] = shape[i];
    oso[m] = so[i];
    osa[m] = sa[i];
    osb[m] = sb ? sb[i] : 0;
    r.nrows *= shape[i];
    ++m;
  }
  r.axis_st[0] = so[axis];
  r.axis_st[1] = sa[axis];
  r.axis_st[2] = sb ? sb[axis] : 0;
  const i64* strides[3] = {oso, osa, osb};
  if (r.nrows > 0 && r.len > 0) r.outer = to_walk(layout::coalesce(m, oshape, strides, 3));
  return r;
}

// A reduction (bodies.h ReduceBody) over nall operands' strides: the outputs, the inputs, then the
// reduced operand (strides 0 where red_shape is 1).
inline ReduceWalk plan_reduce(int ndim, const i64* shape, int nall, const i64* const* strides, const i64* red_shape) {
  if (nall > kMaxOps) throw std::invalid_argument("a reduction takes at most " + std::to_string(kMaxOps) + " operands");
  const layout::ReduceSplit r = layout::split_reduction(ndim, shape, nall, strides, red_shape);
  if (r.nkept > kMaxDims || r.nsum > kMaxDims)
    throw std::invalid_argument("this layout has " + std::to_string(r.d.n) +
                                " dimensions that cannot be merged; the CUDA kernels take at most " +
                                std::to_string(kMaxDims) + " kept and " + std::to_string(kMaxDims) +
                                " summed (copy the arrays to contiguous ones first)");
  ReduceWalk w;
  const auto fill = [&](Walk& walk, const int* dims, int n, int nops) {
    walk.ndim = n;
    walk.nops = nops;
    for (int i = 0; i < n; ++i) {
      walk.size[i] = r.d.size[dims[i]];
      for (int k = 0; k < nops; ++k) walk.st[k][i] = r.d.st[k][dims[i]];
    }
  };
  fill(w.kept, r.kept, r.nkept, nall);
  fill(w.summed, r.sum, r.nsum, nall - 1);
  w.L = r.L;
  w.J = r.J;
  w.nchunks = (r.L + kChunk - 1) / kChunk;
  return w;
}

}  // namespace fastact::cuda
