#include "losses.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "fastact/half.h"

#include "dispatch.h"
#include "fp_env.h"
#include "thread_pool.h"

namespace fastact::cpu {
namespace {

constexpr std::int64_t kGrain = 1 << 15;  // elements per thread below which splitting costs more than it saves

template <class S>
double to_double(S v) {
  if constexpr (std::is_same_v<S, half> || std::is_same_v<S, bfloat16>) return double(to_float(v));
  else return double(v);
}

// Splits the rows over the pool: f(lo, hi) for each task's run of rows, in any order (each row's values
// depend only on that row).
template <class F>
void for_rows(int ndim, const std::int64_t* shape, std::int64_t len, F f) {
  std::int64_t nrows = 1;
  for (int i = 0; i + 1 < ndim; ++i) nrows *= shape[i];
  if (nrows == 0) return;
  const std::int64_t work = nrows * std::max<std::int64_t>(len, 1);
  const int nt = int(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads(), work / kGrain)));
  const std::int64_t per = (nrows + nt - 1) / nt;
  auto task = [&](int t) {
    const std::int64_t lo = std::min(nrows, t * per), hi = std::min(nrows, lo + per);
    f(lo, hi);
  };
  if (nt == 1) task(0);
  else parallel_run(nt, task);
}

std::int64_t row_offset(std::int64_t r, int ndim, const std::int64_t* shape, const std::int64_t* strides) {
  std::int64_t off = 0;
  for (int i = ndim - 2; i >= 0; --i) {
    off += (r % shape[i]) * strides[i];
    r /= shape[i];
  }
  return off;
}

template <class S, class C>
void stats_typed(const LossKernel& k, int ndim, const std::int64_t* shape, Operand x, const std::int64_t* target,
                 const double* weight, double* lse, double* nll, double* smooth) {
  const std::int64_t len = shape[ndim - 1], sx = x.strides[ndim - 1];
  std::vector<C> w;
  double wsum = double(len);
  if (weight) {
    w.assign(weight, weight + len);
    wsum = 0;
    for (std::int64_t j = 0; j < len; ++j) wsum += weight[j];  // the same order as PyTorch's: plain, in double
  }
  const S* px = static_cast<const S*>(x.data);
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<S> buf(sx == 1 ? 0 : std::size_t(len));
    for (std::int64_t r = lo; r < hi; ++r) {
      const S* row = px + row_offset(r, ndim, shape, x.strides);
      if (sx != 1) {
        for (std::int64_t j = 0; j < len; ++j) buf[std::size_t(j)] = row[j * sx];
        row = buf.data();
      }
      double st[3];
      if (len == 0) {
        st[0] = -std::numeric_limits<double>::infinity(), st[1] = 0, st[2] = 0;
      } else {
        k.stats(row, std::size_t(len), weight ? w.data() : nullptr, smooth != nullptr, st);
      }
      const double m = st[0], L = st[1];
      lse[r] = m + L;
      // a row with +inf has no finite log-probability (PyTorch's log_softmax is NaN there): lse - x_t is NaN
      if (nll) nll[r] = target[r] < 0 ? 0.0 : m == std::numeric_limits<double>::infinity() ? m - m : (m - to_double(row[target[r]])) + L;
      if (smooth) smooth[r] = st[2] + L * wsum;
    }
  });
}

template <class S, class C>
void grad_typed(const LossKernel& k, int ndim, const std::int64_t* shape, Operand x, S* dx, const std::int64_t* ds,
                const std::int64_t* target, const double* weight, const double* coef) {
  const std::int64_t len = shape[ndim - 1], sx = x.strides[ndim - 1], sd = ds[ndim - 1];
  if (len == 0) return;
  std::vector<C> w(weight ? weight : static_cast<const double*>(nullptr), weight ? weight + len : nullptr);
  const S* px = static_cast<const S*>(x.data);
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<S> bx(sx == 1 ? 0 : std::size_t(len)), bd(sd == 1 ? 0 : std::size_t(len));
    for (std::int64_t r = lo; r < hi; ++r) {
      const S* row = px + row_offset(r, ndim, shape, x.strides);
      S* out = dx + row_offset(r, ndim, shape, ds);
      const double* c = coef + 4 * r;
      const std::int64_t t = target ? target[r] : -1;
      if (t < 0 && c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0) {  // an ignored row: zeros, whatever x holds
        for (std::int64_t j = 0; j < len; ++j) out[j * sd] = S{};
        continue;
      }
      if (sx != 1) {
        for (std::int64_t j = 0; j < len; ++j) bx[std::size_t(j)] = row[j * sx];
        row = bx.data();
      }
      S* o = sd == 1 ? out : bd.data();
      // x_t - lse needs lse, which the kernel computes: x_t is read here, before o (maybe x) is written
      const double xt = t >= 0 ? to_double(row[t]) : 0.0;
      double mL[2];
      k.grad(row, o, std::size_t(len), weight ? w.data() : nullptr, c, mL);
      // x_t - lse as (x_t - m) - L: L may be far below lse's last digit (a confident row's p_t - 1)
      if (t >= 0) k.target(o, t, weight ? w.data() : nullptr, c, (xt - mL[0]) - mL[1], mL[0] + mL[1]);
      if (sd != 1)
        for (std::int64_t j = 0; j < len; ++j) out[j * sd] = bd[std::size_t(j)];
    }
  });
}

}  // namespace

void run_loss_stats(int dtype, int ndim, const std::int64_t* shape, Operand x, const std::int64_t* target,
                    const double* weight, double* lse, double* nll, double* smooth) {
  if (ndim < 1) throw std::invalid_argument("run_loss_stats: at least one dimension");
  const FpEnvScope fp;
  const LossKernel& k = active_table().loss[dtype];
  switch (dtype) {
    case kF32: return stats_typed<float, float>(k, ndim, shape, x, target, weight, lse, nll, smooth);
    case kF64: return stats_typed<double, double>(k, ndim, shape, x, target, weight, lse, nll, smooth);
    case kF16: return stats_typed<half, float>(k, ndim, shape, x, target, weight, lse, nll, smooth);
    default: return stats_typed<bfloat16, float>(k, ndim, shape, x, target, weight, lse, nll, smooth);
  }
}

void run_loss_grad(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
                   const std::int64_t* target, const double* weight, const double* coef) {
  if (ndim < 1) throw std::invalid_argument("run_loss_grad: at least one dimension");
  const FpEnvScope fp;
  const LossKernel& k = active_table().loss[dtype];
  switch (dtype) {
    case kF32: return grad_typed<float, float>(k, ndim, shape, x, static_cast<float*>(dx), dx_strides, target, weight, coef);
    case kF64: return grad_typed<double, double>(k, ndim, shape, x, static_cast<double*>(dx), dx_strides, target, weight, coef);
    case kF16: return grad_typed<half, float>(k, ndim, shape, x, static_cast<half*>(dx), dx_strides, target, weight, coef);
    default: return grad_typed<bfloat16, float>(k, ndim, shape, x, static_cast<bfloat16*>(dx), dx_strides, target, weight, coef);
  }
}

double fixed_sum(const double* v, std::int64_t n) {
  double s = 0, c = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double t = s + v[i];
    c += std::fabs(s) >= std::fabs(v[i]) ? (s - t) + v[i] : (v[i] - t) + s;
    s = t;
  }
  return std::isfinite(s) ? s + c : s;  // an infinite sum stays one (its compensation is NaN)
}

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

std::int64_t rows_of(int ndim, const std::int64_t* shape) {
  std::int64_t n = 1;
  for (int i = 0; i + 1 < ndim; ++i) n *= shape[i];
  return n;
}

template <class S>
S from_double(double v) {
  if constexpr (std::is_same_v<S, half>) return to_half(round_to_odd(v));
  else if constexpr (std::is_same_v<S, bfloat16>) return to_bfloat16(round_to_odd(v));
  else return S(v);
}

// nll: x_t of each counted row (a gather: no kernel), into xt (0 where ignored).
template <class S>
void gather_targets(int ndim, const std::int64_t* shape, Operand x, const std::int64_t* target, double* xt) {
  const std::int64_t sx = x.strides[ndim - 1];
  const S* px = static_cast<const S*>(x.data);
  for_rows(ndim, shape, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r)
      xt[r] = target[r] < 0 ? 0.0 : to_double(px[row_offset(r, ndim, shape, x.strides) + target[r] * sx]);
  });
}

// nll's gradient: zeros but at each counted row's target, value[r] there.
template <class S>
void scatter_targets(int ndim, const std::int64_t* shape, S* dx, const std::int64_t* ds, const std::int64_t* target,
                     const double* value) {
  const std::int64_t len = shape[ndim - 1], sd = ds[ndim - 1];
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      S* out = dx + row_offset(r, ndim, shape, ds);
      for (std::int64_t j = 0; j < len; ++j) out[j * sd] = S{};
      if (target[r] >= 0) out[target[r] * sd] = from_double<S>(value[r]);
    }
  });
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

// Probability targets, row by row: v_j = w_j ((1 - eps) p_j + eps / K) in the compute type and V their sum
// (in double, in order), then the kernels' smoothing sum (forward: loss[r]) or gradient with v as the row's
// weights (backward: g[r] the row's grad_output factor, dx written).
template <class S, class C>
void prob_rows(const LossKernel& k, int ndim, const std::int64_t* shape, Operand x, const ProbTargets& pt, S* dx,
               const std::int64_t* ds, const double* g, double* loss) {
  const std::int64_t len = shape[ndim - 1], sx = x.strides[ndim - 1], sp = pt.p.strides[ndim - 1];
  const std::int64_t sd = dx ? ds[ndim - 1] : 1;
  if (len == 0) {  // an empty row: lse = -inf, no term
    if (loss)
      for (std::int64_t r = 0, n = rows_of(ndim, shape); r < n; ++r) loss[r] = 0.0;
    return;
  }
  const double eps = pt.label_smoothing, z = pt.z_loss, K = double(len);
  const S* px = static_cast<const S*>(x.data);
  const S* pp = static_cast<const S*>(pt.p.data);
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<C> v(static_cast<std::size_t>(len));
    std::vector<S> bx(sx == 1 ? 0 : std::size_t(len)), bd(dx && sd != 1 ? std::size_t(len) : 0);
    for (std::int64_t r = lo; r < hi; ++r) {
      const S* row = px + row_offset(r, ndim, shape, x.strides);
      const S* prow = pp + row_offset(r, ndim, shape, pt.p.strides);
      double V = 0, Vc = 0;  // Neumaier, in class order
      for (std::int64_t j = 0; j < len; ++j) {
        const double q = (1 - eps) * to_double(prow[j * sp]) + eps / K;
        const C vj = C(pt.weight ? pt.weight[j] * q : q);
        v[std::size_t(j)] = vj;
        const double t = V + double(vj);
        Vc += std::fabs(V) >= std::fabs(double(vj)) ? (V - t) + double(vj) : (double(vj) - t) + V;
        V = t;
      }
      V = std::isfinite(V) ? V + Vc : V;
      if (sx != 1) {
        for (std::int64_t j = 0; j < len; ++j) bx[std::size_t(j)] = row[j * sx];
        row = bx.data();
      }
      if (!dx) {
        double st[3];
        k.stats(row, std::size_t(len), v.data(), true, st);
        const double lse = st[0] + st[1];
        // a row with +inf has no finite log-probability: NaN, as the class-index form
        loss[r] = st[0] == std::numeric_limits<double>::infinity() ? st[0] - st[0]
                                                                   : st[2] + st[1] * V + (z > 0 ? z * lse * lse : 0.0);
        continue;
      }
      S* out = dx + row_offset(r, ndim, shape, ds);
      S* o = sd == 1 ? out : bd.data();
      const double c[4] = {g[r] * V, g[r] * (2 * z), 0.0, g[r]};
      double mL[2];
      k.grad(row, o, std::size_t(len), v.data(), c, mL);
      if (sd != 1)
        for (std::int64_t j = 0; j < len; ++j) out[j * sd] = bd[std::size_t(j)];
    }
  });
}

template <class F>
void by_dtype(int dtype, F f) {
  switch (dtype) {
    case kF32: return f(float{}, float{});
    case kF64: return f(double{}, double{});
    case kF16: return f(half{}, float{});
    default: return f(bfloat16{}, float{});
  }
}

}  // namespace

double run_cross_entropy_probs(int dtype, int ndim, const std::int64_t* shape, Operand x, const ProbTargets& pt,
                               double* per_row) {
  if (ndim < 1) throw std::invalid_argument("run_cross_entropy_probs: at least one dimension");
  const FpEnvScope fp;
  const std::int64_t nrows = rows_of(ndim, shape);
  std::vector<double> loss(static_cast<std::size_t>(nrows));
  const LossKernel& k = active_table().loss[dtype];
  by_dtype(dtype, [&](auto s, auto c) {
    prob_rows<decltype(s), decltype(c)>(k, ndim, shape, x, pt, nullptr, nullptr, nullptr, loss.data());
  });
  if (pt.reduction == Reduction::none) {
    std::copy(loss.begin(), loss.end(), per_row);
    return 0;
  }
  const double total = fixed_sum(loss.data(), nrows);
  return pt.reduction == Reduction::sum ? total : total / double(nrows);  // no rows: NaN, as PyTorch
}

void run_cross_entropy_probs_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                      const std::int64_t* dx_strides, const ProbTargets& pt, const double* grad) {
  if (ndim < 1) throw std::invalid_argument("run_cross_entropy_probs_backward: at least one dimension");
  const FpEnvScope fp;
  const std::int64_t nrows = rows_of(ndim, shape);
  std::vector<double> g(static_cast<std::size_t>(nrows));
  for (std::int64_t r = 0; r < nrows; ++r)
    g[std::size_t(r)] = pt.reduction == Reduction::none ? grad[r]
                        : pt.reduction == Reduction::mean ? grad[0] / double(nrows)
                                                          : grad[0];
  const LossKernel& k = active_table().loss[dtype];
  by_dtype(dtype, [&](auto s, auto c) {
    using S = decltype(s);
    prob_rows<S, decltype(c)>(k, ndim, shape, x, pt, static_cast<S*>(dx), dx_strides, g.data(), nullptr);
  });
}

float round_to_odd(double d) {
  float f = float(d);
  if (double(f) == d || d != d || std::isinf(f)) return f;
  if (std::fabs(double(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  b |= 1u;
  std::memcpy(&f, &b, 4);
  return f;
}

double run_nll(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce, double* per_row) {
  const FpEnvScope fp;
  const std::int64_t nrows = rows_of(ndim, shape), len = shape[ndim - 1];
  std::vector<double> v(static_cast<std::size_t>(nrows));
  switch (dtype) {
    case kF32: gather_targets<float>(ndim, shape, x, ce.target, v.data()); break;
    case kF64: gather_targets<double>(ndim, shape, x, ce.target, v.data()); break;
    case kF16: gather_targets<half>(ndim, shape, x, ce.target, v.data()); break;
    default: gather_targets<bfloat16>(ndim, shape, x, ce.target, v.data()); break;
  }
  const RowWeights rw = row_weights(ce, nrows, len);
  for (std::size_t r = 0; r < v.size(); ++r) v[r] = ce.target[r] < 0 ? 0.0 : -(rw.wt[r] * v[r]);
  return reduce_rows(v, nullptr, rw, ce.reduction, per_row);
}

void run_nll_backward(int dtype, int ndim, const std::int64_t* shape, void* dx, const std::int64_t* dx_strides,
                      const CrossEntropy& ce, const double* grad) {
  const FpEnvScope fp;
  const std::int64_t nrows = rows_of(ndim, shape), len = shape[ndim - 1];
  const RowWeights rw = row_weights(ce, nrows, len);
  std::vector<double> v(static_cast<std::size_t>(nrows));
  for (std::int64_t r = 0; r < nrows; ++r) {
    double g = ce.reduction == Reduction::none ? grad[r] : grad[0];
    if (ce.reduction == Reduction::mean) g /= rw.wt_sum;
    v[std::size_t(r)] = -(g * rw.wt[std::size_t(r)]);
  }
  switch (dtype) {
    case kF32: return scatter_targets(ndim, shape, static_cast<float*>(dx), dx_strides, ce.target, v.data());
    case kF64: return scatter_targets(ndim, shape, static_cast<double*>(dx), dx_strides, ce.target, v.data());
    case kF16: return scatter_targets(ndim, shape, static_cast<half*>(dx), dx_strides, ce.target, v.data());
    default: return scatter_targets(ndim, shape, static_cast<bfloat16*>(dx), dx_strides, ce.target, v.data());
  }
}

double run_cross_entropy(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce,
                         double* per_row) {
  const std::int64_t nrows = rows_of(ndim, shape), len = shape[ndim - 1];
  const double eps = ce.label_smoothing, z = ce.z_loss;
  std::vector<double> lse(static_cast<std::size_t>(nrows)), nll(static_cast<std::size_t>(nrows)), smooth(eps > 0 ? std::size_t(nrows) : 0);
  run_loss_stats(dtype, ndim, shape, x, ce.target, ce.weight, lse.data(), nll.data(), eps > 0 ? smooth.data() : nullptr);
  const RowWeights rw = row_weights(ce, nrows, len);
  std::vector<double> zpart(z > 0 ? std::size_t(nrows) : 0);
  for (std::int64_t r = 0; r < nrows; ++r) {  // nll becomes the row's loss without its z term
    const std::size_t i = std::size_t(r);
    const bool counted = ce.target[r] >= 0;
    double v = (1 - eps) * rw.wt[i] * nll[i];
    if (eps > 0) v += counted ? eps / rw.K * smooth[i] : 0.0;
    nll[i] = v;
    if (z > 0) zpart[i] = counted ? z * lse[i] * lse[i] : 0.0;
  }
  return reduce_rows(nll, z > 0 ? &zpart : nullptr, rw, ce.reduction, per_row);
}

void run_cross_entropy_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                const std::int64_t* dx_strides, const CrossEntropy& ce, const double* grad) {
  const std::int64_t nrows = rows_of(ndim, shape), len = shape[ndim - 1];
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
  run_loss_grad(dtype, ndim, shape, x, dx, dx_strides, ce.target, ce.weight, coef.data());
}

}  // namespace fastact::cpu
