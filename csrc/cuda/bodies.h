// CUDA kernel bodies as plain host+device code. Each __global__ kernel in kernels.cu is a thin shell
// that reads blockIdx / blockDim / threadIdx into a Coord and calls a body here; every index,
// vector-width, alignment and tail decision lives in these bodies, and tests/cpp/test_cuda_emulation_*.cpp
// runs them on the host for every block and thread of the grid the launcher chooses, against the CPU
// scalar path, bit for bit. The math is csrc/math (the CPU's), on one-lane simd::Scalar values.
#pragma once
#include <cstdint>
#include <type_traits>

#include "fastact/registry.h"
#include "../kinds.h"
#include "../math/ops.h"
#include "../math/rows.h"
#include "../math/vec_scalar.h"
#include "elem_io.h"

namespace fastact::cuda {
using namespace fastact::kinds;
using i64 = std::int64_t;

// A thread's place in its launch (blockIdx.x, gridDim.x, threadIdx.x, blockDim.x).
struct Coord {
  i64 block, blocks;
  int thread, threads;
  FASTACT_HD_INLINE i64 global() const { return block * threads + thread; }
  FASTACT_HD_INLINE i64 total() const { return blocks * threads; }
};

// Dimensions a strided walk may keep after coalescing (layout.h); more is refused by the launcher.
constexpr int kMaxDims = 12;
// Operands of one element-wise launch: outputs first, then inputs (layout::kMaxOperands).
constexpr int kMaxOps = 6;

// A C-order walk over an N-d shape with element strides per operand (the outputs, then the inputs; rows
// and copies: out, a, b). Passed by value.
struct Walk {
  int ndim = 0, nops = 3;
  i64 size[kMaxDims];
  i64 st[kMaxOps][kMaxDims];
  FASTACT_HD_INLINE void offsets(i64 i, i64 (&off)[kMaxOps]) const {
    for (int k = 0; k < kMaxOps; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const i64 j = i % size[d];
      i /= size[d];
      for (int k = 0; k < nops; ++k) off[k] += j * st[k][d];
    }
  }
};

// The op's parameters in the compute type (converted once on the host, as the CPU kernels do).
template <class C>
struct Params {
  C v[kMaxParams];
};
template <class C>
inline Params<C> to_params(const double* p) {
  Params<C> r;
  for (int i = 0; i < kMaxParams; ++i) r.v[i] = C(p ? p[i] : 0.0);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Element-wise, on the op's operands in its direction (ops::Signature: NI inputs, NO outputs). Contiguous
// operands move in 16-byte packs when they all share their alignment (a scalar head up to the first
// aligned pack, a scalar tail after the last); otherwise every element is scalar. Threads stride over
// packs (then over the head and tail elements) by the grid's size.
template <class S, class Op, int Dir>
struct EwBody {
  using C = typename ElemIo<S>::C;
  using V = simd::Scalar<C>;
  static constexpr int NI = ops::Signature<Op>::in[Dir], NO = ops::Signature<Op>::out[Dir];
  static constexpr int kPack = 16 / int(sizeof(S));
  static constexpr int kUnroll = 2;
  struct alignas(16) Pack {
    S v[kPack];
  };
  struct Ptrs {  // the operands' first elements (passed to a kernel by value)
    const S* in[NI];
    S* out[NO];
  };

  // Element j of each input pack (or array) to element j of each output pack (or array).
  FASTACT_HD_INLINE static void one(const S* const* in, S* const* out, i64 j, const Params<C>& p) {
    V a[NI], r[NO];
    for (int k = 0; k < NI; ++k) a[k] = V(ElemIo<S>::load(in[k][j]));
    ops::eval<Op, Dir>(a, r, p.v);
    for (int k = 0; k < NO; ++k) out[k][j] = ElemIo<S>::store(r[k].v);
  }

  struct Split {
    i64 head, packs, tail_start, scalars;  // scalars: head + tail elements
  };
  FASTACT_HD_INLINE static int phase(const void* p) { return int(reinterpret_cast<std::uintptr_t>(p) % 16 / sizeof(S)); }
  FASTACT_HD_INLINE static Split split(const Ptrs& q, i64 n) {
    const int ph = phase(q.out[0]);
    bool packed = true;
    for (int k = 0; k < NI; ++k) packed = packed && phase(q.in[k]) == ph;
    for (int k = 1; k < NO; ++k) packed = packed && phase(q.out[k]) == ph;
    Split s;
    s.head = packed ? (kPack - ph) % kPack : n;
    if (s.head > n) s.head = n;
    s.packs = (n - s.head) / kPack;
    s.tail_start = s.head + s.packs * kPack;
    s.scalars = s.head + (n - s.tail_start);
    return s;
  }
  // Work items a launch over n elements has (what the grid is sized from).
  FASTACT_HD_INLINE static i64 items(i64 n) { return n / kPack + 2 * kPack; }

  FASTACT_HD_INLINE static void packs_at(const Ptrs& q, i64 base, const Params<C>& p) {
    Pack pin[NI], pout[NO];
    const S* in[NI];
    S* out[NO];
    for (int k = 0; k < NI; ++k) {
      pin[k] = *reinterpret_cast<const Pack*>(q.in[k] + base);
      in[k] = pin[k].v;
    }
    for (int k = 0; k < NO; ++k) out[k] = pout[k].v;
    for (int j = 0; j < kPack; ++j) one(in, out, j, p);
    for (int k = 0; k < NO; ++k) *reinterpret_cast<Pack*>(q.out[k] + base) = pout[k];
  }

  FASTACT_HD_INLINE static void contiguous(const Ptrs& q, i64 n, const Params<C>& p, Coord c) {
    const Split s = split(q, n);
    const i64 t0 = c.global(), step = c.total();
    i64 k = t0;
    // kUnroll packs a step apart per round, all loaded before any is computed: more bytes in flight
    for (; k + (kUnroll - 1) * step < s.packs; k += kUnroll * step) {
      Pack pin[kUnroll][NI];
      for (int u = 0; u < kUnroll; ++u)
        for (int i = 0; i < NI; ++i) pin[u][i] = *reinterpret_cast<const Pack*>(q.in[i] + s.head + (k + u * step) * kPack);
      for (int u = 0; u < kUnroll; ++u) {
        Pack pout[NO];
        const S* in[NI];
        S* out[NO];
        for (int i = 0; i < NI; ++i) in[i] = pin[u][i].v;
        for (int o = 0; o < NO; ++o) out[o] = pout[o].v;
        for (int j = 0; j < kPack; ++j) one(in, out, j, p);
        for (int o = 0; o < NO; ++o) *reinterpret_cast<Pack*>(q.out[o] + s.head + (k + u * step) * kPack) = pout[o];
      }
    }
    for (; k < s.packs; k += step) packs_at(q, s.head + k * kPack, p);
    for (i64 e = t0; e < s.scalars; e += step) {
      const i64 i = e < s.head ? e : s.tail_start + (e - s.head);
      one(q.in, q.out, i, p);
    }
  }

  FASTACT_HD_INLINE static void strided(const Ptrs& q, const Walk& w, i64 n, const Params<C>& p, Coord c) {
    for (i64 i = c.global(); i < n; i += c.total()) {
      i64 off[kMaxOps];
      w.offsets(i, off);
      V a[NI], r[NO];
      for (int k = 0; k < NI; ++k) a[k] = V(ElemIo<S>::load(q.in[k][off[NO + k]]));
      ops::eval<Op, Dir>(a, r, p.v);
      for (int k = 0; k < NO; ++k) q.out[k][off[k]] = ElemIo<S>::store(r[k].v);
    }
  }
};

// A strided copy (out = a), for results that went through a temporary.
template <class S>
FASTACT_HD_INLINE void copy_strided(const S* a, S* o, const Walk& w, i64 n, Coord c) {
  for (i64 i = c.global(); i < n; i += c.total()) {
    i64 off[kMaxOps];
    w.offsets(i, off);
    o[off[0]] = a[off[1]];
  }
}

// ---------------------------------------------------------------------------------------------
// Rows (softmax family): a warp per row, or per (row, chunk) for few long rows, lane l taking elements
// l, l+32, ... -- the lanes and chunks of math/rows.h, so the result is the CPU's to the bit. Each
// pass below is one lane's share; between passes the kernel shell gathers the 32 lane values (warp
// shuffles) and every lane combines them in the order of math::rows::combine_*.
constexpr int kWarp = math::rows::kLanes;
constexpr i64 kChunk = math::rows::kChunk;

struct RowWalk {
  i64 len = 0, nrows = 0;
  i64 axis_st[3] = {1, 1, 1};  // element stride along the row: out, a, b
  Walk outer;                  // the other dimensions: row r starts at outer.offsets(r)
};

template <class S, class Op>  // Op: the row functor (ops.h Softmax, LogSoftmax)
struct RowBody {
  using C = typename ElemIo<S>::C;
  using V = simd::Scalar<C>;
  using Kahan = math::rows::Kahan<V>;

  // The warp of a thread, and the rows it takes: w, w + warps, ...
  FASTACT_HD_INLINE static int lane(Coord c) { return c.thread % kWarp; }
  FASTACT_HD_INLINE static i64 warp(Coord c) { return c.global() / kWarp; }
  FASTACT_HD_INLINE static i64 warps(Coord c) { return c.total() / kWarp; }

  struct Row {
    const S* a;  // x, or dy
    const S* b;  // y (backward)
    S* o;
    i64 len, sa, sb, so;
  };
  FASTACT_HD_INLINE static Row row(const RowWalk& w, i64 r, const S* a, const S* b, S* o) {
    i64 off[kMaxOps];
    w.outer.offsets(r, off);
    return Row{a + off[1], b ? b + off[2] : nullptr, o ? o + off[0] : nullptr, w.len, w.axis_st[1], w.axis_st[2], w.axis_st[0]};
  }
  // Element i of p, or pad past the end (the CPU pads its last block of 32 the same way).
  FASTACT_HD_INLINE static V at(const S* p, i64 st, i64 i, i64 len, C pad) {
    return i < len ? V(ElemIo<S>::load(p[i * st])) : V(pad);
  }
  // Chunks (math::rows::kChunk): lane l's elements of chunk ch are ch * kChunk + l + 32 k, up to the
  // chunk's end or the row's last block of 32 (padded past the row's end).
  FASTACT_HD_INLINE static i64 chunks(i64 len) { return (len + kChunk - 1) / kChunk; }
  FASTACT_HD_INLINE static i64 chunk_begin(i64 ch) { return ch * kChunk; }
  FASTACT_HD_INLINE static i64 chunk_end(const Row& r, i64 ch) {
    const i64 e = (ch + 1) * kChunk, padded = (r.len + kWarp - 1) / kWarp * kWarp;
    return e < padded ? e : padded;
  }
  // The end of chunk ch's elements (unpadded: the max and the outputs need no padding).
  FASTACT_HD_INLINE static i64 chunk_stop(const Row& r, i64 ch) {
    const i64 e = (ch + 1) * kChunk;
    return e < r.len ? e : r.len;
  }
  // Forward pass 1: the lane's max over [begin, end) (end <= len: the max needs no padding).
  FASTACT_HD_INLINE static C lane_max(const Row& r, int l, i64 begin, i64 end) {
    V acc(-inf());
    FASTACT_DEVICE_UNROLL(4)
    for (i64 i = begin + l; i < end; i += kWarp) acc = math::rows::max_nan(acc, V(ElemIo<S>::load(r.a[i * r.sa])));
    return acc.v;
  }
  // Forward pass 2: the lane's compensated sum of exp(x - m) over one chunk.
  FASTACT_HD_INLINE static Kahan lane_sum(const Row& r, int l, C m, i64 ch) {
    Kahan acc;
    const i64 end = chunk_end(r, ch);
    FASTACT_DEVICE_UNROLL(4)
    for (i64 i = chunk_begin(ch) + l; i < end; i += kWarp)
      acc.add(math::rows::exp_shifted(at(r.a, r.sa, i, r.len, -inf()), V(m)));
    return acc;
  }
  // Forward pass 3: what every output of a row needs besides x and m (the functor's row constant).
  FASTACT_HD_INLINE static C finish(C sum) { return Op::row_constant(sum); }
  FASTACT_HD_INLINE static void write(const Row& r, i64 i, C m, C f) {
    r.o[i * r.so] = ElemIo<S>::store(Op::value(V(ElemIo<S>::load(r.a[i * r.sa])), V(m), V(f)).v);
  }
  // Backward pass 1: the lane's compensated sum of the functor's terms (dy * y, or dy) over one chunk.
  FASTACT_HD_INLINE static Kahan lane_backward_sum(const Row& r, int l, i64 ch) {
    Kahan acc;
    const i64 end = chunk_end(r, ch);
    FASTACT_DEVICE_UNROLL(4)
    for (i64 i = chunk_begin(ch) + l; i < end; i += kWarp)
      acc.add(Op::backward_term(at(r.a, r.sa, i, r.len, C(0)), at(r.b, r.sb, i, r.len, C(0))));
    return acc;
  }
  // Backward pass 2: one gradient.
  FASTACT_HD_INLINE static void backward_write(const Row& r, i64 i, C s) {
    r.o[i * r.so] =
        ElemIo<S>::store(Op::backward_value(V(ElemIo<S>::load(r.a[i * r.sa])), V(ElemIo<S>::load(r.b[i * r.sb])), V(s)).v);
  }
  FASTACT_HD_INLINE static C inf() {
    if constexpr (sizeof(C) == 4) return simd::bit_cast<C>(std::uint32_t(0x7f800000u));
    else return simd::bit_cast<C>(std::uint64_t(0x7ff0000000000000ull));
  }
};

// ---------------------------------------------------------------------------------------------
// Launch shapes, shared by the launcher and the host emulation.
constexpr int kThreads = 256;     // per block, element-wise and rows (8 warps)
constexpr int kBlocksPerSm = 8;  // enough resident warps to cover memory latency
struct Grid {
  i64 blocks;
  int threads;
};
inline Grid grid_for(i64 items, int threads, int sm_count) {
  i64 b = (items + threads - 1) / threads;
  const i64 cap = i64(sm_count > 0 ? sm_count : 1) * kBlocksPerSm;
  if (b > cap) b = cap;
  if (b < 1) b = 1;
  return Grid{b, threads};
}
inline Grid row_grid(i64 nrows, int sm_count) { return grid_for(nrows * kWarp, kThreads, sm_count); }

// Few long rows are split: one warp per (row, chunk) task, in five launches (chunk maxima, row maxima,
// chunk partial sums, row sums, outputs; a backward needs the last three) through a workspace of
// RowWorkspace<C>::elements(w) values. Many rows keep one warp per row, which walks the same chunks.
inline bool split_rows(const RowWalk& w, int sm_count) {
  return w.len > kChunk && w.nrows < i64(sm_count > 0 ? sm_count : 1) * kBlocksPerSm;
}
struct SplitTask {
  i64 row, chunk;
};
FASTACT_HD_INLINE SplitTask split_task(i64 t, i64 nchunks) { return SplitTask{t / nchunks, t % nchunks}; }
template <class C>
struct RowWorkspace {
  C *chunk_max, *row_max, *chunk_sum, *row_sum;
  static i64 elements(const RowWalk& w) { return 2 * w.nrows * ((w.len + kChunk - 1) / kChunk) + 2 * w.nrows; }
  static RowWorkspace at(C* base, const RowWalk& w) {
    const i64 tasks = w.nrows * ((w.len + kChunk - 1) / kChunk);
    return RowWorkspace{base, base + tasks, base + tasks + w.nrows, base + 2 * tasks + w.nrows};
  }
};

// ---------------------------------------------------------------------------------------------
// Reductions (a backward whose last output is a contribution per element to the gradient of a broadcast
// operand: ops::Signature reduced): a warp per (reduced element j, chunk q) task, lane l taking the
// contributions l, l + 32, ... of the chunk (the last block of 32 padded with zeros) into a Kahan sum with
// infinities kept -- math/rows.h's order, the CPU's (cpu/engine.h run_reduction) to the bit -- and
// writing the element-wise outputs on the way. The kernel shell combines the 32 lanes; with several
// chunks, a second launch sums each element's partials (math::rows::PartialSums' lanes).
struct ReduceWalk {
  Walk kept;    // the reduced elements: outputs, inputs, then the reduced operand
  Walk summed;  // the contributions to one element: outputs, then inputs
  i64 L = 0, J = 0, nchunks = 0;
};

// The reduced element j's offset in the reduced operand.
FASTACT_HD_INLINE i64 reduced_offset(const ReduceWalk& w, i64 j) {
  i64 off[kMaxOps];
  w.kept.offsets(j, off);
  return off[w.kept.nops - 1];
}

// Dir: the direction with the reduced output (a backward's broadcast operand, or a summed loss's forward,
// whose one output is its contribution: a sum to one value, cpu/engine.h run_total). R: the reduced
// values' storage (S, or double for a total, as the CPU stores it).
template <class S, class Op, int Dir = kBackwardX, class R = S>
struct ReduceBody {
  using C = typename ElemIo<S>::C;
  using V = simd::Scalar<C>;
  using Kahan = math::rows::Kahan<V, true>;
  static constexpr int NI = ops::Signature<Op>::in[Dir], NO = ops::Signature<Op>::out[Dir], NS = NO - 1;
  static_assert(ops::Signature<Op>::reduced[Dir] == 1, "one reduced output, the last");
  struct Ptrs {
    const S* in[NI];
    S* out[NS > 0 ? NS : 1];  // the element-wise outputs
    R* red;                   // the reduced one
  };
  FASTACT_HD_INLINE static R store(C s) {
    if constexpr (std::is_same_v<R, S>) return ElemIo<S>::store(s);
    else return R(s);
  }
  // Lane l's Kahan sum of its contributions to element j in chunk q, the element-wise outputs written.
  FASTACT_HD_INLINE static Kahan lane_sum(const Ptrs& q, const ReduceWalk& w, i64 j, i64 chunk, int l,
                                          const Params<C>& p) {
    i64 ok[kMaxOps], os[kMaxOps];
    w.kept.offsets(j, ok);
    Kahan acc;
    const i64 begin = chunk * kChunk, padded = (w.L + kWarp - 1) / kWarp * kWarp;
    const i64 end = begin + kChunk < padded ? begin + kChunk : padded;
    for (i64 r = begin + l; r < end; r += kWarp) {
      if (r >= w.L) {
        acc.add(V(C(0)));
        continue;
      }
      w.summed.offsets(r, os);
      V a[NI], res[NO];
      for (int k = 0; k < NI; ++k) a[k] = V(ElemIo<S>::load(q.in[k][ok[NS + k] + os[NS + k]]));
      ops::eval<Op, Dir>(a, res, p.v);
      for (int k = 0; k < NS; ++k) q.out[k][ok[k] + os[k]] = ElemIo<S>::store(res[k].v);
      acc.add(res[NS]);
    }
    return acc;
  }
};

// A total's last step: the sum (a float64 holding the compute type's sum, as the CPU's run_total gives
// it), over n for a mean (0 / 0 for none: NaN, as PyTorch), correctly rounded to the storage type (the
// bits losses.py _result gives the CPU's total).
template <class S>
FASTACT_HD_INLINE S finish_total(double total, bool mean, i64 n) {
  return from_double<S>(mean ? total / double(n) : total);
}

// ---------------------------------------------------------------------------------------------
// The row losses' passes (row_losses.h RowPasses: cross-entropy, nll, logsumexp) on rows along the last
// axis: a warp per row, lane l taking elements l, l + 32, ... up to the row's last block of 32 (padded as
// the CPU pads it), each in one compensated sum over the whole row (cpu/loss_kernels.h row_sums: no
// chunks), the lanes combined by math::rows' tree -- the CPU's bits. Class weights are in the compute
// type, converted on the host as the CPU converts them. The kernel shell gathers the lanes' values.
template <class S>
struct LossRowBody {
  using C = typename ElemIo<S>::C;
  using V = simd::Scalar<C>;
  using Rows = RowBody<S, ops::LogSoftmax>;  // the row walk and element reads (a = x, o = dx)
  using Row = typename Rows::Row;
  static constexpr int kStats = 4;  // doubles per row of the stats pass: row_losses::RowStats

  struct Lane {
    math::rows::Kahan<V> sum;           // exp(x - m) over the elements below m
    math::rows::Kahan<V, true> smooth;  // w_j (m - x_j): a -inf logit's +inf term stays +inf
    C count = C(0);                     // the elements equal to m (their exp is 1 exactly: log_count_sum)
  };
  // Lane l's sums after the row's max m (finite); smooth: whether the smoothing sum is wanted, with the
  // weights w(i) where weighted, else 1 (a weight of 0 adds 0, also beside a -inf logit).
  template <class W>
  FASTACT_HD static Lane lane_sums(const Row& r, int l, C m, bool smooth, bool weighted, W w) {
    Lane acc;
    const V vm(m);
    const i64 padded = (r.len + kWarp - 1) / kWarp * kWarp;
    for (i64 i = l; i < padded; i += kWarp) {
      const bool valid = i < r.len;
      const V x = valid ? V(ElemIo<S>::load(r.a[i * r.sa])) : V(-Rows::inf());
      const bool top = x.v == m;
      acc.sum.add(top ? V(C(0)) : math::rows::exp_shifted(x, vm));
      acc.count = acc.count + (top ? C(1) : C(0));
      if (smooth) {
        V d = vm - x;
        if (weighted) {
          const V wv(valid ? w(i) : C(0));
          d = wv.v == C(0) ? V(C(0)) : d * wv;
        }
        acc.smooth.add(valid ? d : V(C(0)));
      }
    }
    return acc;
  }
  // Class probabilities (row.b, row_losses::SoftTargets): class i's weight v_i, from p_i and the class
  // weight w (float64, or null: 1).
  FASTACT_HD static C soft_weight(const Row& r, i64 i, double eps, double K, const double* w) {
    return math::rows::soft_target_weight<C>(double(ElemIo<S>::load(r.b[i * r.sb])), eps, K, w ? w[i] : 1.0);
  }
  // Lane l's share of V = sum_i v_i (math::rows::combine_soft_weights' order).
  FASTACT_HD static double lane_soft_sum(const Row& r, int l, double eps, const double* w) {
    math::rows::Neumaier acc;
    for (i64 i = l; i < r.len; i += kWarp) acc.add(double(soft_weight(r, i, eps, double(r.len), w)));
    return acc.value();
  }
  // The lanes' counts (small integers), added in lane order as the CPU adds them.
  template <class Lanes>
  FASTACT_HD static C combine_count(Lanes lane) {
    C c = C(0);
    for (int j = 0; j < kWarp; ++j) c += lane(j);
    return c;
  }
  // L = log(sum exp(x - m)) from the combined sums (m finite), or for a row whose max is not finite: NaN
  // for a NaN max (max_nan: the row holds a NaN), else 0 (lse = m = +-inf).
  FASTACT_HD static C log_sum(C m, C count, C sum) {
    if (!(m - m == C(0))) return m != m ? m : C(0);
    return math::rows::log_count_sum(count, sum);
  }
  // x_t as a double (0 for an ignored row: t < 0).
  FASTACT_HD static double target_value(const Row& r, i64 t) {
    return t < 0 ? 0.0 : double(ElemIo<S>::load(r.a[t * r.sa]));
  }
  // One gradient element (RowPasses::grad): a p_j - cww, cww = cw w_j (the weight's term).
  FASTACT_HD static void grad_write(const Row& r, i64 i, C m, C L, C a, V cww) {
    const V x(ElemIo<S>::load(r.a[i * r.sa]));
    r.o[i * r.so] = ElemIo<S>::store(math::rows::softmax_gradient(x, V(m), V(L), V(a), cww).v);
  }
  // The target's element, written after the rest of the row (x_t read before any write: dx may be x).
  FASTACT_HD static void target_write(const Row& r, i64 t, C m, C L, double xt, const double* c, const C* w) {
    const double lse = double(m) + double(L), zt = (xt - double(m)) - double(L);
    const V g = math::rows::target_gradient(V(C(zt)), V(C(c[2])), V(C((c[0] - c[2]) + c[1] * lse)),
                                            V(C(c[3])) * V(w ? w[t] : C(1)));
    r.o[t * r.so] = ElemIo<S>::store(g.v);
  }
  // Whether a row is written as zeros (an ignored row with no gradient at all).
  FASTACT_HD static bool zero_row(i64 t, const double* c) {
    return t < 0 && c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0;
  }
};

}  // namespace fastact::cuda
