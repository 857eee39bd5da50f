// The CUDA emulation (test_cuda_emulation.h) of the row kernels: the softmax family.
#include "test_cuda_emulation.h"

#include <cmath>

#include "cpu/losses.h"
#include "row_losses.h"

namespace {

// ------------------------------------------------------------------------------ rows
// The kernel shells' sequences (kernels.cu), with the 32 lanes of a warp run one after the other where
// the GPU runs them at once, and the warp shuffles read from arrays. First one warp per row:
template <class S, class Op>
void emulate_warp_rows(const cuda::RowWalk& w, int dir, const S* a, const S* b, S* o, Grid g) {
  using B = cuda::RowBody<S, Op>;
  using C = typename B::C;
  for (i64 blk = 0; blk < g.blocks; ++blk) {
    for (int first = 0; first < g.threads; first += cuda::kWarp) {
      const Coord c0{blk, g.blocks, first, g.threads};
      for (i64 r = B::warp(c0); r < w.nrows; r += B::warps(c0)) {
        const typename B::Row row = B::row(w, r, a, b, o);
        C v[cuda::kWarp];
        C m = C(0);
        if (dir == 0) {
          for (int l = 0; l < cuda::kWarp; ++l) v[l] = B::lane_max(row, l, 0, row.len);
          m = math::rows::combine_max<C>([&](int j) { return v[j]; });
        }
        math::rows::PartialSums<C> sums;  // kernels.cu chunked_sum keeps lane ch % 32's share in that lane
        for (i64 ch = 0; ch < B::chunks(row.len); ++ch) {
          for (int l = 0; l < cuda::kWarp; ++l) {
            const auto k = dir == 0 ? B::lane_sum(row, l, m, ch) : B::lane_backward_sum(row, l, ch);
            v[l] = (k.s - k.c).v;
          }
          sums.add(math::rows::combine_sum<C>([&](int j) { return v[j]; }));
        }
        const C s = sums.total();
        for (int l = 0; l < cuda::kWarp; ++l)
          for (i64 i = l; i < row.len; i += cuda::kWarp) {
            if (dir == 0) B::write(row, i, m, B::finish(s));
            else B::backward_write(row, i, s);
          }
      }
    }
  }
}

// Then split rows: a warp per (row, chunk) task, then a warp per row, through the workspace. Tasks are
// independent, so which warp of the grid takes which one does not change the bits.
template <class S, class Op>
void emulate_split_rows(const cuda::RowWalk& w, int dir, const S* a, const S* b, S* o) {
  using B = cuda::RowBody<S, Op>;
  using C = typename B::C;
  using WS = cuda::RowWorkspace<C>;
  const i64 nch = B::chunks(w.len);
  std::vector<C> buf(std::size_t(WS::elements(w)));
  const WS ws = WS::at(buf.data(), w);
  C v[cuda::kWarp];
  const auto chunk_row = [&](i64 t, S* out) {
    const cuda::SplitTask k = cuda::split_task(t, nch);
    return std::pair{k, B::row(w, k.row, a, b, out)};
  };
  if (dir == 0) {
    for (i64 t = 0; t < w.nrows * nch; ++t) {
      const auto [k, row] = chunk_row(t, nullptr);
      const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
      for (int l = 0; l < cuda::kWarp; ++l) v[l] = B::lane_max(row, l, begin, end);
      ws.chunk_max[t] = math::rows::combine_max<C>([&](int j) { return v[j]; });
    }
    for (i64 r = 0; r < w.nrows; ++r) {
      for (int l = 0; l < cuda::kWarp; ++l) {
        simd::Scalar<C> acc(-B::inf());
        for (i64 j = l; j < nch; j += cuda::kWarp) acc = math::rows::max_nan(acc, simd::Scalar<C>(ws.chunk_max[r * nch + j]));
        v[l] = acc.v;
      }
      ws.row_max[r] = math::rows::combine_max<C>([&](int j) { return v[j]; });
    }
  }
  for (i64 t = 0; t < w.nrows * nch; ++t) {
    const auto [k, row] = chunk_row(t, nullptr);
    for (int l = 0; l < cuda::kWarp; ++l) {
      const auto acc = dir == 0 ? B::lane_sum(row, l, ws.row_max[k.row], k.chunk) : B::lane_backward_sum(row, l, k.chunk);
      v[l] = (acc.s - acc.c).v;
    }
    ws.chunk_sum[t] = math::rows::combine_sum<C>([&](int j) { return v[j]; });
  }
  for (i64 r = 0; r < w.nrows; ++r) {
    for (int l = 0; l < cuda::kWarp; ++l) {
      math::rows::Kahan<simd::Scalar<C>> mine;
      for (i64 j = l; j < nch; j += cuda::kWarp) mine.add(simd::Scalar<C>(ws.chunk_sum[r * nch + j]));
      v[l] = (mine.s - mine.c).v;
    }
    ws.row_sum[r] = nch == 1 ? ws.chunk_sum[r * nch] : math::rows::combine_sum<C>([&](int j) { return v[j]; });
  }
  for (i64 t = 0; t < w.nrows * nch; ++t) {
    const auto [k, row] = chunk_row(t, o);
    const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
    for (i64 i = begin; i < end; ++i) {
      if (dir == 0) B::write(row, i, ws.row_max[k.row], B::finish(ws.row_sum[k.row]));
      else B::backward_write(row, i, ws.row_sum[k.row]);
    }
  }
}

template <class S, class Op>
void check_rows(int op_id) {
  const std::string name = std::string(cpu::row_ops().at(op_id).name) + " dtype " + std::to_string(dtype_of<S>());
  for (int dir = 0; dir < 2; ++dir) {
    const cpu::RowKernel k = ref().row[op_id][dir][dtype_of<S>()];
    for (i64 len : kRowLens) {
      for (i64 nrows : {1, 3, 17}) {
        for (int axis : {1, 0}) {  // rows contiguous (last axis), then strided (first axis)
          for (int sm : kRowSmCounts) {
            const i64 shape[2] = {axis == 1 ? nrows : len, axis == 1 ? len : nrows};
            const i64 st[2] = {shape[1], 1};
            const std::size_t n = std::size_t(nrows * len);
            auto a = inputs<S>(n, unsigned(len * 31 + nrows));
            if constexpr (sizeof(S) != 2) {  // keep most rows finite: softmax of garbage is mostly NaN
              for (std::size_t i = 0; i < n; ++i)
                if (i % 7 != 0) a[i] = S(std::fmod(double(i) * 0.7548, 23.0) - 11.0);
            }
            auto b = inputs<S>(n, unsigned(len * 31 + nrows + 1));
            if (dir == 1) cpu::run_rows(ref().row[op_id][0][dtype_of<S>()], int(sizeof(S)), 2, shape, axis, b.data(), st,
                                        {a.data(), st}, {nullptr, st});  // y: a real forward output
            std::vector<S> want(n), got(n);
            cpu::run_rows(k, int(sizeof(S)), 2, shape, axis, want.data(), st, {a.data(), st}, {dir ? b.data() : nullptr, st});
            const cuda::RowWalk w = cuda::plan_rows(2, shape, axis, st, st, dir ? st : nullptr);
            const std::string what = name + " dir " + std::to_string(dir) + " len " + std::to_string(len) + " rows " +
                                     std::to_string(nrows) + " axis " + std::to_string(axis);
            emulate_warp_rows<S, Op>(w, dir, a.data(), dir ? b.data() : nullptr, got.data(), cuda::row_grid(w.nrows, sm));
            ASSERT_TRUE(same_bits(got.data(), want.data(), n, what + " (a warp per row)"));
            if (sm != 1) continue;  // the split path does not depend on the grid
            std::fill(got.begin(), got.end(), S{});
            emulate_split_rows<S, Op>(w, dir, a.data(), dir ? b.data() : nullptr, got.data());
            ASSERT_TRUE(same_bits(got.data(), want.data(), n, what + " (split rows)"));
            if (dir == 0) {  // in place, both paths
              auto c = a;
              emulate_warp_rows<S, Op>(w, dir, c.data(), nullptr, c.data(), cuda::row_grid(w.nrows, sm));
              ASSERT_TRUE(same_bits(c.data(), want.data(), n, what + " in place (a warp per row)"));
              emulate_split_rows<S, Op>(w, dir, a.data(), nullptr, a.data());
              ASSERT_TRUE(same_bits(a.data(), want.data(), n, what + " in place (split rows)"));
            }
          }
        }
      }
    }
  }
}

template <class Op>
void check_row_op(int id) {
  check_rows<float, Op>(id);
  check_rows<double, Op>(id);
  check_rows<half, Op>(id);
  check_rows<bfloat16, Op>(id);
}

TEST(CudaEmulation, RowsMatchCpuScalar) {
#define FASTACT_CHECK_ROW(name, Op, ...) check_row_op<ops::Op>(int(RowOp::name));
  FASTACT_ROW_OPS(FASTACT_CHECK_ROW)
#undef FASTACT_CHECK_ROW
}

// ------------------------------------------------------------------------------ row losses
// kernels.cu's loss kernels (GpuRows, LossRows), the lanes of a warp one after the other: the row passes
// row_losses.h runs the losses through, so that a whole loss is compared with the CPU engine's.
template <class S>
class EmulatedRows final : public row_losses::RowPasses {
  using B = cuda::LossRowBody<S>;
  using C = typename B::C;

 public:
  EmulatedRows(const cuda::RowWalk& w, const S* x, S* dx, const S* p = nullptr) : w_(w), x_(x), p_(p), dx_(dx) {}
  void stats(const std::int64_t* target, const double* weight, bool smooth, row_losses::RowStats* st) override {
    const std::vector<C> wc = weights(weight);
    for (i64 r = 0; r < w_.nrows; ++r) {
      if (w_.len == 0) {
        st[r] = {-HUGE_VAL, 0.0, 0.0, 0.0};
        continue;
      }
      const typename B::Row row = B::Rows::row(w_, r, x_, nullptr, nullptr);
      const double xt = B::target_value(row, target ? target[r] : -1);
      C m, L, a;
      row_stats(row, [&](i64 i) { return wc[std::size_t(i)]; }, smooth, weight != nullptr, m, L, a);
      st[r] = {double(m), double(L), double(a), xt};
    }
  }
  void grad(const std::int64_t* target, const double* weight, const double* coef) override {
    if (w_.len == 0) return;
    const std::vector<C> wc = weights(weight);
    const C* w = weight ? wc.data() : nullptr;
    for (i64 r = 0; r < w_.nrows; ++r) {
      const typename B::Row row = B::Rows::row(w_, r, x_, nullptr, dx_);
      const i64 t = target ? target[r] : -1;
      const double* k = coef + 4 * r;
      if (B::zero_row(t, k)) {
        for (i64 i = 0; i < row.len; ++i) row.o[i * row.so] = S{};
        continue;
      }
      const double xt = B::target_value(row, t);
      C m, L, a;
      row_stats(row, [](i64) { return C(1); }, false, false, m, L, a);
      const double lse = double(m) + double(L);
      const C va = C(k[0] + k[1] * lse), cw = C(k[3]);
      for (int l = 0; l < cuda::kWarp; ++l)
        for (i64 i = l; i < row.len; i += cuda::kWarp)
          B::grad_write(row, i, m, L, va, w ? typename B::V(cw) * typename B::V(w[i]) : typename B::V(cw));
      if (t >= 0) B::target_write(row, t, m, L, xt, k, w);
    }
  }
  // kernels.cu prob_stats_kernel and prob_grad_kernel.
  void prob_stats(const double* weight, double eps, row_losses::RowStats* st, double* V) override {
    for (i64 r = 0; r < w_.nrows; ++r) {
      const typename B::Row row = B::Rows::row(w_, r, x_, p_, nullptr);
      C m, L, a;
      const double K = double(w_.len);
      row_stats(row, [&](i64 i) { return B::soft_weight(row, i, eps, K, weight); }, true, true, m, L, a);
      st[r] = {double(m), double(L), double(a), 0.0};
      V[r] = soft_sum(row, eps, weight);
    }
  }
  void prob_grad(const double* weight, double eps, double z, const double* g) override {
    for (i64 r = 0; r < w_.nrows; ++r) {
      const typename B::Row row = B::Rows::row(w_, r, x_, p_, dx_);
      const double v = soft_sum(row, eps, weight), K = double(w_.len);
      C m, L, a;
      row_stats(row, [](i64) { return C(1); }, false, false, m, L, a);
      const double lse = double(m) + double(L), c0 = g[r] * v, c1 = g[r] * (2 * z);
      const C va = C(c0 + c1 * lse), cw = C(g[r]);
      for (int l = 0; l < cuda::kWarp; ++l)
        for (i64 i = l; i < row.len; i += cuda::kWarp)
          B::grad_write(row, i, m, L, va, typename B::V(cw) * typename B::V(B::soft_weight(row, i, eps, K, weight)));
    }
  }
  void gather(const std::int64_t* target, double* xt) override {
    for (i64 r = 0; r < w_.nrows; ++r) xt[r] = B::target_value(B::Rows::row(w_, r, x_, nullptr, nullptr), target[r]);
  }
  void scatter(const std::int64_t* target, const double* value) override {
    for (i64 r = 0; r < w_.nrows; ++r) {
      const typename B::Row row = B::Rows::row(w_, r, dx_, nullptr, dx_);
      for (i64 i = 0; i < row.len; ++i) row.o[i * row.so] = S{};
      if (target[r] >= 0) row.o[target[r] * row.so] = from_double<S>(value[r]);
    }
  }

 private:
  // kernels.cu LossRows::stats: the warp's max, then its lanes' sums, combined.
  template <class W>
  void row_stats(const typename B::Row& row, W w, bool smooth, bool weighted, C& m, C& L, C& a) const {
    C v[cuda::kWarp];
    for (int l = 0; l < cuda::kWarp; ++l) v[l] = B::Rows::lane_max(row, l, 0, row.len);
    m = math::rows::combine_max<C>([&](int j) { return v[j]; });
    a = C(0);
    if (!(m - m == C(0))) {
      L = B::log_sum(m, C(0), C(0));
      if (smooth) a = m - m;
      return;
    }
    std::vector<typename B::Lane> lanes;
    for (int l = 0; l < cuda::kWarp; ++l) lanes.push_back(B::lane_sums(row, l, m, smooth, weighted, w));
    const C s = math::rows::combine_sum<C>([&](int j) { return (lanes[std::size_t(j)].sum.s - lanes[std::size_t(j)].sum.c).v; });
    const C count = B::combine_count([&](int j) { return lanes[std::size_t(j)].count; });
    if (smooth)
      a = math::rows::combine_sum<C, true>(
          [&](int j) { return (lanes[std::size_t(j)].smooth.s - lanes[std::size_t(j)].smooth.c).v; });
    L = B::log_sum(m, count, s);
  }
  double soft_sum(const typename B::Row& row, double eps, const double* weight) const {
    double lanes[cuda::kWarp];
    for (int l = 0; l < cuda::kWarp; ++l) lanes[l] = B::lane_soft_sum(row, l, eps, weight);
    return math::rows::combine_soft_weights([&](int j) { return lanes[j]; });
  }
  std::vector<C> weights(const double* weight) const {
    std::vector<C> wc;
    if (weight) wc.assign(weight, weight + w_.len);
    return wc;
  }
  cuda::RowWalk w_;
  const S *x_, *p_;
  S* dx_;
};

// Against the CPU engine (cpu/losses.h): cross-entropy (every reduction, weights, label smoothing, z_loss,
// ignored rows), nll and logsumexp, forward and backward (in place too), contiguous and strided rows, rows
// shorter and longer than a warp, with +-inf, NaN and confident rows -- bit for bit.
template <class S>
void check_row_losses() {
  using C = typename cuda::ElemIo<S>::C;
  const int dtype = dtype_of<S>();
  for (i64 len : {1, 5, 31, 32, 33, 100, 1000, 4097}) {
    for (int axis : {1, 0}) {  // classes along the last axis, then along the first (strided rows)
      const i64 nrows = 9;
      const i64 shape[2] = {axis == 1 ? nrows : len, axis == 1 ? len : nrows};
      const i64 st[2] = {shape[1], 1};
      const i64 rshape[2] = {nrows, len}, rst[2] = {axis == 1 ? st[0] : st[1], axis == 1 ? st[1] : st[0]};
      const std::size_t n = std::size_t(nrows * len);
      std::mt19937 rng(unsigned(len * 3 + axis));
      std::vector<S> x(n);
      for (std::size_t i = 0; i < n; ++i)
        x[i] = cuda::ElemIo<S>::store(C(std::uniform_real_distribution<double>(-12, 12)(rng)));
      std::vector<std::int64_t> target(static_cast<std::size_t>(nrows));
      for (i64 r = 0; r < nrows; ++r) target[std::size_t(r)] = r % 4 == 3 ? -1 : i64(rng() % std::uint64_t(len));
      const auto at = [&](i64 r, i64 j) -> S& { return x[std::size_t(r * rst[0] + j * rst[1])]; };
      at(1, target[1]) = cuda::ElemIo<S>::store(C(60));        // confident: lse - x_t is tiny
      at(2, len - 1) = cuda::ElemIo<S>::store(C(-INFINITY));  // a -inf logit
      at(4, 0) = cuda::ElemIo<S>::store(C(NAN));
      at(5, len / 2) = cuda::ElemIo<S>::store(C(INFINITY));
      std::vector<double> weight(static_cast<std::size_t>(len));
      for (auto& v : weight) v = rng() % 5 == 0 ? 0.0 : 0.25 + double(rng() % 100) / 50.0;
      const cuda::RowWalk w = cuda::plan_rows(2, rshape, 1, rst, rst, nullptr);
      const cpu::Operand xo{x.data(), rst};
      for (bool weighted : {false, true})
        for (double eps : {0.0, 0.1})
          for (double z : {0.0, 1e-3})
            for (int red = 0; red < 3; ++red) {
              const row_losses::CrossEntropy ce{target.data(), weighted ? weight.data() : nullptr, eps, z,
                                                row_losses::Reduction(red)};
              const std::string what = "dtype " + std::to_string(dtype) + " len " + std::to_string(len) + " axis " +
                                       std::to_string(axis) + " weighted " + std::to_string(weighted) + " eps " +
                                       std::to_string(eps) + " z " + std::to_string(z) + " reduction " + std::to_string(red);
              for (bool nll : {false, true}) {
                if (nll && (eps > 0 || z > 0)) continue;
                std::vector<double> want_rows(static_cast<std::size_t>(nrows)), got_rows(static_cast<std::size_t>(nrows));
                const double want = nll ? cpu::run_nll(dtype, 2, rshape, xo, ce, want_rows.data())
                                        : cpu::run_cross_entropy(dtype, 2, rshape, xo, ce, want_rows.data());
                EmulatedRows<S> rows(w, x.data(), nullptr);
                const double got = nll ? row_losses::nll(rows, ce, nrows, len, got_rows.data())
                                       : row_losses::cross_entropy(rows, ce, nrows, len, got_rows.data());
                ASSERT_TRUE(same_bits(&got, &want, 1, what + (nll ? " nll" : " cross_entropy")));
                if (red == 2) {
                  ASSERT_TRUE(same_bits(got_rows.data(), want_rows.data(), std::size_t(nrows), what + " per row"));
                }
                // the backward, into a new array and in place
                std::vector<double> grad(red == 2 ? std::size_t(nrows) : 1);
                for (auto& g : grad) g = 0.5 + double(rng() % 100) / 64.0;
                std::vector<S> dx_want(n), dx_got(n);
                if (nll) cpu::run_nll_backward(dtype, 2, rshape, dx_want.data(), rst, ce, grad.data());
                else cpu::run_cross_entropy_backward(dtype, 2, rshape, xo, dx_want.data(), rst, ce, grad.data());
                EmulatedRows<S> brows(w, x.data(), dx_got.data());
                if (nll) row_losses::nll_backward(brows, ce, nrows, len, grad.data());
                else row_losses::cross_entropy_backward(brows, ce, nrows, len, grad.data());
                ASSERT_TRUE(same_bits(dx_got.data(), dx_want.data(), n, what + (nll ? " nll" : "") + " backward"));
                if (nll) continue;
                std::vector<S> xi = x;
                EmulatedRows<S> irows(w, xi.data(), xi.data());
                row_losses::cross_entropy_backward(irows, ce, nrows, len, grad.data());
                ASSERT_TRUE(same_bits(xi.data(), dx_want.data(), n, what + " backward in place"));
              }
            }
      // class probabilities (zeros among them), in x's layout
      std::vector<S> p(n);
      for (std::size_t i = 0; i < n; ++i)
        p[i] = cuda::ElemIo<S>::store(C(rng() % 4 == 0 ? 0.0 : double(rng() % 1000) / (1000.0 * double(len))));
      const cuda::RowWalk wp = cuda::plan_rows(2, rshape, 1, rst, rst, rst);
      const cpu::Operand po{p.data(), rst};
      for (bool weighted : {false, true})
        for (double eps : {0.0, 0.1})
          for (double z : {0.0, 1e-3})
            for (int red = 0; red < 3; ++red) {
              const cpu::ProbTargets pt{po, weighted ? weight.data() : nullptr, eps, z, row_losses::Reduction(red)};
              const row_losses::SoftTargets st{pt.weight, eps, z, pt.reduction};
              const std::string what = "probs dtype " + std::to_string(dtype) + " len " + std::to_string(len) +
                                       " axis " + std::to_string(axis) + " weighted " + std::to_string(weighted) +
                                       " eps " + std::to_string(eps) + " z " + std::to_string(z) + " reduction " +
                                       std::to_string(red);
              std::vector<double> want_rows(static_cast<std::size_t>(nrows)), got_rows(static_cast<std::size_t>(nrows));
              const double want = cpu::run_cross_entropy_probs(dtype, 2, rshape, xo, pt, want_rows.data());
              EmulatedRows<S> rows(wp, x.data(), nullptr, p.data());
              const double got = row_losses::cross_entropy_probs(rows, st, nrows, len, got_rows.data());
              ASSERT_TRUE(same_bits(&got, &want, 1, what));
              if (red == 2) {
                ASSERT_TRUE(same_bits(got_rows.data(), want_rows.data(), std::size_t(nrows), what + " per row"));
              }
              std::vector<double> grad(red == 2 ? static_cast<std::size_t>(nrows) : 1);
              for (auto& g : grad) g = 0.5 + double(rng() % 100) / 64.0;
              std::vector<S> dx_want(n), xi = x;
              cpu::run_cross_entropy_probs_backward(dtype, 2, rshape, xo, dx_want.data(), rst, pt, grad.data());
              EmulatedRows<S> irows(wp, xi.data(), xi.data(), p.data());  // in place
              row_losses::cross_entropy_probs_backward(irows, st, nrows, len, grad.data());
              ASSERT_TRUE(same_bits(xi.data(), dx_want.data(), n, what + " backward in place"));
            }
      std::vector<double> lse_want(static_cast<std::size_t>(nrows)), lse_got(static_cast<std::size_t>(nrows));
      cpu::run_logsumexp(dtype, 2, rshape, xo, lse_want.data());
      EmulatedRows<S> rows(w, x.data(), nullptr);
      row_losses::logsumexp(rows, nrows, lse_got.data());
      ASSERT_TRUE(same_bits(lse_got.data(), lse_want.data(), std::size_t(nrows), "logsumexp len " + std::to_string(len)));
    }
  }
}

TEST(CudaEmulation, RowLossesMatchCpu) {
  check_row_losses<float>();
  check_row_losses<double>();
  check_row_losses<half>();
  check_row_losses<bfloat16>();
}

}  // namespace
