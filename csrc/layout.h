// Layout normalisation shared by the CPU engines and the CUDA launchers: an N-d shape with one set of
// element strides per operand, reduced to the fewest dimensions that describe the same walk.
#pragma once
#include <algorithm>
#include <climits>
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

// A reduction's walk (the CPU's run_reduction, the CUDA reduce launcher) over nall operands (the outputs,
// the inputs, then the reduced one): the dims of the full shape, size-1 ones dropped, each summed over (the
// reduced operand has size 1 there: red_shape[i] == 1) or kept, adjacent dims of one class merged where
// every operand steps evenly across both. A single element is one kept dim of one.
struct ReduceSplit {
  Dims d;
  bool summed[kMaxDims];
  int kept[kMaxDims], sum[kMaxDims];  // the kept and the summed dims of d, each in C order
  int nkept = 0, nsum = 0;
  std::int64_t L = 1, J = 1;  // contributions per reduced element (the summed dims' product); reduced elements
  // Operand k's offset (k < nops) at linear index i over the dims of one class (kept or sum); the index
  // along the last of them in *last.
  void offsets(const int* dims, int n, int nops, std::int64_t i, std::int64_t* off, std::int64_t* last = nullptr) const {
    for (int k = 0; k < nops; ++k) off[k] = 0;
    for (int a = n - 1; a >= 0; --a) {
      const int dim = dims[a];
      const std::int64_t c = i % d.size[dim];
      i /= d.size[dim];
      if (a == n - 1 && last) *last = c;
      for (int k = 0; k < nops; ++k) off[k] += c * d.st[k][dim];
    }
  }
};
inline ReduceSplit split_reduction(int ndim, const std::int64_t* shape, int nall, const std::int64_t* const* strides,
                                   const std::int64_t* red_shape) {
  ReduceSplit r;
  Dims& d = r.d;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 1) continue;
    const bool summed = red_shape[i] == 1;
    bool merge = d.n > 0 && r.summed[d.n - 1] == summed;
    for (int k = 0; k < nall && merge; ++k) merge = d.st[k][d.n - 1] == strides[k][i] * shape[i];
    if (merge) {
      d.size[d.n - 1] *= shape[i];
      for (int k = 0; k < nall; ++k) d.st[k][d.n - 1] = strides[k][i];
      continue;
    }
    d.size[d.n] = shape[i];
    r.summed[d.n] = summed;
    for (int k = 0; k < nall; ++k) d.st[k][d.n] = strides[k][i];
    ++d.n;
  }
  if (d.n == 0) {
    d.n = 1;
    d.size[0] = 1;
    r.summed[0] = false;
    for (int k = 0; k < nall; ++k) d.st[k][0] = 1;
  }
  for (int i = 0; i < d.n; ++i) {
    if (r.summed[i]) {
      r.sum[r.nsum++] = i;
      r.L *= d.size[i];
    } else {
      r.kept[r.nkept++] = i;
      r.J *= d.size[i];
    }
  }
  return r;
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

// The bytes [lo, hi) that an array of elsize-byte elements at base reaches (byte strides); lo == hi when
// it has no elements.
struct ByteSpan {
  std::uintptr_t lo, hi;
};
inline ByteSpan byte_span(std::uintptr_t base, int ndim, const std::int64_t* shape, const std::int64_t* strides,
                          std::int64_t elsize) {
  std::uintptr_t lo = base, hi = base;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 0) return {base, base};
    const std::int64_t span = (shape[i] - 1) * strides[i];
    if (span < 0) lo -= std::uintptr_t(-span);
    else hi += std::uintptr_t(span);
  }
  return {lo, hi + std::uintptr_t(elsize)};
}

// Whether two arrays of elsize-byte elements share a byte (a's elements at a + sum i_k sa_k, b's at b +
// sum j_k sb_k, byte strides). Exact where a bounded search settles it (interleaved views such as the two
// halves of one array along its last axis do not share, though their spans overlap), and "they may" past
// kShareSearchLimit steps: the caller then takes the safe path (a temporary, or an error).
constexpr std::int64_t kShareSearchLimit = 1 << 16;
inline bool may_share_memory(std::uintptr_t a, int nda, const std::int64_t* shape_a, const std::int64_t* sa,
                             std::uintptr_t b, int ndb, const std::int64_t* shape_b, const std::int64_t* sb,
                             std::int64_t elsize) {
  struct Term {
    std::int64_t coef, n;  // coef * i, 0 <= i < n
  };
  Term t[2 * kMaxDims];
  int nt = 0;
  for (int k = 0; k < nda; ++k) {
    if (shape_a[k] == 0) return false;
    if (shape_a[k] > 1 && sa[k] != 0) t[nt++] = {sa[k], shape_a[k]};
  }
  for (int k = 0; k < ndb; ++k) {
    if (shape_b[k] == 0) return false;
    if (shape_b[k] > 1 && sb[k] != 0) t[nt++] = {-sb[k], shape_b[k]};
  }
  // find i: |sum coef_k i_k - d| < elsize, d = b - a (the byte distance of b's first element from a's)
  const std::int64_t d = std::int64_t(b - a);
  std::sort(t, t + nt, [](const Term& x, const Term& y) { return std::llabs(x.coef) > std::llabs(y.coef); });
  std::int64_t lo_rest[2 * kMaxDims + 1], hi_rest[2 * kMaxDims + 1];  // the range the terms from k on can reach
  lo_rest[nt] = hi_rest[nt] = 0;
  for (int k = nt - 1; k >= 0; --k) {
    const std::int64_t span = t[k].coef * (t[k].n - 1);
    lo_rest[k] = lo_rest[k + 1] + (span < 0 ? span : 0);
    hi_rest[k] = hi_rest[k + 1] + (span > 0 ? span : 0);
  }
  std::int64_t work = 0;
  // depth-first over the terms, each value kept only if the rest can still close the gap
  struct Search {
    const Term* t;
    int nt;
    const std::int64_t *lo, *hi;
    std::int64_t w, &work;
    int go(int k, std::int64_t target) {  // 1: found, 0: none, -1: gave up
      if (target - lo[k] <= -w || target - hi[k] >= w) return 0;
      if (k == nt) return 1;
      if (++work > kShareSearchLimit) return -1;
      const std::int64_t c = t[k].coef;
      // values of i with target - c*i within (lo[k+1] - w, hi[k+1] + w)
      std::int64_t first = 0, last = t[k].n - 1;
      const std::int64_t a1 = target - hi[k + 1] - w + 1, a2 = target - lo[k + 1] + w - 1;  // c*i in [a1, a2]
      auto div_floor = [](std::int64_t x, std::int64_t y) { return x / y - ((x % y != 0) && ((x < 0) != (y < 0))); };
      auto div_ceil = [&](std::int64_t x, std::int64_t y) { return -div_floor(-x, y); };
      if (c > 0) {
        first = std::max(first, div_ceil(a1, c));
        last = std::min(last, div_floor(a2, c));
      } else {
        first = std::max(first, div_ceil(a2, c));
        last = std::min(last, div_floor(a1, c));
      }
      for (std::int64_t i = first; i <= last; ++i) {
        const int r = go(k + 1, target - c * i);
        if (r != 0) return r;
      }
      return 0;
    }
  } search{t, nt, lo_rest, hi_rest, elsize, work};
  return search.go(0, d) != 0;
}

// Whether an output and an input of one shape share memory other than as the very same elements in the
// very same layout (in place: every element is read before it is written, so that is safe): an output
// that does must be written through a temporary, or refused. Byte strides. Spans that overlap without a
// shared element (interleaved views) do not count.
inline bool overlaps_differently(std::uintptr_t out, const std::int64_t* out_strides, std::uintptr_t in,
                                 const std::int64_t* in_strides, int ndim, const std::int64_t* shape,
                                 std::int64_t elsize) {
  const ByteSpan o = byte_span(out, ndim, shape, out_strides, elsize);
  const ByteSpan a = byte_span(in, ndim, shape, in_strides, elsize);
  if (o.lo == o.hi || a.lo == a.hi || o.hi <= a.lo || a.hi <= o.lo) return false;
  bool same = out == in;
  for (int i = 0; i < ndim && same; ++i) same = shape[i] <= 1 || out_strides[i] == in_strides[i];
  return !same && may_share_memory(out, ndim, shape, out_strides, in, ndim, shape, in_strides, elsize);
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
    if (strides[i] == INT64_MIN) return true;  // no array can step that far: refused, never negated
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
      for (std::size_t e = 0; e < n; ++e) offsets.push_back(offsets[e] + j * x.stride);
  }
  std::sort(offsets.begin(), offsets.end());
  return std::adjacent_find(offsets.begin(), offsets.end()) != offsets.end();
}

}  // namespace fastact::layout
