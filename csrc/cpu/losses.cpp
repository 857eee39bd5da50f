#include "losses.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "fastact/half.h"

#include "../math/rows.h"
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
                 const double* weight, bool smooth, row_losses::RowStats* out) {
  const std::int64_t len = shape[ndim - 1], sx = x.strides[ndim - 1];
  std::vector<C> w(weight ? weight : static_cast<const double*>(nullptr), weight ? weight + len : nullptr);
  const S* px = static_cast<const S*>(x.data);
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<S> buf(sx == 1 ? 0 : std::size_t(len));
    for (std::int64_t r = lo; r < hi; ++r) {
      const S* row = px + row_offset(r, ndim, shape, x.strides);
      const double xt = target && target[r] >= 0 ? to_double(row[target[r] * sx]) : 0.0;
      if (sx != 1) {
        for (std::int64_t j = 0; j < len; ++j) buf[std::size_t(j)] = row[j * sx];
        row = buf.data();
      }
      double st[3] = {-std::numeric_limits<double>::infinity(), 0, 0};
      if (len > 0) k.stats(row, std::size_t(len), weight ? w.data() : nullptr, smooth, st);
      out[r] = {st[0], st[1], st[2], xt};
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

namespace {

std::int64_t rows_of(int ndim, const std::int64_t* shape) {
  std::int64_t n = 1;
  for (int i = 0; i + 1 < ndim; ++i) n *= shape[i];
  return n;
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

// Probability targets p, row by row: v_j (math::rows::soft_target_weight) into a compute-type buffer and V
// their sum in its fixed order, then the kernels' smoothing sum with v as the row's weights (the forward: st
// and V per row) or their gradient (the backward: g[r] the row's grad_output factor, dx written).
template <class S, class C>
void prob_rows(const LossKernel& k, int ndim, const std::int64_t* shape, Operand x, Operand p, const double* weight,
               double eps, double z, S* dx, const std::int64_t* ds, const double* g, row_losses::RowStats* st_out,
               double* V_out) {
  const std::int64_t len = shape[ndim - 1], sx = x.strides[ndim - 1], sp = p.strides[ndim - 1];
  const std::int64_t sd = dx ? ds[ndim - 1] : 1;
  const double K = double(len);
  const S* px = static_cast<const S*>(x.data);
  const S* pp = static_cast<const S*>(p.data);
  for_rows(ndim, shape, len, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<C> v(static_cast<std::size_t>(len));
    std::vector<S> bx(sx == 1 ? 0 : std::size_t(len)), bd(dx && sd != 1 ? std::size_t(len) : 0);
    for (std::int64_t r = lo; r < hi; ++r) {
      const S* row = px + row_offset(r, ndim, shape, x.strides);
      const S* prow = pp + row_offset(r, ndim, shape, p.strides);
      math::rows::Neumaier lanes[math::rows::kLanes];
      for (std::int64_t j = 0; j < len; ++j) {
        const C vj = math::rows::soft_target_weight<C>(to_double(prow[j * sp]), eps, K, weight ? weight[j] : 1.0);
        v[std::size_t(j)] = vj;
        lanes[j % math::rows::kLanes].add(double(vj));
      }
      const double V = math::rows::combine_soft_weights([&](int j) { return lanes[j].value(); });
      if (sx != 1) {
        for (std::int64_t j = 0; j < len; ++j) bx[std::size_t(j)] = row[j * sx];
        row = bx.data();
      }
      if (!dx) {
        double st[3];
        k.stats(row, std::size_t(len), v.data(), true, st);
        st_out[r] = {st[0], st[1], st[2], 0.0};
        V_out[r] = V;
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

// The CPU's row passes (row_losses::RowPasses) over x, writing dx (with dx_strides) for the gradients.
class CpuRows final : public row_losses::RowPasses {
 public:
  CpuRows(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
          Operand p = {nullptr, nullptr})
      : dtype_(dtype), ndim_(ndim), shape_(shape), x_(x), p_(p), dx_(dx), ds_(dx_strides) {
    if (ndim < 1) throw std::invalid_argument("the row losses: at least one dimension");
  }
  void stats(const std::int64_t* target, const double* weight, bool smooth, row_losses::RowStats* st) override {
    const FpEnvScope fp;
    const LossKernel& k = active_table().loss[dtype_];
    by_dtype(dtype_, [&](auto s, auto c) {
      stats_typed<decltype(s), decltype(c)>(k, ndim_, shape_, x_, target, weight, smooth, st);
    });
  }
  void grad(const std::int64_t* target, const double* weight, const double* coef) override {
    run_loss_grad(dtype_, ndim_, shape_, x_, dx_, ds_, target, weight, coef);
  }
  void gather(const std::int64_t* target, double* xt) override {
    by_dtype(dtype_, [&](auto s, auto) { gather_targets<decltype(s)>(ndim_, shape_, x_, target, xt); });
  }
  void prob_stats(const double* weight, double eps, row_losses::RowStats* st, double* V) override {
    const FpEnvScope fp;
    const LossKernel& k = active_table().loss[dtype_];
    by_dtype(dtype_, [&](auto s, auto c) {
      using S = decltype(s);
      prob_rows<S, decltype(c)>(k, ndim_, shape_, x_, p_, weight, eps, 0.0, nullptr, nullptr, nullptr, st, V);
    });
  }
  void prob_grad(const double* weight, double eps, double z, const double* g) override {
    const FpEnvScope fp;
    const LossKernel& k = active_table().loss[dtype_];
    by_dtype(dtype_, [&](auto s, auto c) {
      using S = decltype(s);
      prob_rows<S, decltype(c)>(k, ndim_, shape_, x_, p_, weight, eps, z, static_cast<S*>(dx_), ds_, g, nullptr, nullptr);
    });
  }
  void scatter(const std::int64_t* target, const double* value) override {
    const FpEnvScope fp;
    by_dtype(dtype_, [&](auto s, auto) {
      using S = decltype(s);
      scatter_targets<S>(ndim_, shape_, static_cast<S*>(dx_), ds_, target, value);
    });
  }

 private:
  int dtype_, ndim_;
  const std::int64_t* shape_;
  Operand x_, p_;
  void* dx_;
  const std::int64_t* ds_;
};

}  // namespace

double run_cross_entropy_probs(int dtype, int ndim, const std::int64_t* shape, Operand x, const ProbTargets& pt,
                               double* per_row) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, nullptr, nullptr, pt.p);
  return row_losses::cross_entropy_probs(rows, {pt.weight, pt.label_smoothing, pt.z_loss, pt.reduction},
                                         rows_of(ndim, shape), shape[ndim - 1], per_row);
}

void run_cross_entropy_probs_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                      const std::int64_t* dx_strides, const ProbTargets& pt, const double* grad) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, dx, dx_strides, pt.p);
  row_losses::cross_entropy_probs_backward(rows, {pt.weight, pt.label_smoothing, pt.z_loss, pt.reduction},
                                           rows_of(ndim, shape), shape[ndim - 1], grad);
}

void run_nll_backward(int dtype, int ndim, const std::int64_t* shape, void* dx, const std::int64_t* dx_strides,
                      const CrossEntropy& ce, const double* grad) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, {nullptr, nullptr}, dx, dx_strides);
  row_losses::nll_backward(rows, ce, rows_of(ndim, shape), shape[ndim - 1], grad);
}

double run_nll(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce, double* per_row) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, nullptr, nullptr);
  return row_losses::nll(rows, ce, rows_of(ndim, shape), shape[ndim - 1], per_row);
}

double run_cross_entropy(int dtype, int ndim, const std::int64_t* shape, Operand x, const CrossEntropy& ce,
                         double* per_row) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, nullptr, nullptr);
  return row_losses::cross_entropy(rows, ce, rows_of(ndim, shape), shape[ndim - 1], per_row);
}

void run_cross_entropy_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                                const std::int64_t* dx_strides, const CrossEntropy& ce, const double* grad) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, dx, dx_strides);
  row_losses::cross_entropy_backward(rows, ce, rows_of(ndim, shape), shape[ndim - 1], grad);
}

void run_logsumexp(int dtype, int ndim, const std::int64_t* shape, Operand x, double* lse) {
  const FpEnvScope fp;
  CpuRows rows(dtype, ndim, shape, x, nullptr, nullptr);
  row_losses::logsumexp(rows, rows_of(ndim, shape), lse);
}

}  // namespace fastact::cpu
