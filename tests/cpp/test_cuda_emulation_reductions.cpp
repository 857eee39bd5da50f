// The CUDA emulation (test_cuda_emulation.h) of the reduction kernels: prelu and bias_act backward.
#include "test_cuda_emulation.h"

namespace {

// ------------------------------------------------------------------------------ reductions
// kernels.cu reduce_kernel and reduce_finish_kernel, the lanes of a warp one after the other.
template <class S, class Op, int Dir = kinds::kBackwardX, class R = S>
void emulate_reduce(const cuda::ReduceWalk& w, const typename cuda::ReduceBody<S, Op, Dir, R>::Ptrs& q,
                    const cuda::Params<typename cuda::ElemIo<S>::C>& p) {
  using B = cuda::ReduceBody<S, Op, Dir, R>;
  using C = typename B::C;
  std::vector<C> partials(std::size_t(w.J * w.nchunks));
  C v[cuda::kWarp];
  for (i64 t = 0; t < w.J * w.nchunks; ++t) {
    const cuda::SplitTask k = cuda::split_task(t, w.nchunks);
    for (int l = 0; l < cuda::kWarp; ++l) {
      const auto acc = B::lane_sum(q, w, k.row, k.chunk, l, p);
      v[l] = (acc.s - acc.c).v;
    }
    const C s = math::rows::combine_sum<C, true>([&](int j) { return v[j]; });
    if (w.nchunks == 1) q.red[cuda::reduced_offset(w, k.row)] = B::store(s);
    else partials[std::size_t(t)] = s;
  }
  if (w.nchunks == 1) return;
  for (i64 j = 0; j < w.J; ++j) {
    for (int l = 0; l < cuda::kWarp; ++l) {
      math::rows::Kahan<simd::Scalar<C>, true> mine;
      for (i64 ch = l; ch < w.nchunks; ch += cuda::kWarp) mine.add(simd::Scalar<C>(partials[std::size_t(j * w.nchunks + ch)]));
      v[l] = (mine.s - mine.c).v;
    }
    const C s = math::rows::combine_sum<C, true>([&](int jj) { return v[jj]; });
    q.red[cuda::reduced_offset(w, j)] = B::store(w.nchunks == 0 ? C(0) : s);
  }
}

// Against the CPU scalar path's run_reduction: the summed axis innermost or not, one value, a weight of x's
// shape (nothing summed), several chunks, an empty sum; grad_x and the reduced gradient, bit for bit.
template <class S, class Op>
void check_reduce(const cpu::OpInfo& op) {
  using B = cuda::ReduceBody<S, Op>;
  using C = typename B::C;
  const cpu::EwKernel k = ref().ew[op.id][kinds::kBackwardX][dtype_of<S>()];
  ASSERT_TRUE(k);
  struct Case {
    std::vector<i64> shape, red_shape;
  };
  const Case cases[] = {{{3, 5, 37}, {1, 5, 1}}, {{50, 33}, {1, 33}}, {{2, 3, 9000}, {1, 3, 1}}, {{9000, 3}, {1, 3}},
                        {{7, 5}, {1, 1}},        {{4, 6}, {4, 6}},     {{0, 5}, {1, 5}},         {{6, 1, 4}, {6, 1, 1}}};
  for (const auto& pv : param_sets(op)) {
    const cuda::Params<C> p = cuda::to_params<C>(pv.data());
    for (const Case& c : cases) {
      const int nd = int(c.shape.size());
      i64 n = 1, nw = 1;
      std::vector<i64> sx(c.shape.size()), sw(c.shape.size());
      for (int i = nd - 1; i >= 0; --i) {
        sx[std::size_t(i)] = n;
        n *= c.shape[std::size_t(i)];
      }
      for (int i = nd - 1; i >= 0; --i) {  // the weight's own C-order strides, 0 along the summed axes
        sw[std::size_t(i)] = c.red_shape[std::size_t(i)] == 1 ? 0 : nw;
        nw *= c.red_shape[std::size_t(i)];
      }
      auto dy = inputs<S>(std::size_t(n), 3), x = inputs<S>(std::size_t(n), 4), w = inputs<S>(std::size_t(nw), 5);
      // Finite (a sum of special values is NaN or inf: the CPU tests take those) and ill-conditioned:
      // ordinary contributions among a few of +-2^26 (+-2^55 in double), whose rounding errors a Kahan lane
      // keeps only in part, so that the sums' last bits depend on which lane took which contribution (a
      // compensated sum of ordinary values is correctly rounded in any order: no test of the order at all).
      std::mt19937 rng(7);
      const double big = sizeof(C) == 4 ? 0x1p26 : 0x1p55;
      for (std::size_t i = 0; i < std::size_t(n); ++i) {
        const double v = rng() % 10 == 0 ? big : 0.5 + double(rng() % 1000) / 1000.0;
        dy[i] = cuda::ElemIo<S>::store(C(rng() % 2 ? v : -v));
        x[i] = cuda::ElemIo<S>::store(C(rng() % 2 ? 1.0 : -1.0));
      }
      for (auto& v : w) v = cuda::ElemIo<S>::store(C(0.25));
      const std::size_t nx = std::size_t(n), nr = std::size_t(nw);
      std::vector<S> gx_want(nx), gx_got(nx), gw_want(nr), gw_got(nr);
      const cpu::Operand ins[3] = {{dy.data(), sx.data()}, {x.data(), sx.data()}, {w.data(), sw.data()}};
      const cpu::Operand outs[1] = {{gx_want.data(), sx.data()}};
      cpu::run_reduction(k, ref().reduce, dtype_of<S>(), nd, c.shape.data(), 1, outs, 3, ins, {gw_want.data(), sw.data()},
                         c.red_shape.data(), pv.data());
      const i64* strides[5] = {sx.data(), sx.data(), sx.data(), sw.data(), sw.data()};
      const cuda::ReduceWalk walk = cuda::plan_reduce(nd, c.shape.data(), 5, strides, c.red_shape.data());
      typename B::Ptrs q;
      q.in[0] = dy.data();
      q.in[1] = x.data();
      q.in[2] = w.data();
      q.out[0] = gx_got.data();
      q.red = gw_got.data();
      emulate_reduce<S, Op>(walk, q, p);
      std::string what = std::string(op.name) + " dtype " + std::to_string(dtype_of<S>()) + " shape";
      for (i64 v : c.shape) what += " " + std::to_string(v);
      ASSERT_TRUE(same_bits(gx_got.data(), gx_want.data(), std::size_t(n), what + " (grad_x)"));
      ASSERT_TRUE(same_bits(gw_got.data(), gw_want.data(), std::size_t(nw), what + " (the reduced gradient)"));
    }
  }
}

template <class Op>
void check_reduce_op(const cpu::OpInfo& op) {
  check_reduce<float, Op>(op);
  check_reduce<double, Op>(op);
  check_reduce<half, Op>(op);
  check_reduce<bfloat16, Op>(op);
  check_ew_dtypes<Op, kinds::kForward>(op);  // the forward is element-wise
}

TEST(CudaEmulation, ReductionsMatchCpuScalar) {
#define FASTACT_CHECK_BROADCAST(name, Op, ...) check_reduce_op<ops::Op>(cpu::elementwise_ops().at(int(ElementwiseOp::name)));
#define FASTACT_CHECK_BIAS_ACT(name, Op, ...) \
  check_reduce_op<ops::BiasAct<ops::Op>>(cpu::elementwise_ops().at(int(ElementwiseOp::bias_act_##name)));
  FASTACT_BROADCAST_OPS(FASTACT_CHECK_BROADCAST)
  FASTACT_ELEMENTWISE_OPS(FASTACT_CHECK_BIAS_ACT)
#undef FASTACT_CHECK_BROADCAST
#undef FASTACT_CHECK_BIAS_ACT
}

// The element-wise losses' "mean" and "sum" (kernels.cu launch_total): the summed loss's contributions
// reduced to one float64 in the CPU's order (cpu/engine.h run_total) -- empty, one element, one chunk,
// several, strided and broadcast operands -- on ill-conditioned sums whose last bits depend on the order.
template <class S, class L>
void check_total(const cpu::OpInfo& op) {
  using Op = ops::SummedLoss<L>;
  using B = cuda::ReduceBody<S, Op, kinds::kForward, double>;
  using C = typename B::C;
  constexpr int NI = B::NI;
  const cpu::EwKernel k = ref().ew[op.id][kinds::kForward][dtype_of<S>()];
  ASSERT_TRUE(k);
  const std::vector<std::vector<i64>> shapes = {{0}, {1}, {5}, {4097}, {3, 9000}, {2, 3, 50}};
  for (const auto& pv : param_sets(op)) {
    const cuda::Params<C> p = cuda::to_params<C>(pv.data());
    for (const auto& shape : shapes) {
      for (bool transposed : {false, true}) {
        const int nd = int(shape.size());
        if (transposed && nd < 2) continue;
        i64 n = 1;
        std::vector<i64> sx(shape.size()), zeros(shape.size(), 0), ones(shape.size(), 1);
        for (int i = nd - 1; i >= 0; --i) {  // C order
          sx[std::size_t(i)] = n;
          n *= shape[std::size_t(i)];
        }
        if (transposed)  // Fortran order: the contributions' order is C order over the shape, not memory's
          for (int i = 0; i < nd; ++i) sx[std::size_t(i)] = i == 0 ? 1 : sx[std::size_t(i - 1)] * shape[std::size_t(i - 1)];
        std::mt19937 rng(unsigned(n + transposed));
        const double big = sizeof(C) == 4 ? 0x1p13 : 0x1p27;
        std::vector<std::vector<S>> in(NI, std::vector<S>(std::size_t(std::max<i64>(n, 1))));
        for (std::size_t i = 0; i < std::size_t(n); ++i) {
          const double v = rng() % 10 == 0 ? big : 0.5 + double(rng() % 1000) / 1000.0;
          in[0][i] = cuda::ElemIo<S>::store(C(rng() % 2 ? v : -v));
          in[1][i] = cuda::ElemIo<S>::store(C(double(rng() % 3) / 4.0));  // a target (BCE: a probability)
          for (int j = 2; j < NI; ++j) in[std::size_t(j)][i] = cuda::ElemIo<S>::store(C(0.5 + double(rng() % 4)));
        }
        std::vector<cpu::Operand> ops_in;
        for (int j = 0; j < NI; ++j) {
          // the weights (BCE's third and fourth operands) broadcast: one value each
          const bool bcast = j >= 2;
          ops_in.push_back({in[std::size_t(j)].data(), bcast ? zeros.data() : sx.data()});
        }
        const double want = cpu::run_total(k, ref().reduce, dtype_of<S>(), nd, shape.data(), NI, ops_in.data(), pv.data());
        const i64* strides[cuda::kMaxOps];
        for (int j = 0; j < NI; ++j) strides[j] = ops_in[std::size_t(j)].strides;
        strides[NI] = zeros.data();
        const cuda::ReduceWalk walk = cuda::plan_reduce(nd, shape.data(), NI + 1, strides, ones.data());
        double got = 0;
        typename B::Ptrs q;
        for (int j = 0; j < NI; ++j) q.in[j] = in[std::size_t(j)].data();
        q.red = &got;
        if (walk.J > 0) emulate_reduce<S, Op, kinds::kForward, double>(walk, q, p);
        std::string what = std::string(op.name) + " dtype " + std::to_string(dtype_of<S>()) + " shape";
        for (i64 v : shape) what += " " + std::to_string(v);
        ASSERT_TRUE(same_bits(&got, &want, 1, what + (transposed ? " transposed" : "")));
        // the last step: the CPU's mean and rounding (losses.py _result), in the kernel's HD code
        const S mean = cuda::finish_total<S>(got, true, n), sum = cuda::finish_total<S>(got, false, n);
        const S want_mean = from_double<S>(want / double(n)), want_sum = from_double<S>(want);
        ASSERT_TRUE(same_bits(&mean, &want_mean, 1, what + " mean"));
        ASSERT_TRUE(same_bits(&sum, &want_sum, 1, what + " sum"));
      }
    }
  }
}

template <class L>
void check_total_op(const cpu::OpInfo& op) {
  check_total<float, L>(op);
  check_total<double, L>(op);
  check_total<half, L>(op);
  check_total<bfloat16, L>(op);
}

TEST(CudaEmulation, LossTotalsMatchCpuScalar) {
#define FASTACT_CHECK_TOTAL(name, L, ...) check_total_op<ops::L>(cpu::elementwise_ops().at(int(ElementwiseOp::summed_##name)));
  FASTACT_LOSS_OPS(FASTACT_CHECK_TOTAL)
#undef FASTACT_CHECK_TOTAL
}

}  // namespace
