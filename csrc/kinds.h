// The coordinates of every kernel table, CPU and CUDA alike: storage dtype and direction.
#pragma once

namespace fastact::kinds {
// Storage dtypes. float16 / bfloat16 are computed in float32 and rounded once on store.
enum Dtype { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3, kNumDtypes = 4 };
// Forward; backward given x; backward given the forward output y.
enum Direction { kForward = 0, kBackwardX = 1, kBackwardY = 2, kNumDirections = 3 };
}  // namespace fastact::kinds
