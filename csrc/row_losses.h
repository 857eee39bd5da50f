// The row losses (cross-entropy with class indices, nll, logsumexp) around their row passes. An engine
// provides the passes over rows of logits (RowPasses: the CPU's loss kernels, or the CUDA kernels);
// everything per row in float64 and every reduction over the rows is here, once, so the engines give the
// same bits where their passes do. Plain host C++ (the CUDA backend links it without the CPU engine).
#pragma once
#include <cstdint>

namespace fastact::row_losses {

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

// What the stats pass gives per row: its max m, L = log(sum exp(x - m)) (so lse = m + L), a = the
// smoothing sum of w_j (m - x_j) (0 unless asked for), and x_t, the target's element (0 for an ignored
// row). A row with no elements has m = -inf and L = a = 0.
struct RowStats {
  double m, L, a, xt;
};

// Softmax cross-entropy with class probabilities p (a soft target of the logits' shape, which the engine's
// passes read), as PyTorch's F.cross_entropy with a probability target: per row, with
// v_j = w_j ((1 - eps) p_j + eps / K) (math::rows::soft_target_weight) and V their sum,
//   loss_r = sum_j v_j (lse - x_j) + z lse^2 = sum_j v_j (m - x_j) + (lse - m) V + z lse^2,
// two sums of terms that are never negative (for p >= 0), a term of v_j = 0 being 0 (also at x_j = -inf);
// "mean" divides by the number of rows. The gradient: (V + 2 z lse) softmax_j - v_j.
struct SoftTargets {
  const double* weight;  // K, or null
  double label_smoothing, z_loss;
  Reduction reduction;
};

// An engine's passes over the rows (C order over the logits' shape without its last axis).
class RowPasses {
 public:
  virtual ~RowPasses() = default;
  // st[r] per row. target: one per row (-1 or a class), or null (x_t = 0); weight: one per class or null
  // (all 1); smooth: whether a is wanted.
  virtual void stats(const std::int64_t* target, const double* weight, bool smooth, RowStats* st) = 0;
  // The gradient of each row, with p = softmax(row), a = coef[4r] + coef[4r+1] lse, alpha = coef[4r+2],
  // cw = coef[4r+3]: dx_j = a p_j - cw w_j - alpha [j == target[r]], the target's element computed as
  // alpha expm1(x_t - lse) + (a - alpha) p_t - cw w_t (no cancellation). A row with target -1 and all four
  // coefficients 0 is written as zeros. dx may be x itself (each row is read before it is written).
  virtual void grad(const std::int64_t* target, const double* weight, const double* coef) = 0;
  // x_t per row (0 where target is -1), the only read nll's forward needs.
  virtual void gather(const std::int64_t* target, double* xt) = 0;
  // dx: zeros but value[r] at each counted row's target (nll's gradient).
  virtual void scatter(const std::int64_t* target, const double* value) = 0;
  // With class probabilities (SoftTargets; rows of at least one class): per row st[r] with a = sum_j v_j
  // (m - x_j), and V[r] = sum_j v_j (math::rows::combine_soft_weights' order).
  virtual void prob_stats(const double* weight, double eps, RowStats* st, double* V) = 0;
  // Their gradient: dx_j = g[r] ((V + 2 z lse) p_j - v_j), p = softmax(row).
  virtual void prob_grad(const double* weight, double eps, double z, const double* g) = 0;
};

// The loss: the reduced value, or (none) one per row into per_row (0 for an ignored row). Sums over the
// rows are compensated (Neumaier) in row order: the same bits for any thread count or engine.
double cross_entropy(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, double* per_row);
// Its gradient with respect to x: grad is one value (mean, sum) or one per row (none). Ignored rows get
// zeros.
void cross_entropy_backward(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len,
                            const double* grad);
// nll_loss: -w_t x_t per counted row (x: log-probabilities) with cross_entropy's reductions (ce's
// label_smoothing and z_loss unused); its gradient is zero but at each counted row's target.
double nll(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, double* per_row);
void nll_backward(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, const double* grad);
// Class-probability targets: the loss (reduced, or per row), and its gradient (grad as cross_entropy's).
double cross_entropy_probs(RowPasses& rows, const SoftTargets& st, std::int64_t nrows, std::int64_t len,
                           double* per_row);
void cross_entropy_probs_backward(RowPasses& rows, const SoftTargets& st, std::int64_t nrows, std::int64_t len,
                                  const double* grad);
// logsumexp of each row into lse.
void logsumexp(RowPasses& rows, std::int64_t nrows, double* lse);

// A compensated (Neumaier) sum of n values in index order; an infinite sum stays one.
double fixed_sum(const double* v, std::int64_t n);

}  // namespace fastact::row_losses
