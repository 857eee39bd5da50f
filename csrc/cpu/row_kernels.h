// Softmax-family row kernels, generic over the vector type: the lanes of math/rows.h (32 interleaved
// lanes, combined by its tree; sums by chunks of kChunk), held in 32 / W vectors of W lanes, so every
// ISA gets the same bits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>

#include "../math/rows.h"
#include "scratch.h"
#include "storage_io.h"

namespace fastact::cpu::rows {
FASTACT_TARGET_BEGIN
using namespace fastact::math;
using namespace fastact::math::rows;

// Calls f(const T* block_of_32_per_operand..., count) over the row; the last block is padded with pad.
// T here is any storage type.
template <class T, class F>
inline __attribute__((always_inline)) void blocks(std::size_t len, const T* a, const T* b, T pad_a, T pad_b, F f) {
  std::size_t i = 0;
  for (; i + kLanes <= len; i += kLanes) f(a + i, b ? b + i : nullptr, i, std::size_t(kLanes));
  if (i < len) {
    T ta[kLanes], tb[kLanes];
    std::size_t r = len - i;
    for (int j = 0; j < kLanes; ++j) {
      ta[j] = j < int(r) ? a[i + j] : pad_a;
      if (b) tb[j] = j < int(r) ? b[i + j] : pad_b;
    }
    f(ta, b ? tb : nullptr, i, r);
  }
}

// A per-thread scratch row of at least len values (scratch.h); rows longer than kScratchMaxBytes
// recompute instead (the same bits).
template <class T>
T* scratch_row(std::size_t len) {
  return static_cast<T*>(thread_scratch(len * sizeof(T)));
}

// Stores the block's count values, rounded to the storage type S.
template <class V, class S>
void store_block(const V* v, S* out, std::size_t count) {
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  if (count == std::size_t(kLanes)) {
    for (int j = 0; j < N; ++j) IO::store(out + j * V::W, v[j]);
  } else {
    S tmp[kLanes];
    for (int j = 0; j < N; ++j) IO::store(tmp + j * V::W, v[j]);
    for (std::size_t j = 0; j < count; ++j) out[j] = tmp[j];
  }
}

// The max's order does not matter (math/rows.h): the 32 lanes are folded as a tree (5 steps deep
// instead of a chain of 31), and the row below runs four independent accumulators. Nor does a NaN's
// reaching the max (row_max): the sums that follow turn a NaN anywhere in the row into a NaN sum, and so
// every output of the row into NaN, whatever m is. So the fold is a plain compare-and-pick, which
// compilers make one maxss / maxsd (max_nan's two compares compiled to branches, mispredicted on
// random rows).
template <class V>
typename V::T reduce_max(const V* acc) {
  using T = typename V::T;
  T l[kLanes];
  for (int j = 0; j < kLanes / V::W; ++j) acc[j].store(l + j * V::W);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) l[j] = l[j + w] > l[j] ? l[j + w] : l[j];
  return l[0];
}

// Each lane's Kahan sum minus its compensation: what combine_sum takes.
template <class V, bool Inf = false>
void lane_sums(const Kahan<V, Inf>* acc, typename V::T* l) {
  using T = typename V::T;
  T s[kLanes], c[kLanes];
  for (int j = 0; j < kLanes / V::W; ++j) {
    acc[j].s.store(s + j * V::W);
    acc[j].c.store(c + j * V::W);
  }
  for (int j = 0; j < kLanes; ++j) l[j] = s[j] - c[j];
}

template <class V, bool Inf = false>
typename V::T reduce_sum(const Kahan<V, Inf>* acc) {
  using T = typename V::T;
  T l[kLanes];
  lane_sums(acc, l);
  return combine_sum<T, Inf>([&](int j) { return l[j]; });
}

template <class V, class S>
typename V::T row_max(const S* x, std::size_t len) {
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W, U = 4;
  V acc[U][N];
  for (auto& u : acc)
    for (auto& a : u) a = V(-std::numeric_limits<T>::infinity());
  std::size_t i = 0;
  for (; i + U * kLanes <= len; i += U * kLanes)
    for (int u = 0; u < U; ++u)
      for (int j = 0; j < N; ++j) {
        const V v = IO::load(x + i + u * kLanes + j * V::W);
        acc[u][j] = select(v > acc[u][j], v, acc[u][j]);  // one compare: a NaN in the row need not win here
      }
  blocks<S>(len - i, x + i, nullptr, IO::value(-std::numeric_limits<T>::infinity()), IO::value(T(0)),
            [&](const S* a, const S*, std::size_t, std::size_t) {
              for (int j = 0; j < N; ++j) acc[0][j] = max_nan(acc[0][j], IO::load(a + j * V::W));
            });
  for (int u = 1; u < U; ++u)
    for (int j = 0; j < N; ++j) acc[0][j] = max_nan(acc[0][j], acc[u][j]);
  return reduce_max(acc[0]);
}

// A row in phases, over n elements that start on a chunk boundary (so several threads can share a long
// row, each taking whole chunks, and get the bits of one thread): the forward's sums (exp(x - m) by
// chunks; softmax keeps each exp, unrounded, in e when e is given) and outputs (softmax scales e, or
// recomputes exp when e is null: the same values), the backward's sums and outputs. sink(partial) takes
// each chunk's sum in order. S: the storage type (T, or float16 / bfloat16 on float vectors: read and
// rounded directly, computed and accumulated in float32).
// The chunk loops (and blocks) are forced inline: out of line, their Kahan accumulators lived in memory
// (measured: the backward 1.5x slower).
// With NextMax, the pass also takes the running max of the next row, as long as this one (next: its
// start; nmax: N accumulators): the exp pass is compute-bound, and a max pass of its own stalled on
// fetching the row into L1 (a seventh of a 1,024-element softmax).
template <class V, class Op, bool NextMax = false, class S>
inline __attribute__((always_inline)) void forward_chunk(const S* x, std::size_t n, V m, typename V::T* e, Kahan<V>* acc,
                                                         const S* next = nullptr, V* nmax = nullptr) {  // n <= kChunk
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const S ninf = IO::value(-std::numeric_limits<T>::infinity());
  blocks<S>(n, x, NextMax ? next : nullptr, ninf, ninf, [&](const S* a, const S* b, std::size_t i, std::size_t count) {
    V v[N];
    for (int j = 0; j < N; ++j) {
      v[j] = exp_shifted(IO::load(a + j * V::W), m);
      acc[j].add(v[j]);
      if constexpr (NextMax) {
        const V u = IO::load(b + j * V::W);
        nmax[j] = select(u > nmax[j], u, nmax[j]);  // one compare, as row_max's
      }
    }
    if (Op::keeps_exp && e) store_block(v, e + i, count);
  });
}

template <class V, class Op, class S, class Sink>
void forward_sums(const S* x, std::size_t n, typename V::T mx, typename V::T* e, Sink sink) {
  constexpr int N = kLanes / V::W;
  for (std::size_t start = 0; start < n; start += kChunk) {
    Kahan<V> acc[N];
    forward_chunk<V, Op>(x + start, std::min<std::size_t>(kChunk, n - start), V(mx), e ? e + start : nullptr, acc);
    sink(reduce_sum(acc));
  }
}

template <class V, class Op, class S>
void forward_write(const S* x, S* y, std::size_t n, typename V::T mx, typename V::T sum, const typename V::T* e) {
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const V m(mx), c(Op::row_constant(sum));
  if constexpr (Op::keeps_exp) {
    if (e) {
      blocks<T>(n, e, nullptr, T(0), T(0), [&](const T* a, const T*, std::size_t i, std::size_t count) {
        V v[N];
        for (int j = 0; j < N; ++j) v[j] = Op::from_exp(V::load(a + j * V::W), c);
        store_block(v, y + i, count);
      });
      return;
    }
  }
  blocks<S>(n, x, nullptr, IO::value(T(0)), IO::value(T(0)), [&](const S* a, const S*, std::size_t i, std::size_t count) {
    V v[N];
    for (int j = 0; j < N; ++j) v[j] = Op::value(IO::load(a + j * V::W), m, c);
    store_block(v, y + i, count);
  });
}

template <class V, class Op, class S>
inline __attribute__((always_inline)) void backward_chunk(const S* dy, const S* y, std::size_t n, Kahan<V>* acc) {  // n <= kChunk
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const S zero = IO::value(T(0));
  blocks<S>(n, dy, y, zero, zero, [&](const S* a, const S* b, std::size_t, std::size_t) {
    for (int j = 0; j < N; ++j) acc[j].add(Op::backward_term(IO::load(a + j * V::W), IO::load(b + j * V::W)));
  });
}

template <class V, class Op, class S, class Sink>
void backward_sums(const S* dy, const S* y, std::size_t n, Sink sink) {
  constexpr int N = kLanes / V::W;
  for (std::size_t start = 0; start < n; start += kChunk) {
    Kahan<V> acc[N];
    backward_chunk<V, Op>(dy + start, y + start, std::min<std::size_t>(kChunk, n - start), acc);
    sink(reduce_sum(acc));
  }
}

template <class V, class Op, class S>
void backward_write(const S* dy, const S* y, S* dx, std::size_t n, typename V::T sum) {
  using T = typename V::T;
  using IO = StorageIo<V, S>;
  constexpr int N = kLanes / V::W;
  const S zero = IO::value(T(0));
  const V s(sum);
  blocks<S>(n, dy, y, zero, zero, [&](const S* a, const S* b, std::size_t i, std::size_t count) {
    V v[N];
    for (int j = 0; j < N; ++j) v[j] = Op::backward_value(IO::load(a + j * V::W), IO::load(b + j * V::W), s);
    store_block(v, dx + i, count);
  });
}

// Whole rows, one thread each.
template <class V, class Op, class S = typename V::T>
void forward(const S* x, S* y, std::size_t len) {
  using T = typename V::T;
  const T mx = row_max<V>(x, len);
  // softmax keeps exp(x - max) unrounded until it is scaled: in y itself when S is T, else in a scratch row
  // if the row fits one (past that, the write pass computes exp again: the same values)
  T* e = nullptr;
  if constexpr (Op::keeps_exp) {
    if constexpr (std::is_same_v<S, T>) e = y;
    else if (len * sizeof(T) <= kScratchMaxBytes) e = scratch_row<T>(len);
  }
  PartialSums<T> sums;
  forward_sums<V, Op>(x, len, mx, e, [&](T p) { sums.add(p); });
  forward_write<V, Op>(x, y, len, mx, sums.total(), e);
}

template <class V, class Op, class S = typename V::T>
void backward(const S* dy, const S* y, S* dx, std::size_t len) {
  using T = typename V::T;
  PartialSums<T> sums;
  backward_sums<V, Op>(dy, y, len, [&](T p) { sums.add(p); });
  backward_write<V, Op>(dy, y, dx, len, sums.total());
}

// nrows rows (row r at a + r*sa, b + r*sb, out + r*so elements). Rows of one chunk (the sum of such a row
// is its one partial) go kGroup at a time, their lane combinations side by side (combine_sums); the
// bits are those of one row at a time. row_groups is the walk both directions share: whole(r) for a
// long row; for short ones lanes(r, i, l) fills row r's 32 lane sums (i: its place in the group), and
// write(r, i, total) runs once the group's sums are combined.
constexpr int kGroup = 4;

template <class T, class Whole, class Lanes, class Write>
inline __attribute__((always_inline)) void row_groups(std::size_t len, std::size_t nrows, Whole whole, Lanes lanes,
                                                      Write write) {
  if (len == 0) return;
  if (len > std::size_t(kChunk)) {
    for (std::size_t r = 0; r < nrows; ++r) whole(std::int64_t(r));
    return;
  }
  for (std::size_t r0 = 0; r0 < nrows; r0 += kGroup) {
    const int g = int(std::min<std::size_t>(kGroup, nrows - r0));
    T l[kGroup][kLanes], total[kGroup];
    for (int i = 0; i < g; ++i) lanes(std::int64_t(r0) + i, i, l[i]);
    for (int i = g; i < kGroup; ++i) std::fill(l[i], l[i] + kLanes, T(0));  // a short last group's rest
    combine_sums<T, kGroup>([&](int i, int j) { return l[i][j]; }, total);  // side by side (a tree alone is latency)
    for (int i = 0; i < g; ++i) write(std::int64_t(r0) + i, i, total[i]);
  }
}

template <class V, class Op, class S = typename V::T>
void forward_rows(const void* a_, const void*, void* o_, std::size_t len, std::size_t nrows, std::int64_t sa,
                  std::int64_t, std::int64_t so) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  const S* x = static_cast<const S*>(a_);
  S* y = static_cast<S*>(o_);
  T* scratch = nullptr;
  static_assert(kGroup * kChunk * sizeof(double) <= kScratchMaxBytes, "short rows always fit the scratch row");
  if constexpr (Op::keeps_exp && !std::is_same_v<S, T>) scratch = scratch_row<T>(kGroup * std::min<std::size_t>(len, kChunk));
  T mx[kGroup] = {}, next_max = T(0);
  T* e[kGroup] = {};
  row_groups<T>(
      len, nrows, [&](std::int64_t r) { forward<V, Op>(x + r * sa, y + r * so, len); },
      [&](std::int64_t r, int i, T* l) {
        // row r's max came with row r - 1's pass (forward_chunk's NextMax; row_groups calls lanes in row
        // order), but for the first row
        mx[i] = r == 0 ? row_max<V>(x, len) : next_max;
        if constexpr (Op::keeps_exp) {
          if constexpr (std::is_same_v<S, T>) e[i] = y + r * so;
          else e[i] = scratch + i * len;
        }
        Kahan<V> acc[N];
        if (r + 1 < std::int64_t(nrows)) {
          V nmax[N];
          for (auto& u : nmax) u = V(-std::numeric_limits<T>::infinity());
          forward_chunk<V, Op, true>(x + r * sa, len, V(mx[i]), e[i], acc, x + (r + 1) * sa, nmax);
          next_max = reduce_max(nmax);
        } else {
          forward_chunk<V, Op>(x + r * sa, len, V(mx[i]), e[i], acc);
        }
        lane_sums(acc, l);
      },
      [&](std::int64_t r, int i, T total) { forward_write<V, Op>(x + r * sa, y + r * so, len, mx[i], total, e[i]); });
}

template <class V, class Op, class S = typename V::T>
void backward_rows(const void* a_, const void* b_, void* o_, std::size_t len, std::size_t nrows, std::int64_t sa,
                   std::int64_t sb, std::int64_t so) {
  using T = typename V::T;
  constexpr int N = kLanes / V::W;
  const S* dy = static_cast<const S*>(a_);
  const S* y = static_cast<const S*>(b_);
  S* dx = static_cast<S*>(o_);
  row_groups<T>(
      len, nrows, [&](std::int64_t r) { backward<V, Op>(dy + r * sa, y + r * sb, dx + r * so, len); },
      [&](std::int64_t r, int, T* l) {
        Kahan<V> acc[N];
        backward_chunk<V, Op>(dy + r * sa, y + r * sb, len, acc);
        lane_sums(acc, l);
      },
      [&](std::int64_t r, int, T total) { backward_write<V, Op>(dy + r * sa, y + r * sb, dx + r * so, len, total); });
}

// The phases behind type-erased pointers, for the engine's split rows (kernels.h RowKernel). m and the
// partials travel as double: exact for float and double alike. A softmax in 16 bits recomputes exp in
// its write phase (a thread-local scratch row would not follow a chunk from one phase to the next).
template <class V, class Op, class S = typename V::T>
double max_phase(const void* a, std::size_t n) {
  return double(row_max<V>(static_cast<const S*>(a), n));
}
template <class V, class Op, class S = typename V::T>
void forward_sums_phase(const void* a, const void*, void* o, std::size_t n, double m, double* partials) {
  using T = typename V::T;
  T* e = nullptr;
  if constexpr (Op::keeps_exp && std::is_same_v<S, T>) e = static_cast<T*>(o);
  forward_sums<V, Op>(static_cast<const S*>(a), n, T(m), e, [&](T p) { *partials++ = double(p); });
}
template <class V, class Op, class S = typename V::T>
void forward_write_phase(const void* a, const void*, void* o, std::size_t n, double m, double total) {
  using T = typename V::T;
  const T* e = nullptr;
  if constexpr (Op::keeps_exp && std::is_same_v<S, T>) e = static_cast<const T*>(o);
  forward_write<V, Op>(static_cast<const S*>(a), static_cast<S*>(o), n, T(m), T(total), e);
}
template <class V, class Op, class S = typename V::T>
void backward_sums_phase(const void* a, const void* b, void*, std::size_t n, double, double* partials) {
  using T = typename V::T;
  backward_sums<V, Op>(static_cast<const S*>(a), static_cast<const S*>(b), n, [&](T p) { *partials++ = double(p); });
}
template <class V, class Op, class S = typename V::T>
void backward_write_phase(const void* a, const void* b, void* o, std::size_t n, double, double total) {
  using T = typename V::T;
  backward_write<V, Op>(static_cast<const S*>(a), static_cast<const S*>(b), static_cast<S*>(o), n, T(total));
}

FASTACT_TARGET_END
}  // namespace fastact::cpu::rows
