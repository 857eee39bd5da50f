// Layout normalisation shared by the CPU engines and the CUDA launchers: an N-d shape with one set of
// element strides per operand, reduced to the fewest dimensions that describe the same walk.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace fastact::layout {

constexpr int kMaxDims = 64;  // the most an array may have (NumPy's limit)
// Operands of one element-wise call, outputs and inputs together (a gated op's backward: two outputs,
// three inputs).
constexpr int kMaxOperands = 6;

struct Dims {
  int n = 0;
  std::int64_t size[kMaxDims];
  std::int64_t st[kMaxOperands][kMaxDims];  // per operand: the outputs, then the inputs
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

// An element-wise call's walk over nops operands (strides[k]: operand k's element strides). Contiguous:
// one run of n elements, unit stride for every operand.
struct Flat {
  Dims d;
  std::int64_t n = 1;
  bool contiguous = false;
};
inline Flat flatten(int ndim, const std::int64_t* shape, int nops, const std::int64_t* const* strides) {
  Flat f;
  f.d = coalesce(ndim, shape, strides, nops);
  for (int i = 0; i < ndim; ++i) f.n *= shape[i];
  if (f.d.n == 0) {  // a single element (0-d, or all dims of size 1)
    f.d.n = 1;
    f.d.size[0] = 1;
    for (int k = 0; k < nops; ++k) f.d.st[k][0] = 1;
  }
  f.contiguous = f.d.n == 1;
  for (int k = 0; k < nops; ++k) f.contiguous = f.contiguous && f.d.st[k][0] == 1;
  return f;
}
// out, a and (when sb is non-null) b: a unary op's walk; without b, the third operand walks as out.
inline Flat flatten(int ndim, const std::int64_t* shape, const std::int64_t* so, const std::int64_t* sa,
                    const std::int64_t* sb) {
  const std::int64_t* strides[3] = {so, sa, sb ? sb : so};
  return flatten(ndim, shape, 3, strides);
}

// Whether two different indices of an array reach the same element (a broadcast view, an overlapping
// as_strided view): such an array cannot be an output, since what it holds would depend on the order of
// the writes. Strides in elements. Exact: sorted by stride, each dimension must step past all that the
// smaller ones reach; a layout that fails that test (an interleaved one) is checked element by element
// when it has at most kExactOverlapLimit elements, and counted as overlapping beyond that.
constexpr std::int64_t kExactOverlapLimit = std::int64_t(1) << 22;
inline bool has_internal_overlap(int ndim, const std::int64_t* shape, const std::int64_t* strides) {
  struct Dim {
    std::int64_t size, stride;
  };
  Dim d[kMaxDims];  // on the stack: checked on every call with an out=
  int nd = 0;
  for (int i = 0; i < ndim; ++i)
    if (shape[i] == 0) return false;  // no elements at all
  std::int64_t count = 1;
  for (int i = 0; i < ndim && i < kMaxDims; ++i) {
    if (shape[i] == 1) continue;
    if (strides[i] == 0) return true;
    d[nd++] = {shape[i], std::llabs(strides[i])};  // a negative stride mirrors its dimension: same collisions
    if (count <= kExactOverlapLimit && __builtin_mul_overflow(count, shape[i], &count)) count = kExactOverlapLimit + 1;
  }
  std::sort(d, d + nd, [](const Dim& a, const Dim& b) { return a.stride < b.stride; });
  std::int64_t reach = 0;  // the largest offset the dimensions so far reach
  bool nested = true;
  for (int k = 0; k < nd; ++k) {
    const Dim& x = d[k];
    std::int64_t span;
    if (x.stride <= reach || __builtin_mul_overflow(x.stride, x.size - 1, &span) ||
        __builtin_add_overflow(reach, span, &reach)) {
      nested = false;
      break;
    }
  }
  if (nested) return false;
  if (count > kExactOverlapLimit) return true;
  std::vector<std::int64_t> offsets(1, 0);
  for (int k = 0; k < nd; ++k) {
    const Dim& x = d[k];
    const std::size_t n = offsets.size();
    for (std::int64_t j = 1; j < x.size; ++j)
      for (std::size_t k = 0; k < n; ++k) offsets.push_back(offsets[k] + j * x.stride);
  }
  std::sort(offsets.begin(), offsets.end());
  return std::adjacent_find(offsets.begin(), offsets.end()) != offsets.end();
}

}  // namespace fastact::layout
