// The loss engine: rows of logits along their last axis (the caller moves the class axis there; any
// strides), each row on one thread with a fixed order inside it, so every value depends on neither the
// thread count nor the ISA. Per-row results are float64: the caller combines and reduces them (O(rows)).
#pragma once
#include <cstdint>

#include "../row_losses.h"
#include "engine.h"

namespace fastact::cpu {

// lse[r] = the logsumexp of each row r (C order over shape[:-1]).
void run_logsumexp(int dtype, int ndim, const std::int64_t* shape, Operand x, double* lse);

// Per row r, with p = softmax(row) and a = coef[4r] + coef[4r+1] * lse[r], alpha = coef[4r+2],
// cw = coef[4r+3]: dx_j = a p_j - cw w_j - alpha [j == target[r]] (row_losses::RowPasses::grad). dx may be
// x itself.
void run_loss_grad(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
                   const std::int64_t* target, const double* weight, const double* coef);

using row_losses::CrossEntropy;  // (row_losses.h: the arithmetic around the row passes, shared with CUDA)
using row_losses::Reduction;

// The loss: the reduced value, or (none) one per row into per_row (0 for an ignored row). Sums are
// compensated (Neumaier) in row order: the same bits for any thread count.
double run_cross_entropy(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce,
                         double* per_row);
// Its gradient with respect to x, into dx (which may be x): grad is one value (mean, sum) or one per row
// (none). Ignored rows get zeros.
void run_cross_entropy_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                const std::int64_t* dx_strides, const CrossEntropy& ce, const double* grad);

// Softmax cross-entropy with class probabilities (target of the logits' shape, any strides), as PyTorch's
// F.cross_entropy with a probability target: per row, with q_j = (1 - eps) p_j + eps / K and v_j = w_j q_j,
//   loss_r = sum_j v_j (lse - x_j) + z lse^2 = sum_j v_j (m - x_j) + (lse - m) sum_j v_j + z lse^2,
// two sums of terms that are never negative (for p >= 0), a term of v_j = 0 being 0 (also at x_j = -inf);
// "mean" divides by the number of rows. The gradient: (sum_j v_j + 2 z lse) softmax_j - v_j.
struct ProbTargets {
  Operand p;             // the probabilities, of x's dtype and shape
  const double* weight;  // K, or null
  double label_smoothing, z_loss;
  Reduction reduction;
};
double run_cross_entropy_probs(int dtype, int ndim, const std::int64_t* shape, Operand x, const ProbTargets& pt,
                               double* per_row);
// dx may be x (not p); grad as run_cross_entropy_backward's.
void run_cross_entropy_probs_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                      const std::int64_t* dx_strides, const ProbTargets& pt, const double* grad);

// nll_loss: the loss is -w_t x_t per counted row (x: log-probabilities), with cross_entropy's reductions
// (ce's label_smoothing and z_loss are not used); its gradient is zero but at each counted row's target.
double run_nll(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce, double* per_row);
void run_nll_backward(int dtype, int ndim, const std::int64_t* shape, void* dx, const std::int64_t* dx_strides,
                      const CrossEntropy& ce, const double* grad);

}  // namespace fastact::cpu
