// The CUDA kernel bodies (csrc/cuda/bodies.h), run on the host over an emulated launch: every block and
// thread of the grid the launcher would choose (csrc/cuda/plan.h), for every registry op, direction and
// dtype, sizes around every pack and tail boundary, every alignment phase, in place, strided views, and
// rows shorter and longer than a warp -- compared with the CPU scalar path bit for bit (NaN payloads
// aside). This is what makes the CUDA code right before a GPU sees it; tests/cuda confirms it on one.
// This unit: the element-wise and gated ops, and the strided walk.
#include "test_cuda_emulation.h"

namespace {

TEST(CudaEmulation, ElementwiseMatchesCpuScalar) {
#define FASTACT_CHECK_EW(name, Op, from, ...) \
  check_ew_op<ops::Op, BackwardFrom::from>(cpu::elementwise_ops().at(int(ElementwiseOp::name)));
  FASTACT_ELEMENTWISE_OPS(FASTACT_CHECK_EW)
#define FASTACT_CHECK_GATED(name, Act, which, ...)                                                     \
  check_ew_op<ops::Gated<ops::Act, ops::Gate::which>, BackwardFrom::FromX>(                            \
      cpu::elementwise_ops().at(int(ElementwiseOp::name)));
  FASTACT_GATED_OPS(FASTACT_CHECK_GATED)
#define FASTACT_CHECK_LOSS(name, L, ...) \
  check_ew_op<ops::LossOp<ops::L>, BackwardFrom::FromX>(cpu::elementwise_ops().at(int(ElementwiseOp::name)));
  FASTACT_LOSS_OPS(FASTACT_CHECK_LOSS)
#undef FASTACT_CHECK_LOSS
#undef FASTACT_CHECK_GATED
#undef FASTACT_CHECK_EW
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

}  // namespace
