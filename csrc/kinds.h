// The coordinates of every kernel table, CPU and CUDA alike: storage dtype and direction.
#pragma once

namespace fastact::kinds {
// Storage dtypes. float16 / bfloat16 are computed in float32 and rounded once on store.
enum Dtype { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3, kNumDtypes = 4 };
// The dtype table, one row per storage dtype in code order: what every binding (NumPy, DLPack, the CUDA
// array interface, the CUDA module) and every message reads.
struct DtypeInfo {
  const char* name;
  int itemsize;
  int dlpack_code, dlpack_bits;  // DLPack's DLDataType (code 2: IEEE float, 4: bfloat)
  const char* typestr;           // the CUDA array interface's, after the byte-order mark ("" where it has none)
};
inline constexpr DtypeInfo kDtypes[kNumDtypes] = {
    {"float32", 4, 2, 32, "f4"}, {"float64", 8, 2, 64, "f8"}, {"float16", 2, 2, 16, "f2"}, {"bfloat16", 2, 4, 16, ""}};
inline constexpr const char* kDtypeList = "float32, float64, float16 or bfloat16";
// The code of a DLPack dtype (one lane), or -1.
constexpr int dtype_of_dlpack(int code, int bits) {
  for (int i = 0; i < kNumDtypes; ++i)
    if (kDtypes[i].dlpack_code == code && kDtypes[i].dlpack_bits == bits) return i;
  return -1;
}
// Forward; backward given x; backward given the forward output y.
enum Direction { kForward = 0, kBackwardX = 1, kBackwardY = 2, kNumDirections = 3 };
}  // namespace fastact::kinds
