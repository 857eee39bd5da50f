#include "row_losses.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "math/rows.h"

namespace fastact::row_losses {
namespace {

struct RowWeights {
  std::vector<double> wt;  // the target's weight per row, 0 where ignored
  double wt_sum = 0, counted = 0, W = 0, K = 0;
};

RowWeights row_weights(const CrossEntropy& ce, std::int64_t nrows, std::int64_t len) {
  RowWeights r;
  r.wt.resize(std::size_t(nrows));
  for (std::int64_t i = 0; i < nrows; ++i) {
    const std::int64_t t = ce.target[i];
    r.wt[std::size_t(i)] = t < 0 ? 0.0 : ce.weight ? ce.weight[t] : 1.0;
    r.counted += t >= 0;
  }
  r.wt_sum = fixed_sum(r.wt.data(), nrows);
  r.K = double(len);
  r.W = ce.weight ? fixed_sum(ce.weight, len) : r.K;
  return r;
}

// The reduction of the rows' losses main (and z terms, or null): none into per_row, else sum or mean.
double reduce_rows(const std::vector<double>& main, const std::vector<double>* zpart, const RowWeights& rw,
                   Reduction reduction, double* per_row) {
  const std::int64_t n = std::int64_t(main.size());
  if (reduction == Reduction::none) {
    for (std::int64_t r = 0; r < n; ++r) per_row[r] = main[std::size_t(r)] + (zpart ? (*zpart)[std::size_t(r)] : 0.0);
    return 0;
  }
  const double m = fixed_sum(main.data(), n), zsum = zpart ? fixed_sum(zpart->data(), n) : 0.0;
  if (reduction == Reduction::sum) return m + zsum;
  return m / rw.wt_sum + (zpart ? zsum / rw.counted : 0.0);  // no counted row: 0 / 0, NaN (as PyTorch)
}

}  // namespace

double fixed_sum(const double* v, std::int64_t n) {
  math::rows::Neumaier sum;
  for (std::int64_t i = 0; i < n; ++i) sum.add(v[i]);
  return sum.value();
}

double cross_entropy_probs(RowPasses& rows, const SoftTargets& st, std::int64_t nrows, std::int64_t len,
                           double* per_row) {
  std::vector<RowStats> s(static_cast<std::size_t>(nrows));
  std::vector<double> V(static_cast<std::size_t>(nrows)), loss(static_cast<std::size_t>(nrows));
  if (len > 0) rows.prob_stats(st.weight, st.label_smoothing, s.data(), V.data());
  const double z = st.z_loss;
  for (std::size_t r = 0; r < loss.size(); ++r) {  // an empty row: no term
    const double lse = s[r].m + s[r].L;
    // a row with +inf has no finite log-probability: NaN, as the class-index form
    loss[r] = len == 0 ? 0.0 : s[r].m == std::numeric_limits<double>::infinity() ? s[r].m - s[r].m
                                                                                 : s[r].a + s[r].L * V[r] + (z > 0 ? z * lse * lse : 0.0);
  }
  if (st.reduction == Reduction::none) {
    std::copy(loss.begin(), loss.end(), per_row);
    return 0;
  }
  const double total = fixed_sum(loss.data(), nrows);
  return st.reduction == Reduction::sum ? total : total / double(nrows);  // no rows: NaN, as PyTorch
}

void cross_entropy_probs_backward(RowPasses& rows, const SoftTargets& st, std::int64_t nrows, std::int64_t len,
                                  const double* grad) {
  if (len == 0) return;
  std::vector<double> g(static_cast<std::size_t>(nrows));
  for (std::int64_t r = 0; r < nrows; ++r)
    g[std::size_t(r)] = st.reduction == Reduction::none ? grad[r]
                        : st.reduction == Reduction::mean ? grad[0] / double(nrows)
                                                          : grad[0];
  rows.prob_grad(st.weight, st.label_smoothing, st.z_loss, g.data());
}

void logsumexp(RowPasses& rows, std::int64_t nrows, double* lse) {
  std::vector<RowStats> st(static_cast<std::size_t>(nrows));
  rows.stats(nullptr, nullptr, false, st.data());
  for (std::int64_t r = 0; r < nrows; ++r) lse[r] = st[std::size_t(r)].m + st[std::size_t(r)].L;
}

double cross_entropy(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, double* per_row) {
  const double eps = ce.label_smoothing, z = ce.z_loss;
  std::vector<RowStats> st(static_cast<std::size_t>(nrows));
  rows.stats(ce.target, ce.weight, eps > 0, st.data());
  double wsum = double(len);  // the smoothing sum's sum_j w_j L term; PyTorch's order: plain, in double
  if (ce.weight) {
    wsum = 0;
    for (std::int64_t j = 0; j < len; ++j) wsum += ce.weight[j];
  }
  const RowWeights rw = row_weights(ce, nrows, len);
  std::vector<double> loss(static_cast<std::size_t>(nrows)), zpart(z > 0 ? std::size_t(nrows) : 0);
  for (std::int64_t r = 0; r < nrows; ++r) {  // the row's loss without its z term, and the z term
    const std::size_t i = std::size_t(r);
    const RowStats& s = st[i];
    const bool counted = ce.target[r] >= 0;
    // a row with +inf has no finite log-probability (PyTorch's log_softmax is NaN there): lse - x_t is NaN
    const double nll = !counted ? 0.0 : s.m == std::numeric_limits<double>::infinity() ? s.m - s.m : (s.m - s.xt) + s.L;
    double v = (1 - eps) * rw.wt[i] * nll;
    if (eps > 0) v += counted ? eps / rw.K * (s.a + s.L * wsum) : 0.0;
    loss[i] = v;
    if (z > 0) {
      const double lse = s.m + s.L;
      zpart[i] = counted ? z * lse * lse : 0.0;
    }
  }
  return reduce_rows(loss, z > 0 ? &zpart : nullptr, rw, ce.reduction, per_row);
}

void cross_entropy_backward(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len,
                            const double* grad) {
  const double eps = ce.label_smoothing, z = ce.z_loss;
  const RowWeights rw = row_weights(ce, nrows, len);
  std::vector<double> coef(std::size_t(4 * nrows), 0.0);
  for (std::int64_t r = 0; r < nrows; ++r) {
    if (ce.target[r] < 0) continue;
    double g_nll = ce.reduction == Reduction::none ? grad[r] : grad[0], g_z = g_nll;
    if (ce.reduction == Reduction::mean) g_nll /= rw.wt_sum, g_z /= rw.counted;
    const double wt = rw.wt[std::size_t(r)];
    double* c = coef.data() + 4 * r;
    c[0] = g_nll * ((1 - eps) * wt + eps / rw.K * rw.W);  // a = c[0] + c[1] lse: the softmax's factor
    c[1] = g_z * (2 * z);
    c[2] = g_nll * (1 - eps) * wt;                        // the target's one-hot
    c[3] = g_nll * (eps / rw.K);                           // the smoothing's w_j
  }
  rows.grad(ce.target, ce.weight, coef.data());
}

double nll(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, double* per_row) {
  std::vector<double> v(static_cast<std::size_t>(nrows));
  rows.gather(ce.target, v.data());
  const RowWeights rw = row_weights(ce, nrows, len);
  for (std::size_t r = 0; r < v.size(); ++r) v[r] = ce.target[r] < 0 ? 0.0 : -(rw.wt[r] * v[r]);
  return reduce_rows(v, nullptr, rw, ce.reduction, per_row);
}

void nll_backward(RowPasses& rows, const CrossEntropy& ce, std::int64_t nrows, std::int64_t len, const double* grad) {
  const RowWeights rw = row_weights(ce, nrows, len);
  std::vector<double> v(static_cast<std::size_t>(nrows));
  for (std::int64_t r = 0; r < nrows; ++r) {
    double g = ce.reduction == Reduction::none ? grad[r] : grad[0];
    if (ce.reduction == Reduction::mean) g /= rw.wt_sum;
    v[std::size_t(r)] = -(g * rw.wt[std::size_t(r)]);
  }
  rows.scatter(ce.target, v.data());
}

}  // namespace fastact::row_losses
