// The CUDA backend's host API: one generic launcher per engine, indexed by the registry's op ids like
// the CPU kernel tables. Plain C++ (no CUDA types), so the Python bindings need no nvcc. Every call
// runs on `device` (made current for the call, then restored) and is asynchronous on `stream` (a
// cudaStream_t as an integer; 0 = the default stream). Errors throw std::runtime_error (CUDA) or
// std::invalid_argument (a layout the kernels cannot take).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../row_losses.h"

namespace fastact::cuda {

struct Operand {
  const void* data;             // null: absent
  const std::int64_t* strides;  // in elements, one per dimension
};

// nout outputs and nin inputs (the op's in direction dir: ops::Signature), each with its own strides.
void elementwise(int op, int dir, int dtype, int ndim, const std::int64_t* shape, int nout, const Operand* outs,
                 int nin, const Operand* ins, const double* params, std::uintptr_t stream, int device);

// The backward of an op with a broadcast operand (ops::Signature reduced): nout outputs of shape, nin
// inputs, and `reduced`, the operand's gradient, walked along shape with strides 0 on the axes it is
// summed over (those where reduced_shape is 1): summed in the CPU's order (cpu/engine.h run_reduction),
// so the bits are the CPU's.
void reduce(int op, int dtype, int ndim, const std::int64_t* shape, int nout, const Operand* outs, int nin,
            const Operand* ins, Operand reduced, const std::int64_t* reduced_shape, const double* params,
            std::uintptr_t stream, int device);

// Forward (dir 0: a = x) or backward (dir 1: a = dy, b = y) along axis.
void rows(int op, int dir, int dtype, int ndim, const std::int64_t* shape, int axis, void* out,
          const std::int64_t* out_strides, Operand a, Operand b, std::uintptr_t stream, int device);

// The sum of a summed loss's contributions (registry.h FASTACT_LOSS_OPS: summed_<name>, the kernel of
// "mean" and "sum") over shape, in the CPU's order (cpu/engine.h run_total), divided by the element count
// where `mean`, correctly rounded to dtype into out (one element of device memory).
void total(int op, int dtype, int ndim, const std::int64_t* shape, int nin, const Operand* ins, const double* params,
           bool mean, void* out, std::uintptr_t stream, int device);

// The row losses (row_losses.h) on rows along the last axis of shape, any strides, with the CUDA row
// passes: the CPU's bits (cpu/losses.h run_cross_entropy, run_nll and their backward, run_logsumexp,
// run_loss_grad). ce's targets and weights, grad, coef, per_row and lse are host arrays. Those that return
// values (the forwards) synchronize `stream`; the backward ones are asynchronous (dx may be x).
double cross_entropy(int dtype, int ndim, const std::int64_t* shape, Operand x, const row_losses::CrossEntropy& ce,
                     bool nll, double* per_row, std::uintptr_t stream, int device);
void cross_entropy_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                            const std::int64_t* dx_strides, const row_losses::CrossEntropy& ce, bool nll,
                            const double* grad, std::uintptr_t stream, int device);
// Class probabilities p (of x's shape; the rows' last axis too), as cpu/losses.h run_cross_entropy_probs.
double cross_entropy_probs(int dtype, int ndim, const std::int64_t* shape, Operand x, Operand p,
                           const row_losses::SoftTargets& st, double* per_row, std::uintptr_t stream, int device);
void cross_entropy_probs_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, Operand p, void* dx,
                                  const std::int64_t* dx_strides, const row_losses::SoftTargets& st, const double* grad,
                                  std::uintptr_t stream, int device);
void logsumexp(int dtype, int ndim, const std::int64_t* shape, Operand x, double* lse, std::uintptr_t stream,
               int device);
void loss_grad(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
               const double* coef, std::uintptr_t stream, int device);

// n host float64 values correctly rounded to dtype into out (n contiguous elements of device memory).
void store_values(int dtype, std::int64_t n, const double* values, void* out, std::uintptr_t stream, int device);

// out = a, any strides (elsize 2, 4 or 8 bytes).
void copy(int elsize, int ndim, const std::int64_t* shape, void* out, const std::int64_t* out_strides, Operand a,
          std::uintptr_t stream, int device);

// Makes `device` current for its lifetime and then restores the caller's device (CuPy and PyTorch keep
// their own notion of the current device; a library call must not change it).
class DeviceScope {
 public:
  explicit DeviceScope(int device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int prev_ = -1;
};

// The GPU architectures this build carries code for (e.g. "sm_80", "sm_90", "compute_90").
std::vector<std::string> targets();

}  // namespace fastact::cuda
