// fastact: activation functions, forward and backward, on raw pointers. Umbrella header.
//
// Every op of the registry (fastact/registry.h) gets, for float, double, fastact::half and
// fastact::bfloat16 (16-bit types: computed in float32, rounded once on store):
//   void relu(const float* x, float* y, std::size_t n);                        contiguous
//   void relu(const float* x, std::ptrdiff_t x_stride, float* y, std::ptrdiff_t y_stride, std::size_t n);
//   void relu_backward(const float* dy, const float* x, float* dx, std::size_t n);      from x
//   void relu_backward_from_y(const float* dy, const float* y, float* dx, std::size_t n);  (where allowed)
// with the op's parameters (and their defaults) after n, e.g. elu(x, y, n, alpha = 1.0) and
// gelu(x, y, n, GeluApprox approximate = GeluApprox::none). Row ops (softmax, log_softmax) take
// (x, y, rows, cols) for rows of contiguous cols, or element strides for rows and columns.
// Strides are in elements. In-place (y == x) is allowed. Bad arguments throw fastact::Error.
// 16-bit calls of 16,384 elements or more to the costly ops (elu, gelu, silu, sigmoid, tanh) look results
// up in per-process tables of all 65,536 inputs, filled by the same kernels (same bits; built on first
// use, 128-256 KiB each; FASTACT_HALF_TABLES=0 turns them off).
#pragma once
#include <cstddef>
#include <initializer_list>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastact/half.h"
#include "fastact/registry.h"

namespace fastact {

// Every error fastact reports (bad parameter, unknown or unsupported ISA, bad thread count).
class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

const char* version();
// ISA paths compiled into this build, those this CPU can run, and the one in use.
std::vector<std::string> compiled_isas();
std::vector<std::string> supported_isas();
std::string current_isa();
// Select a path ("scalar", "avx2", "avx512", "neon", or "best"); throws Error if this CPU lacks it.
void set_isa(const std::string& name);
int num_threads();
void set_num_threads(int n);

#define FASTACT_P_DECL(type, name, def, check, choices, init) , type name init
#define FASTACT_DECL_Y_FromX(op, T, params)
#define FASTACT_DECL_Y_FromXorY(op, T, params) \
  void op##_backward_from_y(const T* dy, const T* y, T* dx, std::size_t n FASTACT_PARAMS_APPLY(DECL, params));
#define FASTACT_DECL_Y_FromXorYIfPos FASTACT_DECL_Y_FromXorY
#define FASTACT_DECL_EW_T(op, from, T, params)                                                   \
  void op(const T* x, T* y, std::size_t n FASTACT_PARAMS_APPLY(DECL, params));                    \
  void op(const T* x, std::ptrdiff_t x_stride, T* y, std::ptrdiff_t y_stride,                     \
          std::size_t n FASTACT_PARAMS_APPLY(DECL, params));                                      \
  void op##_backward(const T* dy, const T* x, T* dx, std::size_t n FASTACT_PARAMS_APPLY(DECL, params)); \
  FASTACT_DECL_Y_##from(op, T, params)
#define FASTACT_DECL_EW(op, F, from, doc, params) \
  FASTACT_DECL_EW_T(op, from, float, params)     \
  FASTACT_DECL_EW_T(op, from, double, params)    \
  FASTACT_DECL_EW_T(op, from, half, params)      \
  FASTACT_DECL_EW_T(op, from, bfloat16, params)
#define FASTACT_DECL_ROW_T(op, T)                                                                       \
  void op(const T* x, T* y, std::size_t rows, std::size_t cols);                                         \
  void op(const T* x, std::ptrdiff_t x_row_stride, std::ptrdiff_t x_col_stride, T* y,                    \
          std::ptrdiff_t y_row_stride, std::ptrdiff_t y_col_stride, std::size_t rows, std::size_t cols); \
  void op##_backward(const T* dy, const T* y, T* dx, std::size_t rows, std::size_t cols);
#define FASTACT_DECL_ROW(op, F, from, doc) \
  FASTACT_DECL_ROW_T(op, float) FASTACT_DECL_ROW_T(op, double) FASTACT_DECL_ROW_T(op, half) FASTACT_DECL_ROW_T(op, bfloat16)

// Gated ops (the GLU family): op(gate, up, y, n) on two arrays, or op(x, y, rows, half_len) on rows of 2 * half_len
// split in halves (a: the first, b: the second); backward op_backward(dy, gate, up, dgate, dup, n), or
// op_backward(dy, x, dx, rows, half_len) with dx of x's layout. Outputs may be their matching inputs.
#define FASTACT_DECL_GATED_T(op, T, params)                                                                       \
  void op(const T* gate, const T* up, T* y, std::size_t n FASTACT_PARAMS_APPLY(DECL, params));                   \
  void op(const T* x, T* y, std::size_t rows, std::size_t half_len FASTACT_PARAMS_APPLY(DECL, params));              \
  void op##_backward(const T* dy, const T* gate, const T* up, T* dgate, T* dup,                                  \
                     std::size_t n FASTACT_PARAMS_APPLY(DECL, params));                                          \
  void op##_backward(const T* dy, const T* x, T* dx, std::size_t rows, std::size_t half_len FASTACT_PARAMS_APPLY(DECL, params));
#define FASTACT_DECL_GATED(op, Act, which, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DECL_GATED_T, op, params)

// Ops with a broadcast operand: prelu(x, weight, y, outer, channels, inner) on x of (outer, channels, inner),
// contiguous, with one weight per channel (channels = 1: one slope; NCHW: N, C, H*W; channels last: N*H*W,
// C, 1); op_backward(dy, x, weight, dx, dweight, outer, channels, inner), dweight summed in a fixed order
// (the same bits for any thread count and ISA). bias_act for each unary op, rows of cols with the bias
// along each row: bias_gelu(x, b, y, rows, cols, approximate), bias_gelu_backward(dy, x, b, dx, db, rows,
// cols, approximate), ... (b: the bias, named so that an activation's parameter may be called bias, as
// shrink's is). dx may be x or dy; dweight / db may be the weight / b.
#define FASTACT_DECL_BROADCAST_T(op, T, params)                                                                   \
  void op(const T* x, const T* w, T* y, std::size_t outer, std::size_t channels,                                 \
          std::size_t inner FASTACT_PARAMS_APPLY(DECL, params));                                                  \
  void op##_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, std::size_t outer, std::size_t channels, \
                     std::size_t inner FASTACT_PARAMS_APPLY(DECL, params));
#define FASTACT_DECL_BROADCAST(op, F, operand, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DECL_BROADCAST_T, op, params)
#define FASTACT_DECL_BIAS_T(op, T, params)                                                                        \
  void bias_##op(const T* x, const T* b, T* y, std::size_t rows, std::size_t cols FASTACT_PARAMS_APPLY(DECL, params)); \
  void bias_##op##_backward(const T* dy, const T* x, const T* b, T* dx, T* db, std::size_t rows,          \
                            std::size_t cols FASTACT_PARAMS_APPLY(DECL, params));
#define FASTACT_DECL_BIAS(op, F, from, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DECL_BIAS_T, op, params)

FASTACT_ELEMENTWISE_OPS(FASTACT_DECL_EW)
FASTACT_GATED_OPS(FASTACT_DECL_GATED)
FASTACT_BROADCAST_OPS(FASTACT_DECL_BROADCAST)
FASTACT_ELEMENTWISE_OPS(FASTACT_DECL_BIAS)
FASTACT_ROW_OPS(FASTACT_DECL_ROW)

// Losses over rows of `classes` contiguous logits (the softmax is never stored). cross_entropy's target
// holds one class index per row; a row whose target equals ignore_index counts for nothing, any other
// index outside [0, classes) is an Error (nothing is read). Returns the "mean" / "sum" loss as a double,
// or, for Reduction::none, writes one loss per row to per_row (rows doubles; 0 for an ignored row) and
// returns 0. cross_entropy_backward takes grad = one value (mean, sum) or one per row (none) and writes
// the gradient to dlogits, which may be logits itself. Semantics as PyTorch's F.cross_entropy (weights,
// label smoothing, ignore_index; "mean" divides by the counted targets' weights), plus z_loss * lse^2 per
// counted row (its mean over the counted rows). logsumexp(x, y, rows, cols): y[r] = log(sum(exp(row r)));
// logsumexp_backward(dy, x, dx, rows, cols): dx = dy[r] * softmax(row r). nll_loss takes log-probabilities
// (-w_t x_t per counted row; the same options, label_smoothing and z_loss 0), nll_loss_backward writes
// zeros but at each counted row's target. cross_entropy_probs takes class probabilities (a soft target, rows x
// classes of the logits' type) instead of indices: -sum_j w_j q_j log_softmax_j per row, q = (1 - eps) p +
// eps / classes, "mean" over the rows (ignore_index unused); its backward's dlogits may be logits, not probs.
enum class Reduction { mean = 0, sum = 1, none = 2 };
struct CrossEntropyOptions {
  const double* weight = nullptr;  // one per class, or none
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;    // in [0, 1]
  std::int64_t ignore_index = -100;
  double z_loss = 0.0;             // >= 0
};
#define FASTACT_DECL_LOSS_T(T)                                                                                    \
  void logsumexp(const T* x, T* y, std::size_t rows, std::size_t cols);                                           \
  void logsumexp_backward(const T* dy, const T* x, T* dx, std::size_t rows, std::size_t cols);                    \
  double cross_entropy(const T* logits, const std::int64_t* target, std::size_t rows, std::size_t classes,         \
                       const CrossEntropyOptions& options = {}, double* per_row = nullptr);                      \
  void cross_entropy_backward(const double* grad, const T* logits, const std::int64_t* target, T* dlogits,         \
                              std::size_t rows, std::size_t classes, const CrossEntropyOptions& options = {});   \
  double nll_loss(const T* log_probs, const std::int64_t* target, std::size_t rows, std::size_t classes,          \
                  const CrossEntropyOptions& options = {}, double* per_row = nullptr);                           \
  void nll_loss_backward(const double* grad, const std::int64_t* target, T* dlog_probs, std::size_t rows,         \
                         std::size_t classes, const CrossEntropyOptions& options = {});                          \
  double cross_entropy_probs(const T* logits, const T* probs, std::size_t rows, std::size_t classes,               \
                             const CrossEntropyOptions& options = {}, double* per_row = nullptr);                \
  void cross_entropy_probs_backward(const double* grad, const T* logits, const T* probs, T* dlogits,                \
                                    std::size_t rows, std::size_t classes, const CrossEntropyOptions& options = {});
FASTACT_DECL_LOSS_T(float)
FASTACT_DECL_LOSS_T(double)
FASTACT_DECL_LOSS_T(half)
FASTACT_DECL_LOSS_T(bfloat16)
#undef FASTACT_DECL_LOSS_T

// Element-wise losses (registry.h FASTACT_LOSS_OPS) of n contiguous elements: op(input, target, n, reduction,
// loss, weights, params...) returns the "mean" / "sum" loss as a double (summed in a fixed order: the same
// bits for any thread count and ISA), or, for Reduction::none, writes n losses to `loss` (which may be
// input or target) and returns 0. weights: the op's weight operands in the registry's order
// (binary_cross_entropy_with_logits: {weight, pos_weight}), each n values, or null (or left out) for 1.
// op_backward(grad, input, target, grad_input, n, reduction, weights, params...) writes the gradient in
// the input; grad is one value for mean / sum, n values for none.
#define FASTACT_DECL_LOSS_OP_T(op, T, params)                                                                     \
  double op(const T* input, const T* target, std::size_t n, Reduction reduction = Reduction::mean,               \
            T* loss = nullptr, std::initializer_list<const T*> weights = {} FASTACT_PARAMS_APPLY(DECL, params));  \
  void op##_backward(const T* grad, const T* input, const T* target, T* grad_input, std::size_t n,               \
                     Reduction reduction = Reduction::mean,                                                      \
                     std::initializer_list<const T*> weights = {} FASTACT_PARAMS_APPLY(DECL, params));
#define FASTACT_DECL_LOSS_OP(op, L, operands, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DECL_LOSS_OP_T, op, params)
FASTACT_LOSS_OPS(FASTACT_DECL_LOSS_OP)
#undef FASTACT_DECL_LOSS_OP_T
#undef FASTACT_DECL_LOSS_OP

#undef FASTACT_P_DECL
#undef FASTACT_DECL_Y_FromX
#undef FASTACT_DECL_Y_FromXorY
#undef FASTACT_DECL_Y_FromXorYIfPos
#undef FASTACT_DECL_EW_T
#undef FASTACT_DECL_EW
#undef FASTACT_DECL_ROW_T
#undef FASTACT_DECL_ROW
#undef FASTACT_DECL_GATED_T
#undef FASTACT_DECL_GATED
#undef FASTACT_DECL_BROADCAST_T
#undef FASTACT_DECL_BROADCAST
#undef FASTACT_DECL_BIAS_T
#undef FASTACT_DECL_BIAS

}  // namespace fastact
