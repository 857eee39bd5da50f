// Shared by the three CUDA emulation units (test_cuda_emulation_*.cpp, compiled side by side): the
// emulated launch, the dtype helpers and the element-wise check, which the reductions' forward reuses.
#pragma once
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
      // a stepped transpose, C order, a permutation (and again: the losses' backward take five inputs)
      const i64 s_in[5][3] = {{2, 30, 6}, {37 * 5, 5, 1}, {1, 3 * 5, 3}, {2, 30, 6}, {37 * 5, 5, 1}};
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

}  // namespace
