// Layout normalisation shared by the CPU engines and the CUDA launchers: an N-d shape with one set of
// element strides per operand, reduced to the fewest dimensions that describe the same walk.
#pragma once
#include <cstdint>

namespace fastact::layout {

constexpr int kMaxDims = 64;  // the most an array may have (NumPy's limit)

struct Dims {
  int n = 0;
  std::int64_t size[kMaxDims];
  std::int64_t st[3][kMaxDims];  // per operand: out, a, b
};

// Drops size-1 dims and merges dims that are contiguous for every operand. A walk over the result in
// C order visits the elements in the same order as a walk over the input.
inline Dims coalesce(int ndim, const std::int64_t* shape, const std::int64_t* const* strides, int nops) {
  Dims d;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 1) continue;
    if (d.n > 0) {
      bool merge = true;
      for (int k = 0; k < nops; ++k)
        if (d.st[k][d.n - 1] != strides[k][i] * shape[i]) merge = false;
      if (merge) {
        d.size[d.n - 1] *= shape[i];
        for (int k = 0; k < nops; ++k) d.st[k][d.n - 1] = strides[k][i];
        continue;
      }
    }
    d.size[d.n] = shape[i];
    for (int k = 0; k < nops; ++k) d.st[k][d.n] = strides[k][i];
    ++d.n;
  }
  return d;
}

// An element-wise call's walk: out, a and (when b is non-null) b over one shape. Contiguous: one run of
// n elements, unit stride for every operand.
struct Flat {
  Dims d;
  std::int64_t n = 1;
  bool contiguous = false;
};
inline Flat flatten(int ndim, const std::int64_t* shape, const std::int64_t* so, const std::int64_t* sa,
                    const std::int64_t* sb) {
  const std::int64_t* strides[3] = {so, sa, sb ? sb : so};
  Flat f;
  f.d = coalesce(ndim, shape, strides, 3);
  for (int i = 0; i < ndim; ++i) f.n *= shape[i];
  if (f.d.n == 0) {  // a single element (0-d, or all dims of size 1)
    f.d.n = 1;
    f.d.size[0] = 1;
    f.d.st[0][0] = f.d.st[1][0] = f.d.st[2][0] = 1;
  }
  f.contiguous = f.d.n == 1 && f.d.st[0][0] == 1 && f.d.st[1][0] == 1 && (!sb || f.d.st[2][0] == 1);
  return f;
}

}  // namespace fastact::layout
