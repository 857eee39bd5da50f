// The CUDA kernel bodies (csrc/cuda/bodies.h), run on the host over an emulated launch: every block and
// thread of the grid the launcher would choose (csrc/cuda/plan.h), for every registry op, direction and
// dtype, sizes around every pack and tail boundary, every alignment phase, in place, strided views, and
// rows shorter and longer than a warp -- compared with the CPU scalar path bit for bit (NaN payloads
// aside). This is what makes the CUDA code right before a GPU sees it; tests/cuda confirms it on one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/engine.h"
#include "cpu/kernels.h"
#include "cpu/op_info.h"
#include "cuda/bodies.h"
#include "cuda/plan.h"
#include "test_util.h"

using namespace fastact;
using testing_util::param_sets;
using cuda::Coord;
using cuda::Grid;
using cuda::i64;

namespace {

const int kSmCounts[] = {1, 3, 132};  // one SM (long grid-stride loops), a few, an H100

// The rows' matrix under a sanitizer (about 20x slower there: 234 of the sanitizer run's 409 s) takes the two
// outer grids and leaves out one of its three multi-chunk lengths; every path (a row of one chunk, of several,
// split rows, tails, in place) is still walked under it, and the native ctest runs the whole matrix.
#if defined(FASTACT_TEST_SANITIZED)
const int kRowSmCounts[] = {1, 132};
const i64 kRowLens[] = {1, 5, 31, 32, 33, 64, 100, 1000, 1025, 4096, 4097, 3 * 4096 + 33};
#else
const int (&kRowSmCounts)[3] = kSmCounts;
const i64 kRowLens[] = {1, 5, 31, 32, 33, 64, 100, 1000, 1025, 4096, 4097, 8200, 3 * 4096 + 33};
#endif

template <class F>
void launch(Grid g, F body) {
  for (i64 b = 0; b < g.blocks; ++b)
    for (int t = 0; t < g.threads; ++t) body(Coord{b, g.blocks, t, g.threads});
}

template <class S>
int dtype_of() {
  if constexpr (std::is_same_v<S, float>) return kinds::kF32;
  else if constexpr (std::is_same_v<S, double>) return kinds::kF64;
  else if constexpr (std::is_same_v<S, half>) return kinds::kF16;
  else return kinds::kBF16;
}

template <class S>
bool is_nan(S v) {
  if constexpr (std::is_same_v<S, half>) return (v.bits & 0x7fffu) > 0x7c00u;
  else if constexpr (std::is_same_v<S, bfloat16>) return (v.bits & 0x7fffu) > 0x7f80u;
  else return v != v;
}

// Special values, any bit pattern, and ordinary values, mixed.
template <class S>
std::vector<S> inputs(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<S> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t r = rng();
    if constexpr (sizeof(S) == 2) {
      v[i] = S{std::uint16_t(r)};
      if (i % 2) v[i] = std::is_same_v<S, half> ? S{to_half(float(int(r % 2001) - 1000) / 97.0f).bits}
                                                 : S{to_bfloat16(float(int(r % 2001) - 1000) / 97.0f).bits};
    } else {
      using I = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
      const S specials[] = {S(0), -S(0), S(1) / S(0), -S(1) / S(0), S(0) / S(0), S(1e-40), S(-0.75), S(3.5)};
      if (i % 3 == 0) v[i] = specials[(i / 3) % 8];
      else if (i % 3 == 1) { I b = I(r); std::memcpy(&v[i], &b, sizeof(S)); }
      else v[i] = S(std::uniform_real_distribution<double>(-40, 40)(rng));
    }
  }
  return v;
}

template <class S>
::testing::AssertionResult same_bits(const S* got, const S* want, std::size_t n, const std::string& what) {
  for (std::size_t i = 0; i < n; ++i) {
    if (is_nan(got[i]) && is_nan(want[i])) continue;
    if (std::memcmp(&got[i], &want[i], sizeof(S)) != 0)
      return ::testing::AssertionFailure() << what << ": element " << i << " differs from the CPU scalar path";
  }
  return ::testing::AssertionSuccess();
}

const cpu::KernelTable& ref() { return cpu::scalar::table(); }

// ------------------------------------------------------------------------------ element-wise
template <class S, class Op, int Dir>
void check_ew(const cpu::OpInfo& op) {
  using Body = cuda::EwBody<S, Op, Dir>;
  using C = typename Body::C;
  constexpr int NI = Body::NI, NO = Body::NO;
  const cpu::EwKernel k = ref().ew[op.id][Dir][dtype_of<S>()];
  ASSERT_TRUE(k);
  const std::string name = std::string(op.name) + " dir " + std::to_string(Dir) + " dtype " + std::to_string(dtype_of<S>());
  auto ptrs = [](std::vector<std::vector<S>>& in, std::size_t ia, std::vector<std::vector<S>>& out, std::size_t io) {
    typename Body::Ptrs q;
    for (int i = 0; i < NI; ++i) q.in[i] = in[std::size_t(i)].data() + ia;
    for (int o = 0; o < NO; ++o) q.out[o] = out[std::size_t(o)].data() + io;
    return q;
  };
  auto inputs_of = [](std::size_t n, unsigned seed) {
    std::vector<std::vector<S>> v;
    for (int i = 0; i < NI; ++i) v.push_back(inputs<S>(n, seed + unsigned(i)));
    return v;
  };
  auto outputs_of = [](std::size_t n) { return std::vector<std::vector<S>>(NO, std::vector<S>(n)); };
  for (const auto& pv : param_sets(op)) {
    const cuda::Params<C> p = cuda::to_params<C>(pv.data());
    // Contiguous: sizes around the pack width and the grid, every alignment phase of each operand.
    const std::size_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 257, 1000, 4099};
    for (std::size_t n : sizes) {
      for (int pa = 0; pa < Body::kPack; pa += (n > 100 ? 3 : 1)) {
        for (int po : {0, pa, (pa + 1) % Body::kPack}) {
          const std::size_t pad = 16;
          auto in = inputs_of(n + pad, unsigned(n * 7 + pa));
          auto want = outputs_of(n + pad), got = outputs_of(n + pad);
          std::vector<S*> pin;
          for (auto& v : in) pin.push_back(v.data() + pa);
          testing_util::call(k, pin, testing_util::data_of(want), n, pv.data());
          const int sm = n > 1000 ? 1 : 132;
          const auto q = ptrs(in, std::size_t(pa), got, std::size_t(po));
          launch(cuda::grid_for(Body::items(i64(n)), cuda::kThreads, sm), [&](Coord c) { Body::contiguous(q, i64(n), p, c); });
          for (int o = 0; o < NO; ++o)
            ASSERT_TRUE(same_bits(got[std::size_t(o)].data() + po, want[std::size_t(o)].data(), n, name + " n=" + std::to_string(n)));
        }
      }
    }
    // Long enough that every thread of a one-SM grid takes several packs, in place (the outputs over the
    // last inputs, as testing_util::in_place_outputs).
    {
      const std::size_t n = cuda::kBlocksPerSm * cuda::kThreads * Body::kPack * 3 + 5;
      auto in = inputs_of(n, 5);
      auto want = outputs_of(n);
      testing_util::call(k, testing_util::data_of(in), testing_util::data_of(want), n, pv.data());
      typename Body::Ptrs q;
      for (int i = 0; i < NI; ++i) q.in[i] = in[std::size_t(i)].data();
      for (int o = 0; o < NO; ++o) q.out[o] = in[std::size_t(NI - NO + o)].data();
      launch(cuda::grid_for(Body::items(i64(n)), cuda::kThreads, 1), [&](Coord c) { Body::contiguous(q, i64(n), p, c); });
      for (int o = 0; o < NO; ++o)
        ASSERT_TRUE(same_bits(in[std::size_t(NI - NO + o)].data(), want[std::size_t(o)].data(), n, name + " in place, long"));
    }
    // Strided: transposed, stepped views of 3-d buffers, through the same plan as the launcher.
    for (int sm : kSmCounts) {
      const i64 shape[3] = {3, 37, 5};
      const i64 s_in[3][3] = {{2, 30, 6}, {37 * 5, 5, 1}, {1, 3 * 5, 3}};  // a stepped transpose, C order, a permutation
      const i64 s_out[2][3] = {{1, 3 * 5, 3}, {37 * 5, 5, 1}};
      const std::size_t span = 6 * 37 * 5 + 8;
      auto in = inputs_of(span, 11);
      auto want = outputs_of(span), got = outputs_of(span);
      cpu::Operand ci[NI], co[NO];
      const i64* strides[cuda::kMaxOps];
      for (int o = 0; o < NO; ++o) {
        co[o] = {want[std::size_t(o)].data(), s_out[o]};
        strides[o] = s_out[o];
      }
      for (int i = 0; i < NI; ++i) {
        ci[i] = {in[std::size_t(i)].data(), s_in[i]};
        strides[NO + i] = s_in[i];
      }
      cpu::run_elementwise(k, int(sizeof(S)), 3, shape, NO, co, NI, ci, pv.data());
      const cuda::EwPlan plan = cuda::plan_elementwise(3, shape, NI + NO, strides);
      ASSERT_FALSE(plan.contiguous);
      const auto q = ptrs(in, 0, got, 0);
      launch(cuda::grid_for(plan.n, cuda::kThreads, sm), [&](Coord c) { Body::strided(q, plan.walk, plan.n, p, c); });
      for (int o = 0; o < NO; ++o)
        ASSERT_TRUE(same_bits(got[std::size_t(o)].data(), want[std::size_t(o)].data(), span, name + " strided"));
    }
  }
}

template <class Op, int Dir>
void check_ew_dtypes(const cpu::OpInfo& op) {
  check_ew<float, Op, Dir>(op);
  check_ew<double, Op, Dir>(op);
  check_ew<half, Op, Dir>(op);
  check_ew<bfloat16, Op, Dir>(op);
}

template <class Op, BackwardFrom From>
void check_ew_op(const cpu::OpInfo& op) {
  check_ew_dtypes<Op, kinds::kForward>(op);
  if constexpr (From != BackwardFrom::FromY) check_ew_dtypes<Op, kinds::kBackwardX>(op);
  if constexpr (From != BackwardFrom::FromX) check_ew_dtypes<Op, kinds::kBackwardY>(op);
}

TEST(CudaEmulation, ElementwiseMatchesCpuScalar) {
#define FASTACT_CHECK_EW(name, Op, from, ...) \
  check_ew_op<ops::Op, BackwardFrom::from>(cpu::elementwise_ops().at(int(ElementwiseOp::name)));
  FASTACT_ELEMENTWISE_OPS(FASTACT_CHECK_EW)
#define FASTACT_CHECK_GATED(name, Act, which, ...)                                                     \
  check_ew_op<ops::Gated<ops::Act, ops::Gate::which>, BackwardFrom::FromX>(                            \
      cpu::elementwise_ops().at(int(ElementwiseOp::name)));
  FASTACT_GATED_OPS(FASTACT_CHECK_GATED)
#undef FASTACT_CHECK_GATED
#undef FASTACT_CHECK_EW
}

// ------------------------------------------------------------------------------ reductions
// kernels.cu reduce_kernel and reduce_finish_kernel, the lanes of a warp one after the other.
template <class S, class Op>
void emulate_reduce(const cuda::ReduceWalk& w, const typename cuda::ReduceBody<S, Op>::Ptrs& q,
                    const cuda::Params<typename cuda::ElemIo<S>::C>& p) {
  using B = cuda::ReduceBody<S, Op>;
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
    if (w.nchunks == 1) q.red[cuda::reduced_offset(w, k.row)] = cuda::ElemIo<S>::store(s);
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
    q.red[cuda::reduced_offset(w, j)] = cuda::ElemIo<S>::store(w.nchunks == 0 ? C(0) : s);
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

TEST(CudaEmulation, StridedCopy) {
  const i64 shape[2] = {7, 9}, sa[2] = {1, 7}, so[2] = {9, 1};
  std::vector<float> a(63), o(63, -1.f);
  for (int i = 0; i < 63; ++i) a[i] = float(i);
  const cuda::EwPlan plan = cuda::plan_elementwise(2, shape, so, sa, nullptr);
  launch(cuda::grid_for(plan.n, cuda::kThreads, 1), [&](Coord c) { cuda::copy_strided(a.data(), o.data(), plan.walk, plan.n, c); });
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 9; ++j) ASSERT_EQ(o[i * 9 + j], a[i + 7 * j]);
}

TEST(CudaEmulation, TooManyDimensionsIsAClearError) {
  i64 shape[14], st[14];
  for (int i = 0; i < 14; ++i) { shape[i] = 2; st[i] = i64(1) << (2 * i + 1); }  // never mergeable
  EXPECT_THROW(cuda::plan_elementwise(14, shape, st, st, nullptr), std::invalid_argument);
}

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

}  // namespace
