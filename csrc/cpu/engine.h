// The two engines. Every op runs through one of them; they own layouts (strides, 0-d, empty, broadcast
// views), tails and threading, so kernels only ever see contiguous runs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace fastact::cpu {

struct Operand {
  const void* data;        // null for an absent operand
  const std::int64_t* strides;  // in elements, one per dimension
};

// out[i] = kernel(a[i], b[i]) over an N-d shape. Both engines run in fastact's floating-point state (fp_env.h)
// and give the caller's back; exceptions from the kernels or the pool's tasks reach the caller.
void run_elementwise(EwKernel k, int elsize, int ndim, const std::int64_t* shape, void* out,
                     const std::int64_t* out_strides, Operand a, Operand b, const double* params);
// The general form: nout outputs and nin inputs (the kernel's in its direction; nout + nin <=
// layout::kMaxOperands), any strides each; a stride-0 input (a broadcast weight or bias) stays on the
// contiguous kernel.
void run_elementwise(EwKernel k, int elsize, int ndim, const std::int64_t* shape, int nout, const Operand* outs,
                     int nin, const Operand* ins, const double* params);

// run_elementwise for a backward whose kernel writes, after its nout outputs, one contribution per
// element (in the compute type) to the gradient of a broadcast input: `reduced` (of dtype), walked along
// shape with strides 0 on the axes it is summed over (those where reduced_shape is 1 and shape is not).
// Each of its elements is the sum of its contributions in C order, by chunks of math::rows::kChunk, each
// chunk over 32 interleaved Kahan lanes and their tree, the chunks' partials summed by PartialSums: bits
// that depend on neither the thread count nor the ISA. rk: the table's reduce kernels ([float, double]).
// Every input is read before `reduced` is written only where it does not overlap one (the caller's
// concern). An empty sum is 0.
void run_reduction(EwKernel k, const ReduceKernel* rk, int dtype, int ndim, const std::int64_t* shape, int nout,
                   const Operand* outs, int nin, const Operand* ins, Operand reduced, const std::int64_t* reduced_shape,
                   const double* params);

// The sum of the contributions k writes (its one output, in the compute type) over the whole shape, in
// run_reduction's order (the same bits for any thread count and ISA), as a double: a loss's "sum". nin
// inputs, no other output; an empty shape sums to 0.
double run_total(EwKernel k, const ReduceKernel* rk, int dtype, int ndim, const std::int64_t* shape, int nin,
                 const Operand* ins, const double* params);

// kernel over every 1-d row along `axis` (0 <= axis < ndim).
void run_rows(RowKernel k, int elsize, int ndim, const std::int64_t* shape, int axis, void* out,
              const std::int64_t* out_strides, Operand a, Operand b);

}  // namespace fastact::cpu
