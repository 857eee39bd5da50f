// The loss engine: rows of logits along their last axis (the caller moves the class axis there; any
// strides), each row on one thread with a fixed order inside it, so every value depends on neither the
// thread count nor the ISA. Per-row results are float64: the caller combines and reduces them (O(rows)).
#pragma once
#include <cstdint>

#include "engine.h"

namespace fastact::cpu {

// Per row r (C order over shape[:-1]): lse[r] = logsumexp of the row; where target is given,
// nll[r] = lse - x[target[r]] (0 where target[r] < 0: an ignored row); where smooth is given,
// smooth[r] = sum_j w_j (lse - x_j) (weight null: w = 1). target entries are -1 or in [0, len).
void run_loss_stats(int dtype, int ndim, const std::int64_t* shape, Operand x, const std::int64_t* target,
                    const double* weight, double* lse, double* nll, double* smooth);

// Per row r, with p = softmax(row) and a = coef[4r] + coef[4r+1] * lse[r], alpha = coef[4r+2],
// cw = coef[4r+3]: dx_j = a p_j - cw w_j - alpha [j == target[r]], the target's element computed as
// alpha (p_t - 1) + ... with p_t - 1 = expm1(x_t - lse) (no cancellation). A row with target -1 and all four
// coefficients 0 is written as zeros. dx may be x itself (each row is read before it is written).
void run_loss_grad(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
                   const std::int64_t* target, const double* weight, const double* coef);

enum class Reduction { mean = 0, sum = 1, none = 2 };

// Softmax cross-entropy with class indices, as PyTorch's F.cross_entropy plus PaLM's z-loss: per counted
// row (target >= 0; -1 is an ignored row) with w_t the target's weight (1 without weights), K classes,
// W = sum of the weights (K without),
//   loss_r = (1 - eps) w_t (lse - x_t) + eps / K sum_j w_j (lse - x_j) + z lse^2,
// "mean" dividing the first two terms by the counted rows' sum of w_t and the z term by their count.
struct CrossEntropy {
  const std::int64_t* target;  // one per row, -1 or in [0, K)
  const double* weight;        // K, or null
  double label_smoothing, z_loss;
  Reduction reduction;
};

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

// d rounded to float toward zero, its last bit set where that was inexact: a float whose rounding to a
// 16-bit type is d's own correct rounding (no double rounding; losses.py does the same).
float round_to_odd(double d);

// A compensated (Neumaier) sum of n values in index order.
double fixed_sum(const double* v, std::int64_t n);

}  // namespace fastact::cpu
