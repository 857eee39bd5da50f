// The CUDA kernels: thin __global__ shells around the bodies of bodies.h, instantiated for every
// registry op, direction and dtype, and the host launchers that size their grids (plan.h).
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <vector>
#include <stdexcept>
#include <string>

#include "../math/ops.h"
#include "bodies.h"
#include "launch.h"
#include "plan.h"

namespace fastact::cuda {
namespace {

__device__ __forceinline__ Coord coord() {
  return Coord{i64(blockIdx.x), i64(gridDim.x), int(threadIdx.x), int(blockDim.x)};
}

template <class S, class Op, int Dir>
__global__ void __launch_bounds__(kThreads)
    ew_contiguous_kernel(typename EwBody<S, Op, Dir>::Ptrs q, i64 n, Params<typename ElemIo<S>::C> p) {
  EwBody<S, Op, Dir>::contiguous(q, n, p, coord());
}

template <class S, class Op, int Dir>
__global__ void __launch_bounds__(kThreads)
    ew_strided_kernel(typename EwBody<S, Op, Dir>::Ptrs q, Walk w, i64 n, Params<typename ElemIo<S>::C> p) {
  EwBody<S, Op, Dir>::strided(q, w, n, p, coord());
}

template <class S>
__global__ void __launch_bounds__(kThreads) copy_kernel(const S* a, S* o, Walk w, i64 n) {
  copy_strided(a, o, w, n, coord());
}

// Every lane's value, combined by every lane in the order of math::rows::combine_*.
template <class C, bool Inf = false>
__device__ C warp_sum(C v) {
  return math::rows::combine_sum<C, Inf>([&](int j) { return __shfl_sync(0xffffffffu, v, j); });
}
template <class C>
__device__ C warp_max(C v) {
  return math::rows::combine_max<C>([&](int j) { return __shfl_sync(0xffffffffu, v, j); });
}

// A row's sum by chunks, in one warp: chunk ch's partial to lane ch % 32 (math::rows::PartialSums).
template <class C, class LaneSum>
__device__ C chunked_sum(i64 nchunks, int l, LaneSum lane_sum) {
  math::rows::Kahan<simd::Scalar<C>> mine;
  C first = C(0);
  for (i64 ch = 0; ch < nchunks; ++ch) {
    const auto k = lane_sum(ch);
    const C p = warp_sum((k.s - k.c).v);
    if (ch == 0) first = p;
    if (ch % kWarp == l) mine.add(simd::Scalar<C>(p));
  }
  return nchunks == 1 ? first : warp_sum((mine.s - mine.c).v);
}

// One warp per row.
template <class S, class Op>
__global__ void __launch_bounds__(kThreads) row_forward_kernel(RowWalk w, const S* x, S* y) {
  using B = RowBody<S, Op>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = B::lane(c);
  for (i64 r = B::warp(c); r < w.nrows; r += B::warps(c)) {
    const typename B::Row row = B::row(w, r, x, nullptr, y);
    const C m = warp_max(B::lane_max(row, l, 0, row.len));
    const C f = B::finish(chunked_sum<C>(B::chunks(row.len), l, [&](i64 ch) { return B::lane_sum(row, l, m, ch); }));
    for (i64 i = l; i < row.len; i += kWarp) B::write(row, i, m, f);
  }
}

template <class S, class Op>
__global__ void __launch_bounds__(kThreads) row_backward_kernel(RowWalk w, const S* dy, const S* y, S* dx) {
  using B = RowBody<S, Op>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = B::lane(c);
  for (i64 r = B::warp(c); r < w.nrows; r += B::warps(c)) {
    const typename B::Row row = B::row(w, r, dy, y, dx);
    const C s = chunked_sum<C>(B::chunks(row.len), l, [&](i64 ch) { return B::lane_backward_sum(row, l, ch); });
    for (i64 i = l; i < row.len; i += kWarp) B::backward_write(row, i, s);
  }
}

// Split rows (bodies.h split_rows): one warp per (row, chunk) task, then one warp per row to combine.
// f(t, task, lane) for this warp's tasks t = warp, warp + warps, ... of nrows * per_row (per_row = 1: rows).
template <class F>
__device__ void each_task(const RowWalk& w, i64 per_row, F f) {
  const Coord c = coord();
  for (i64 t = c.global() / kWarp; t < w.nrows * per_row; t += c.total() / kWarp)
    f(t, split_task(t, per_row), int(c.thread % kWarp));
}
template <class S>
using WorkspaceOf = RowWorkspace<typename ElemIo<S>::C>;

template <class S, class Op>
__global__ void __launch_bounds__(kThreads) split_chunk_max_kernel(RowWalk w, const S* x, WorkspaceOf<S> ws) {
  using B = RowBody<S, Op>;
  each_task(w, B::chunks(w.len), [&](i64 t, SplitTask k, int l) {
    const typename B::Row row = B::row(w, k.row, x, nullptr, nullptr);
    const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
    const auto m = warp_max(B::lane_max(row, l, begin, end));
    if (l == 0) ws.chunk_max[t] = m;
  });
}

template <class S, class Op>
__global__ void __launch_bounds__(kThreads) split_row_max_kernel(RowWalk w, WorkspaceOf<S> ws) {
  using B = RowBody<S, Op>;
  const i64 nch = B::chunks(w.len);
  each_task(w, 1, [&](i64 r, SplitTask, int l) {
    typename B::V acc(-B::inf());
    for (i64 j = l; j < nch; j += kWarp) acc = math::rows::max_nan(acc, typename B::V(ws.chunk_max[r * nch + j]));
    const auto m = warp_max(acc.v);
    if (l == 0) ws.row_max[r] = m;
  });
}

template <class S, class Op, int Dir>
__global__ void __launch_bounds__(kThreads) split_chunk_sum_kernel(RowWalk w, const S* a, const S* b, WorkspaceOf<S> ws) {
  using B = RowBody<S, Op>;
  each_task(w, B::chunks(w.len), [&](i64 t, SplitTask k, int l) {
    const typename B::Row row = B::row(w, k.row, a, b, nullptr);
    const auto acc = Dir == 0 ? B::lane_sum(row, l, ws.row_max[k.row], k.chunk) : B::lane_backward_sum(row, l, k.chunk);
    const auto p = warp_sum((acc.s - acc.c).v);
    if (l == 0) ws.chunk_sum[t] = p;
  });
}

template <class S, class Op>
__global__ void __launch_bounds__(kThreads) split_row_sum_kernel(RowWalk w, WorkspaceOf<S> ws) {
  using B = RowBody<S, Op>;
  const i64 nch = B::chunks(w.len);
  each_task(w, 1, [&](i64 r, SplitTask, int l) {
    typename B::Kahan mine;  // lane l's chunk partials (math::rows::PartialSums)
    for (i64 j = l; j < nch; j += kWarp) mine.add(typename B::V(ws.chunk_sum[r * nch + j]));
    const auto s = nch == 1 ? ws.chunk_sum[r * nch] : warp_sum((mine.s - mine.c).v);
    if (l == 0) ws.row_sum[r] = s;
  });
}

template <class S, class Op, int Dir>
__global__ void __launch_bounds__(kThreads) split_write_kernel(RowWalk w, const S* a, const S* b, S* o, WorkspaceOf<S> ws) {
  using B = RowBody<S, Op>;
  each_task(w, B::chunks(w.len), [&](i64, SplitTask k, int l) {
    const typename B::Row row = B::row(w, k.row, a, b, o);
    const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
    if (Dir == 0) {
      const auto m = ws.row_max[k.row], f = B::finish(ws.row_sum[k.row]);
      for (i64 i = begin + l; i < end; i += kWarp) B::write(row, i, m, f);
    } else {
      const auto s = ws.row_sum[k.row];
      for (i64 i = begin + l; i < end; i += kWarp) B::backward_write(row, i, s);
    }
  });
}

// Reductions (bodies.h ReduceBody): a warp per (reduced element, chunk) task. One chunk: its sum is the
// element's; several: the chunks' partials go to `partials` for reduce_finish_kernel.
template <class S, class Op, int Dir, class R>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(typename ReduceBody<S, Op, Dir, R>::Ptrs q, ReduceWalk w, Params<typename ElemIo<S>::C> p,
                  typename ElemIo<S>::C* partials) {
  using B = ReduceBody<S, Op, Dir, R>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = c.thread % kWarp;
  for (i64 t = c.global() / kWarp; t < w.J * w.nchunks; t += c.total() / kWarp) {
    const SplitTask k = split_task(t, w.nchunks);
    const typename B::Kahan acc = B::lane_sum(q, w, k.row, k.chunk, l, p);
    const C s = warp_sum<C, true>((acc.s - acc.c).v);
    if (l == 0) {
      if (w.nchunks == 1) q.red[reduced_offset(w, k.row)] = B::store(s);
      else partials[t] = s;
    }
  }
}

// A warp per reduced element: its chunks' partials, partial q to lane q % 32 (math::rows::PartialSums);
// no chunks at all (an empty sum): 0.
template <class S, class Op, int Dir, class R>
__global__ void __launch_bounds__(kThreads)
    reduce_finish_kernel(R* red, ReduceWalk w, const typename ElemIo<S>::C* partials) {
  using B = ReduceBody<S, Op, Dir, R>;
  using C = typename ElemIo<S>::C;
  using V = simd::Scalar<C>;
  const Coord c = coord();
  const int l = c.thread % kWarp;
  for (i64 j = c.global() / kWarp; j < w.J; j += c.total() / kWarp) {
    math::rows::Kahan<V, true> mine;
    for (i64 ch = l; ch < w.nchunks; ch += kWarp) mine.add(V(partials[j * w.nchunks + ch]));
    const C s = warp_sum<C, true>((mine.s - mine.c).v);
    if (l == 0) red[reduced_offset(w, j)] = B::store(w.nchunks == 0 ? C(0) : s);
  }
}

template <class S>
__global__ void total_finish_kernel(const double* total, bool mean, i64 n, S* out) {
  *out = finish_total<S>(*total, mean, n);
}

template <class S>
__global__ void __launch_bounds__(kThreads) store_values_kernel(const double* v, i64 n, S* out) {
  const Coord c = coord();
  for (i64 i = c.global(); i < n; i += c.total()) out[i] = from_double<S>(v[i]);
}

// The row losses' passes (bodies.h LossRowBody): a warp per row.
template <class S>
struct LossRows {
  using B = LossRowBody<S>;
  using C = typename B::C;
  // The row's max m and L = log(sum exp(x - m)) (lane l's sums, combined); with smooth, a too (weights
  // w(i) where weighted).
  template <class W>
  __device__ static void stats(const typename B::Row& row, int l, bool smooth, bool weighted, W w, C& m, C& L, C& a) {
    m = warp_max(B::Rows::lane_max(row, l, 0, row.len));
    a = C(0);
    if (!(m - m == C(0))) {
      L = B::log_sum(m, C(0), C(0));
      if (smooth) a = m - m;  // NaN: log_softmax is NaN or -inf somewhere
      return;
    }
    const typename B::Lane acc = B::lane_sums(row, l, m, smooth, weighted, w);
    const C s = warp_sum((acc.sum.s - acc.sum.c).v);
    const C count = B::combine_count([&](int j) { return __shfl_sync(0xffffffffu, acc.count, j); });
    if (smooth) a = warp_sum<C, true>((acc.smooth.s - acc.smooth.c).v);
    L = B::log_sum(m, count, s);
  }
  __device__ static void stats(const typename B::Row& row, int l, C& m, C& L) {
    C a;
    stats(row, l, false, false, [](i64) { return C(1); }, m, L, a);
  }
  // V = sum of the row's soft-target weights (every lane gets it).
  __device__ static double soft_sum(const typename B::Row& row, int l, double eps, const double* w) {
    const double mine = B::lane_soft_sum(row, l, eps, w);
    return math::rows::combine_soft_weights([&](int j) { return __shfl_sync(0xffffffffu, mine, j); });
  }
};

template <class S>
__global__ void __launch_bounds__(kThreads)
    loss_stats_kernel(RowWalk w, const S* x, const i64* target, const typename ElemIo<S>::C* weight, bool smooth,
                      double* st) {
  using B = LossRowBody<S>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = B::Rows::lane(c);
  for (i64 r = B::Rows::warp(c); r < w.nrows; r += B::Rows::warps(c)) {
    const typename B::Row row = B::Rows::row(w, r, x, nullptr, nullptr);
    const double xt = B::target_value(row, target ? target[r] : -1);
    C m, L, a;
    LossRows<S>::stats(row, l, smooth, weight != nullptr, [&](i64 i) { return weight[i]; }, m, L, a);
    if (l == 0) {
      double* o = st + B::kStats * r;
      o[0] = double(m), o[1] = double(L), o[2] = double(a), o[3] = xt;
    }
  }
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    loss_grad_kernel(RowWalk w, const S* x, S* dx, const i64* target, const typename ElemIo<S>::C* weight,
                     const double* coef) {
  using B = LossRowBody<S>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = B::Rows::lane(c);
  for (i64 r = B::Rows::warp(c); r < w.nrows; r += B::Rows::warps(c)) {
    const typename B::Row row = B::Rows::row(w, r, x, nullptr, dx);
    const i64 t = target ? target[r] : -1;
    const double* k = coef + 4 * r;
    if (B::zero_row(t, k)) {
      for (i64 i = l; i < row.len; i += kWarp) row.o[i * row.so] = S{};
      continue;
    }
    const double xt = B::target_value(row, t);
    C m, L;
    LossRows<S>::stats(row, l, m, L);
    const double lse = double(m) + double(L);
    const C va = C(k[0] + k[1] * lse), cw = C(k[3]);
    __syncwarp();  // every lane has read x_t and its sums before any writes (dx may be x)
    for (i64 i = l; i < row.len; i += kWarp)
      B::grad_write(row, i, m, L, va, weight ? typename B::V(cw) * typename B::V(weight[i]) : typename B::V(cw));
    __syncwarp();
    if (t >= 0 && l == 0) B::target_write(row, t, m, L, xt, k, weight);
  }
}

// Class probabilities (row.b = p): per row the stats with v as the smoothing weights, and V.
template <class S>
__global__ void __launch_bounds__(kThreads)
    prob_stats_kernel(RowWalk w, const S* x, const S* p, const double* weight, double eps, double* st, double* V) {
  using B = LossRowBody<S>;
  using C = typename B::C;
  const Coord c = coord();
  const int l = B::Rows::lane(c);
  const double K = double(w.len);
  for (i64 r = B::Rows::warp(c); r < w.nrows; r += B::Rows::warps(c)) {
    const typename B::Row row = B::Rows::row(w, r, x, p, nullptr);
    const double v = LossRows<S>::soft_sum(row, l, eps, weight);
    C m, L, a;
    LossRows<S>::stats(row, l, true, true, [&](i64 i) { return B::soft_weight(row, i, eps, K, weight); }, m, L, a);
    if (l == 0) {
      double* o = st + B::kStats * r;
      o[0] = double(m), o[1] = double(L), o[2] = double(a), o[3] = 0.0;
      V[r] = v;
    }
  }
}

// Their gradient: dx = g ((V + 2 z lse) p - v) per row, the CPU's coefficients.
template <class S>
__global__ void __launch_bounds__(kThreads) prob_grad_kernel(RowWalk w, const S* x, const S* p, S* dx,
                                                             const double* weight, double eps, double z,
                                                             const double* g) {
  using B = LossRowBody<S>;
  using C = typename B::C;
  using V = typename B::V;
  const Coord c = coord();
  const int l = B::Rows::lane(c);
  const double K = double(w.len);
  for (i64 r = B::Rows::warp(c); r < w.nrows; r += B::Rows::warps(c)) {
    const typename B::Row row = B::Rows::row(w, r, x, p, dx);
    const double v = LossRows<S>::soft_sum(row, l, eps, weight);
    C m, L;
    LossRows<S>::stats(row, l, m, L);
    const double lse = double(m) + double(L), c0 = g[r] * v, c1 = g[r] * (2 * z);
    const C va = C(c0 + c1 * lse), cw = C(g[r]);
    __syncwarp();  // every lane has read its sums before any writes (dx may be x)
    for (i64 i = l; i < row.len; i += kWarp) B::grad_write(row, i, m, L, va, V(cw) * V(B::soft_weight(row, i, eps, K, weight)));
  }
}

// nll: x_t per row, a thread per row.
template <class S>
__global__ void __launch_bounds__(kThreads) loss_gather_kernel(RowWalk w, const S* x, const i64* target, double* xt) {
  using B = LossRowBody<S>;
  const Coord c = coord();
  for (i64 r = c.global(); r < w.nrows; r += c.total())
    xt[r] = B::target_value(B::Rows::row(w, r, x, nullptr, nullptr), target[r]);
}

// nll's gradient: zeros but value[r] at each counted row's target, a warp per row.
template <class S>
__global__ void __launch_bounds__(kThreads) loss_scatter_kernel(RowWalk w, S* dx, const i64* target, const double* value) {
  using B = LossRowBody<S>;
  const Coord c = coord();
  const int l = B::Rows::lane(c);
  for (i64 r = B::Rows::warp(c); r < w.nrows; r += B::Rows::warps(c)) {
    const typename B::Row row = B::Rows::row(w, r, dx, nullptr, dx);
    for (i64 i = l; i < row.len; i += kWarp) row.o[i * row.so] = S{};
    __syncwarp();
    if (l == 0 && target[r] >= 0) row.o[target[r] * row.so] = from_double<S>(value[r]);
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("fastact CUDA: ") + what + ": " + cudaGetErrorString(e));
}

int sm_count(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices] = {};  // written by calls that have released the GIL
  if (device >= 0 && device < kMaxDevices) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  check(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  if (device >= 0 && device < kMaxDevices) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

struct EwArgs {
  const void* in[kMaxOps];  // the op's inputs in its direction, then its outputs
  void* out[kMaxOps];
  const EwPlan* plan;
  const double* params;
  cudaStream_t stream;
  int sms;
};
using EwLauncher = void (*)(const EwArgs&);

template <class S, class Op, int Dir>
void launch_ew(const EwArgs& x) {
  using B = EwBody<S, Op, Dir>;
  const auto p = to_params<typename B::C>(x.params);
  typename B::Ptrs q;
  for (int k = 0; k < B::NI; ++k) q.in[k] = static_cast<const S*>(x.in[k]);
  for (int k = 0; k < B::NO; ++k) q.out[k] = static_cast<S*>(x.out[k]);
  if (x.plan->contiguous) {
    const Grid g = grid_for(B::items(x.plan->n), kThreads, x.sms);
    ew_contiguous_kernel<S, Op, Dir><<<unsigned(g.blocks), g.threads, 0, x.stream>>>(q, x.plan->n, p);
  } else {
    const Grid g = grid_for(x.plan->n, kThreads, x.sms);
    ew_strided_kernel<S, Op, Dir><<<unsigned(g.blocks), g.threads, 0, x.stream>>>(q, x.plan->walk, x.plan->n, p);
  }
}

struct RowArgs {
  const void *a, *b;
  void* o;
  const RowWalk* walk;
  cudaStream_t stream;
  int sms;
};
using RowLauncher = void (*)(const RowArgs&);

template <class S, class Op, int Dir>
void launch_split_rows(const RowArgs& x) {
  using C = typename ElemIo<S>::C;
  const RowWalk& w = *x.walk;
  const S* a = static_cast<const S*>(x.a);
  const S* b = static_cast<const S*>(x.b);
  void* base = nullptr;
  check(cudaMallocAsync(&base, std::size_t(RowWorkspace<C>::elements(w)) * sizeof(C), x.stream),
        "cudaMallocAsync (softmax workspace)");
  const auto ws = RowWorkspace<C>::at(static_cast<C*>(base), w);
  const Grid tasks = grid_for(w.nrows * RowBody<S, Op>::chunks(w.len) * kWarp, kThreads, x.sms);
  const Grid rows = row_grid(w.nrows, x.sms);
  const auto go = [&](auto kernel, Grid g, auto... args) {
    kernel<<<unsigned(g.blocks), g.threads, 0, x.stream>>>(args...);
  };
  if (Dir == 0) {
    go(split_chunk_max_kernel<S, Op>, tasks, w, a, ws);
    go(split_row_max_kernel<S, Op>, rows, w, ws);
  }
  go(split_chunk_sum_kernel<S, Op, Dir>, tasks, w, a, b, ws);
  go(split_row_sum_kernel<S, Op>, rows, w, ws);
  go(split_write_kernel<S, Op, Dir>, tasks, w, a, b, static_cast<S*>(x.o), ws);
  check(cudaFreeAsync(base, x.stream), "cudaFreeAsync (softmax workspace)");
}

template <class S, class Op, int Dir>
void launch_row(const RowArgs& x) {
  if (split_rows(*x.walk, x.sms)) return launch_split_rows<S, Op, Dir>(x);
  const Grid g = row_grid(x.walk->nrows, x.sms);
  if (Dir == 0)
    row_forward_kernel<S, Op><<<unsigned(g.blocks), g.threads, 0, x.stream>>>(*x.walk, static_cast<const S*>(x.a),
                                                                              static_cast<S*>(x.o));
  else
    row_backward_kernel<S, Op><<<unsigned(g.blocks), g.threads, 0, x.stream>>>(
        *x.walk, static_cast<const S*>(x.a), static_cast<const S*>(x.b), static_cast<S*>(x.o));
}

struct ReduceArgs {
  const void* in[kMaxOps];
  void* out[kMaxOps];
  void* red;
  const ReduceWalk* walk;
  const double* params;
  cudaStream_t stream;
  int sms;
  bool mean;  // a total: divided by the element count
};
using ReduceLauncher = void (*)(const ReduceArgs&);

template <class S, class Op, int Dir = kBackwardX, class R = S>
void launch_reduce(const ReduceArgs& x) {
  using B = ReduceBody<S, Op, Dir, R>;
  using C = typename B::C;
  const ReduceWalk& w = *x.walk;
  typename B::Ptrs q;
  for (int k = 0; k < B::NI; ++k) q.in[k] = static_cast<const S*>(x.in[k]);
  for (int k = 0; k < B::NS; ++k) q.out[k] = static_cast<S*>(x.out[k]);
  q.red = static_cast<R*>(x.red);
  void* partials = nullptr;
  if (w.nchunks > 1)
    check(cudaMallocAsync(&partials, std::size_t(w.J * w.nchunks) * sizeof(C), x.stream),
          "cudaMallocAsync (reduction partials)");
  if (w.nchunks > 0) {
    const Grid g = grid_for(w.J * w.nchunks * kWarp, kThreads, x.sms);
    reduce_kernel<S, Op, Dir, R><<<unsigned(g.blocks), g.threads, 0, x.stream>>>(q, w, to_params<C>(x.params),
                                                                                  static_cast<C*>(partials));
  }
  if (w.nchunks != 1) {
    const Grid g = grid_for(w.J * kWarp, kThreads, x.sms);
    reduce_finish_kernel<S, Op, Dir, R>
        <<<unsigned(g.blocks), g.threads, 0, x.stream>>>(q.red, w, static_cast<const C*>(partials));
  }
  if (partials) check(cudaFreeAsync(partials, x.stream), "cudaFreeAsync (reduction partials)");
}

// A summed loss's total (Op = ops::SummedLoss<L>): the reduction to one float64, then its mean and rounding
// into out (x.out[0]: one element of S).
template <class S, class Op>
void launch_total(const ReduceArgs& x) {
  void* total = nullptr;
  check(cudaMallocAsync(&total, sizeof(double), x.stream), "cudaMallocAsync (a loss's total)");
  check(cudaMemsetAsync(total, 0, sizeof(double), x.stream), "cudaMemsetAsync (a loss's total)");
  ReduceArgs y = x;
  y.red = total;
  launch_reduce<S, Op, kForward, double>(y);
  total_finish_kernel<S><<<1, 1, 0, x.stream>>>(static_cast<const double*>(total), x.mean, x.walk->L,
                                                static_cast<S*>(x.out[0]));
  check(cudaFreeAsync(total, x.stream), "cudaFreeAsync (a loss's total)");
}

// Launcher tables, filled from the registry as the CPU kernel tables are.
struct Tables {
  EwLauncher ew[int(ElementwiseOp::count)][kNumDirections][kNumDtypes] = {};
  ReduceLauncher reduce[int(ElementwiseOp::count)][kNumDtypes] = {};  // ops with a reduced backward output
  ReduceLauncher total[int(ElementwiseOp::count)][kNumDtypes] = {};   // the summed losses
  RowLauncher row[int(RowOp::count)][2][kNumDtypes] = {};
};



template <class Op, int Dir>
void fill_dtypes(EwLauncher (&t)[kNumDtypes]) {
  t[kF32] = launch_ew<float, Op, Dir>;
  t[kF64] = launch_ew<double, Op, Dir>;
  t[kF16] = launch_ew<half, Op, Dir>;
  t[kBF16] = launch_ew<bfloat16, Op, Dir>;
}

template <class Op, BackwardFrom From>
void fill_ew(EwLauncher (&t)[kNumDirections][kNumDtypes]) {
  fill_dtypes<Op, kForward>(t[kForward]);
  if constexpr (From != BackwardFrom::FromY) fill_dtypes<Op, kBackwardX>(t[kBackwardX]);
  if constexpr (From != BackwardFrom::FromX) fill_dtypes<Op, kBackwardY>(t[kBackwardY]);
}

// An op with a broadcast operand: its forward element-wise, its backward a reduction.
template <class Op>
void fill_broadcast(EwLauncher (&ew)[kNumDirections][kNumDtypes], ReduceLauncher (&red)[kNumDtypes]) {
  fill_dtypes<Op, kForward>(ew[kForward]);
  red[kF32] = launch_reduce<float, Op>;
  red[kF64] = launch_reduce<double, Op>;
  red[kF16] = launch_reduce<half, Op>;
  red[kBF16] = launch_reduce<bfloat16, Op>;
}

template <class Op>
void fill_total(ReduceLauncher (&t)[kNumDtypes]) {
  t[kF32] = launch_total<float, Op>;
  t[kF64] = launch_total<double, Op>;
  t[kF16] = launch_total<half, Op>;
  t[kBF16] = launch_total<bfloat16, Op>;
}

template <class Op, int Dir>
void fill_row_dtypes(RowLauncher (&t)[kNumDtypes]) {
  t[kF32] = launch_row<float, Op, Dir>;
  t[kF64] = launch_row<double, Op, Dir>;
  t[kF16] = launch_row<half, Op, Dir>;
  t[kBF16] = launch_row<bfloat16, Op, Dir>;
}

const Tables& tables() {
  static const Tables t = [] {
    Tables k;
#define FASTACT_FILL_EW(name, Op, from, ...) fill_ew<ops::Op, BackwardFrom::from>(k.ew[int(ElementwiseOp::name)]);
#define FASTACT_FILL_GATED(name, Act, which, ...) \
  fill_ew<ops::Gated<ops::Act, ops::Gate::which>, BackwardFrom::FromX>(k.ew[int(ElementwiseOp::name)]);
#define FASTACT_FILL_ROW(name, Op, ...)                         \
  fill_row_dtypes<ops::Op, 0>(k.row[int(RowOp::name)][0]); \
  fill_row_dtypes<ops::Op, 1>(k.row[int(RowOp::name)][1]);
#define FASTACT_FILL_BROADCAST(name, Op, ...) \
  fill_broadcast<ops::Op>(k.ew[int(ElementwiseOp::name)], k.reduce[int(ElementwiseOp::name)]);
#define FASTACT_FILL_BIAS_ACT(name, Op, ...) \
  fill_broadcast<ops::BiasAct<ops::Op>>(k.ew[int(ElementwiseOp::bias_act_##name)], k.reduce[int(ElementwiseOp::bias_act_##name)]);
    FASTACT_ELEMENTWISE_OPS(FASTACT_FILL_EW)
    FASTACT_GATED_OPS(FASTACT_FILL_GATED)
    FASTACT_BROADCAST_OPS(FASTACT_FILL_BROADCAST)
    FASTACT_ELEMENTWISE_OPS(FASTACT_FILL_BIAS_ACT)
    FASTACT_ROW_OPS(FASTACT_FILL_ROW)
#define FASTACT_FILL_LOSS(name, L, ...)                                                 \
  fill_ew<ops::LossOp<ops::L>, BackwardFrom::FromX>(k.ew[int(ElementwiseOp::name)]); \
  fill_total<ops::SummedLoss<ops::L>>(k.total[int(ElementwiseOp::summed_##name)]);
    FASTACT_LOSS_OPS(FASTACT_FILL_LOSS)
#undef FASTACT_FILL_LOSS
#undef FASTACT_FILL_BROADCAST
#undef FASTACT_FILL_BIAS_ACT
#undef FASTACT_FILL_EW
#undef FASTACT_FILL_GATED
#undef FASTACT_FILL_ROW
    return k;
  }();
  return t;
}

// A launch's operands: their pointers into the launcher's arguments (x.out, x.in), their strides into
// strides (the outputs first, then the inputs).
template <class Args>
void take_operands(Args& x, const std::int64_t** strides, int nout, const Operand* outs, int nin, const Operand* ins) {
  for (int k = 0; k < nout; ++k) {
    strides[k] = outs[k].strides;
    x.out[k] = const_cast<void*>(outs[k].data);
  }
  for (int k = 0; k < nin; ++k) {
    strides[nout + k] = ins[k].strides;
    x.in[k] = ins[k].data;
  }
}

// The rest of a launch's arguments, then the launch on `device` (made current for it).
template <class Args>
void run_launch(void (*launch)(const Args&), Args& x, const double* params, std::uintptr_t stream, int device) {
  DeviceScope scope(device);
  x.params = params;
  x.stream = reinterpret_cast<cudaStream_t>(stream);
  x.sms = sm_count(device);
  launch(x);
  check(cudaGetLastError(), "kernel launch");
}

void check_index(int op, int count, int dir, int ndir, int dtype) {
  if (op < 0 || op >= count || dir < 0 || dir >= ndir || dtype < 0 || dtype >= kNumDtypes)
    throw std::invalid_argument("fastact CUDA: no such op, direction or dtype");
}

// Host values a launch reads, in one device allocation freed (stream-ordered) when the launch is queued.
class Uploads {
 public:
  Uploads(cudaStream_t s) : stream_(s) {}
  ~Uploads() {
    if (base_) cudaFreeAsync(base_, stream_);
  }
  // Reserves room for n elements of T (16-byte aligned) copied from host by upload(): a handle for at()
  // (0, whose at() is null, where host is null).
  template <class T>
  std::size_t add(const T* host, i64 n) {
    if (!host) return 0;
    const std::size_t at = (size_ + 15) / 16 * 16;
    parts_.push_back({host, at, std::size_t(n) * sizeof(T)});
    size_ = at + std::size_t(n) * sizeof(T);
    return at + 1;
  }
  void upload() {
    if (size_ == 0) return;
    check(cudaMallocAsync(&base_, size_, stream_), "cudaMallocAsync (a loss's per-row values)");
    // (from pageable memory: the call returns once the host values are staged, so they may go next)
    for (const Part& p : parts_)
      if (p.bytes) check(cudaMemcpyAsync(static_cast<char*>(base_) + p.at, p.host, p.bytes, cudaMemcpyHostToDevice, stream_),
                         "cudaMemcpyAsync (a loss's per-row values)");
  }
  template <class T>
  const T* at(std::size_t handle) const {
    return handle ? reinterpret_cast<const T*>(static_cast<const char*>(base_) + (handle - 1)) : nullptr;
  }

 private:
  struct Part {
    const void* host;
    std::size_t at, bytes;
  };
  cudaStream_t stream_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  std::vector<Part> parts_;
};

// The CUDA row passes of the row losses (row_losses::RowPasses) over rows along the last axis.
template <class S>
class GpuRows final : public row_losses::RowPasses {
  using C = typename ElemIo<S>::C;

 public:
  GpuRows(const RowWalk& w, const void* x, const void* p, void* dx, cudaStream_t stream, int sms)
      : w_(w), x_(static_cast<const S*>(x)), p_(static_cast<const S*>(p)), dx_(static_cast<S*>(dx)), stream_(stream),
        sms_(sms) {}

  void stats(const std::int64_t* target, const double* weight, bool smooth, row_losses::RowStats* st) override {
    if (w_.nrows == 0) return;
    static_assert(sizeof(row_losses::RowStats) == LossRowBody<S>::kStats * sizeof(double), "four doubles per row");
    if (w_.len == 0) {
      for (i64 r = 0; r < w_.nrows; ++r) st[r] = {-HUGE_VAL, 0.0, 0.0, 0.0};
      return;
    }
    const std::vector<C> wc = weights(weight);
    Uploads up(stream_);
    const std::size_t t = up.add(target, w_.nrows), wd = up.add(weight ? wc.data() : nullptr, w_.len);
    up.upload();
    void* out = nullptr;
    const std::size_t bytes = std::size_t(w_.nrows) * sizeof(row_losses::RowStats);
    check(cudaMallocAsync(&out, bytes, stream_), "cudaMallocAsync (the rows' stats)");
    loss_stats_kernel<S><<<blocks(), kThreads, 0, stream_>>>(w_, x_, up.at<i64>(t), up.at<C>(wd), smooth,
                                                              static_cast<double*>(out));
    check(cudaGetLastError(), "kernel launch");
    check(cudaMemcpyAsync(st, out, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (the rows' stats)");
    check(cudaFreeAsync(out, stream_), "cudaFreeAsync (the rows' stats)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  void grad(const std::int64_t* target, const double* weight, const double* coef) override {
    if (w_.nrows == 0) return;
    if (w_.len == 0) return;
    const std::vector<C> wc = weights(weight);
    Uploads up(stream_);
    const std::size_t t = up.add(target, w_.nrows), wd = up.add(weight ? wc.data() : nullptr, w_.len),
                      k = up.add(coef, 4 * w_.nrows);
    up.upload();
    loss_grad_kernel<S><<<blocks(), kThreads, 0, stream_>>>(w_, x_, dx_, up.at<i64>(t), up.at<C>(wd), up.at<double>(k));
    check(cudaGetLastError(), "kernel launch");
  }
  void gather(const std::int64_t* target, double* xt) override {
    if (w_.nrows == 0) return;
    Uploads up(stream_);
    const std::size_t t = up.add(target, w_.nrows);
    up.upload();
    void* out = nullptr;
    const std::size_t bytes = std::size_t(w_.nrows) * sizeof(double);
    check(cudaMallocAsync(&out, bytes, stream_), "cudaMallocAsync (the targets' values)");
    loss_gather_kernel<S><<<unsigned(grid_for(w_.nrows, kThreads, sms_).blocks), kThreads, 0, stream_>>>(
        w_, x_, up.at<i64>(t), static_cast<double*>(out));
    check(cudaGetLastError(), "kernel launch");
    check(cudaMemcpyAsync(xt, out, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (the targets' values)");
    check(cudaFreeAsync(out, stream_), "cudaFreeAsync (the targets' values)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  void prob_stats(const double* weight, double eps, row_losses::RowStats* st, double* V) override {
    if (w_.nrows == 0) return;
    Uploads up(stream_);
    const std::size_t wd = up.add(weight, w_.len);
    up.upload();
    void* out = nullptr;
    const std::size_t bytes = std::size_t(w_.nrows) * (sizeof(row_losses::RowStats) + sizeof(double));
    check(cudaMallocAsync(&out, bytes, stream_), "cudaMallocAsync (the rows' stats)");
    double* dst = static_cast<double*>(out);
    prob_stats_kernel<S><<<blocks(), kThreads, 0, stream_>>>(w_, x_, p_, up.at<double>(wd), eps, dst,
                                                             dst + LossRowBody<S>::kStats * w_.nrows);
    check(cudaGetLastError(), "kernel launch");
    check(cudaMemcpyAsync(st, dst, std::size_t(w_.nrows) * sizeof(row_losses::RowStats), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (the rows' stats)");
    check(cudaMemcpyAsync(V, dst + LossRowBody<S>::kStats * w_.nrows, std::size_t(w_.nrows) * sizeof(double),
                          cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (the rows' stats)");
    check(cudaFreeAsync(out, stream_), "cudaFreeAsync (the rows' stats)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  void prob_grad(const double* weight, double eps, double z, const double* g) override {
    if (w_.nrows == 0) return;
    Uploads up(stream_);
    const std::size_t wd = up.add(weight, w_.len), gd = up.add(g, w_.nrows);
    up.upload();
    prob_grad_kernel<S><<<blocks(), kThreads, 0, stream_>>>(w_, x_, p_, dx_, up.at<double>(wd), eps, z, up.at<double>(gd));
    check(cudaGetLastError(), "kernel launch");
  }
  void scatter(const std::int64_t* target, const double* value) override {
    if (w_.nrows == 0) return;
    if (w_.len == 0) return;
    Uploads up(stream_);
    const std::size_t t = up.add(target, w_.nrows), v = up.add(value, w_.nrows);
    up.upload();
    loss_scatter_kernel<S><<<blocks(), kThreads, 0, stream_>>>(w_, dx_, up.at<i64>(t), up.at<double>(v));
    check(cudaGetLastError(), "kernel launch");
  }

 private:
  std::vector<C> weights(const double* weight) const {  // in the compute type, as the CPU converts them
    std::vector<C> wc;
    if (weight) wc.assign(weight, weight + w_.len);
    return wc;
  }
  unsigned blocks() const { return unsigned(row_grid(w_.nrows, sms_).blocks); }
  RowWalk w_;
  const S *x_, *p_;
  S* dx_;
  cudaStream_t stream_;
  int sms_;
};

// f(rows) with the row passes of dtype over rows along the last axis of shape (x and dx with their
// strides; either may be absent), on device.
template <class F>
void with_rows(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
               std::uintptr_t stream, int device, F f, Operand p = {nullptr, nullptr}) {
  if (ndim < 1) throw std::invalid_argument("fastact CUDA: the row losses take at least one dimension");
  if (dtype < 0 || dtype >= kNumDtypes) throw std::invalid_argument("fastact CUDA: no such dtype");
  const std::int64_t* sa = x.data ? x.strides : dx_strides;
  const RowWalk w = plan_rows(ndim, shape, ndim - 1, dx ? dx_strides : sa, sa, p.data ? p.strides : nullptr);
  DeviceScope scope(device);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const int sms = sm_count(device);
  switch (dtype) {
    case kF32: { GpuRows<float> r(w, x.data, p.data, dx, s, sms); return f(r); }
    case kF64: { GpuRows<double> r(w, x.data, p.data, dx, s, sms); return f(r); }
    case kF16: { GpuRows<half> r(w, x.data, p.data, dx, s, sms); return f(r); }
    default: { GpuRows<bfloat16> r(w, x.data, p.data, dx, s, sms); return f(r); }
  }
}

std::int64_t rows_of(int ndim, const std::int64_t* shape) {
  std::int64_t n = 1;
  for (int i = 0; i + 1 < ndim; ++i) n *= shape[i];
  return n;
}

}  // namespace

double cross_entropy(int dtype, int ndim, const std::int64_t* shape, Operand x, const row_losses::CrossEntropy& ce,
                     bool nll, double* per_row, std::uintptr_t stream, int device) {
  double v = 0;
  with_rows(dtype, ndim, shape, x, nullptr, nullptr, stream, device, [&](row_losses::RowPasses& rows) {
    v = nll ? row_losses::nll(rows, ce, rows_of(ndim, shape), shape[ndim - 1], per_row)
            : row_losses::cross_entropy(rows, ce, rows_of(ndim, shape), shape[ndim - 1], per_row);
  });
  return v;
}

void cross_entropy_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx,
                            const std::int64_t* dx_strides, const row_losses::CrossEntropy& ce, bool nll,
                            const double* grad, std::uintptr_t stream, int device) {
  with_rows(dtype, ndim, shape, x, dx, dx_strides, stream, device, [&](row_losses::RowPasses& rows) {
    if (nll) row_losses::nll_backward(rows, ce, rows_of(ndim, shape), shape[ndim - 1], grad);
    else row_losses::cross_entropy_backward(rows, ce, rows_of(ndim, shape), shape[ndim - 1], grad);
  });
}

double cross_entropy_probs(int dtype, int ndim, const std::int64_t* shape, Operand x, Operand p,
                           const row_losses::SoftTargets& st, double* per_row, std::uintptr_t stream, int device) {
  double v = 0;
  with_rows(dtype, ndim, shape, x, nullptr, nullptr, stream, device, [&](row_losses::RowPasses& rows) {
    v = row_losses::cross_entropy_probs(rows, st, rows_of(ndim, shape), shape[ndim - 1], per_row);
  }, p);
  return v;
}

void cross_entropy_probs_backward(int dtype, int ndim, const std::int64_t* shape, Operand x, Operand p, void* dx,
                                  const std::int64_t* dx_strides, const row_losses::SoftTargets& st, const double* grad,
                                  std::uintptr_t stream, int device) {
  with_rows(dtype, ndim, shape, x, dx, dx_strides, stream, device, [&](row_losses::RowPasses& rows) {
    row_losses::cross_entropy_probs_backward(rows, st, rows_of(ndim, shape), shape[ndim - 1], grad);
  }, p);
}

void logsumexp(int dtype, int ndim, const std::int64_t* shape, Operand x, double* lse, std::uintptr_t stream,
               int device) {
  with_rows(dtype, ndim, shape, x, nullptr, nullptr, stream, device,
            [&](row_losses::RowPasses& rows) { row_losses::logsumexp(rows, rows_of(ndim, shape), lse); });
}

void loss_grad(int dtype, int ndim, const std::int64_t* shape, Operand x, void* dx, const std::int64_t* dx_strides,
               const double* coef, std::uintptr_t stream, int device) {
  with_rows(dtype, ndim, shape, x, dx, dx_strides, stream, device,
            [&](row_losses::RowPasses& rows) { rows.grad(nullptr, nullptr, coef); });
}

void store_values(int dtype, std::int64_t n, const double* values, void* out, std::uintptr_t stream, int device) {
  if (dtype < 0 || dtype >= kNumDtypes) throw std::invalid_argument("fastact CUDA: no such dtype");
  if (n <= 0) return;
  DeviceScope scope(device);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  Uploads up(s);
  const std::size_t v = up.add(values, n);
  up.upload();
  const unsigned blocks = unsigned(grid_for(n, kThreads, sm_count(device)).blocks);
  const double* dv = up.at<double>(v);
  switch (dtype) {
    case kF32: store_values_kernel<float><<<blocks, kThreads, 0, s>>>(dv, n, static_cast<float*>(out)); break;
    case kF64: store_values_kernel<double><<<blocks, kThreads, 0, s>>>(dv, n, static_cast<double*>(out)); break;
    case kF16: store_values_kernel<half><<<blocks, kThreads, 0, s>>>(dv, n, static_cast<half*>(out)); break;
    default: store_values_kernel<bfloat16><<<blocks, kThreads, 0, s>>>(dv, n, static_cast<bfloat16*>(out)); break;
  }
  check(cudaGetLastError(), "kernel launch");
}

void total(int op, int dtype, int ndim, const std::int64_t* shape, int nin, const Operand* ins, const double* params,
           bool mean, void* out, std::uintptr_t stream, int device) {
  check_index(op, int(ElementwiseOp::count), kForward, kNumDirections, dtype);
  const ReduceLauncher launch = tables().total[op][dtype];
  if (!launch) throw std::invalid_argument("fastact CUDA: this op is not a summed loss");
  if (nin < 1 || nin + 1 > kMaxOps) throw std::invalid_argument("fastact CUDA: bad operand counts");
  const std::int64_t one = 1, zero = 0;
  std::int64_t ones[layout::kMaxDims], zeros[layout::kMaxDims] = {};
  for (auto& v : ones) v = 1;
  Operand in0[kMaxOps];
  if (ndim == 0) {  // one element, as a 1-d run (as the CPU's run_total)
    for (int i = 0; i < nin; ++i) in0[i] = {ins[i].data, &zero};
    ins = in0;
    shape = &one;
    ndim = 1;
  }
  if (ndim > layout::kMaxDims) throw std::invalid_argument("fastact CUDA: too many dimensions");
  const std::int64_t* strides[kMaxOps];
  ReduceArgs x{};
  for (int k = 0; k < nin; ++k) {
    strides[k] = ins[k].strides;
    x.in[k] = ins[k].data;
  }
  strides[nin] = zeros;
  x.out[0] = out;
  x.mean = mean;
  const ReduceWalk w = plan_reduce(ndim, shape, nin + 1, strides, ones);
  x.walk = &w;
  run_launch(launch, x, params, stream, device);
}

DeviceScope::DeviceScope(int device) {
  check(cudaGetDevice(&prev_), "cudaGetDevice");
  if (prev_ != device) check(cudaSetDevice(device), "cudaSetDevice");
}
DeviceScope::~DeviceScope() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != prev_) cudaSetDevice(prev_);
}

void elementwise(int op, int dir, int dtype, int ndim, const std::int64_t* shape, int nout, const Operand* outs,
                 int nin, const Operand* ins, const double* params, std::uintptr_t stream, int device) {
  check_index(op, int(ElementwiseOp::count), dir, kNumDirections, dtype);
  const EwLauncher launch = tables().ew[op][dir][dtype];
  if (!launch) throw std::invalid_argument("fastact CUDA: this op has no such backward form");
  if (nout < 1 || nin < 1 || nout + nin > kMaxOps) throw std::invalid_argument("fastact CUDA: bad operand counts");
  const std::int64_t* strides[kMaxOps];
  EwArgs x{};
  take_operands(x, strides, nout, outs, nin, ins);
  const EwPlan plan = plan_elementwise(ndim, shape, nout + nin, strides);
  if (plan.n == 0) return;
  x.plan = &plan;
  run_launch(launch, x, params, stream, device);
}

void reduce(int op, int dtype, int ndim, const std::int64_t* shape, int nout, const Operand* outs, int nin,
            const Operand* ins, Operand reduced, const std::int64_t* reduced_shape, const double* params,
            std::uintptr_t stream, int device) {
  check_index(op, int(ElementwiseOp::count), kBackwardX, kNumDirections, dtype);
  const ReduceLauncher launch = tables().reduce[op][dtype];
  if (!launch) throw std::invalid_argument("fastact CUDA: this op has no reduced output");
  if (nout < 1 || nin < 1 || nout + nin + 1 > kMaxOps) throw std::invalid_argument("fastact CUDA: bad operand counts");
  const std::int64_t* strides[kMaxOps];
  ReduceArgs x{};
  take_operands(x, strides, nout, outs, nin, ins);
  strides[nout + nin] = reduced.strides;
  x.red = const_cast<void*>(reduced.data);
  const ReduceWalk w = plan_reduce(ndim, shape, nout + nin + 1, strides, reduced_shape);
  if (w.J == 0) return;
  x.walk = &w;
  run_launch(launch, x, params, stream, device);
}

void rows(int op, int dir, int dtype, int ndim, const std::int64_t* shape, int axis, void* out,
          const std::int64_t* out_strides, Operand a, Operand b, std::uintptr_t stream, int device) {
  check_index(op, int(RowOp::count), dir, 2, dtype);
  if (axis < 0 || axis >= ndim) throw std::invalid_argument("fastact CUDA: axis out of range");
  const RowWalk w = plan_rows(ndim, shape, axis, out_strides, a.strides, b.data ? b.strides : nullptr);
  if (w.nrows == 0 || w.len == 0) return;
  DeviceScope scope(device);
  tables().row[op][dir][dtype](RowArgs{a.data, b.data, out, &w, reinterpret_cast<cudaStream_t>(stream), sm_count(device)});
  check(cudaGetLastError(), "kernel launch");
}

void copy(int elsize, int ndim, const std::int64_t* shape, void* out, const std::int64_t* out_strides, Operand a,
          std::uintptr_t stream, int device) {
  const EwPlan plan = plan_elementwise(ndim, shape, out_strides, a.strides, nullptr);
  if (plan.n == 0) return;
  DeviceScope scope(device);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  if (plan.contiguous) {
    check(cudaMemcpyAsync(out, a.data, std::size_t(plan.n) * std::size_t(elsize), cudaMemcpyDeviceToDevice, s),
          "cudaMemcpyAsync");
    return;
  }
  const Grid g = grid_for(plan.n, kThreads, sm_count(device));
  if (elsize == 2)
    copy_kernel<std::uint16_t><<<unsigned(g.blocks), g.threads, 0, s>>>(static_cast<const std::uint16_t*>(a.data),
                                                                         static_cast<std::uint16_t*>(out), plan.walk, plan.n);
  else if (elsize == 4)
    copy_kernel<float><<<unsigned(g.blocks), g.threads, 0, s>>>(static_cast<const float*>(a.data), static_cast<float*>(out),
                                                                plan.walk, plan.n);
  else
    copy_kernel<double><<<unsigned(g.blocks), g.threads, 0, s>>>(static_cast<const double*>(a.data),
                                                                 static_cast<double*>(out), plan.walk, plan.n);
  check(cudaGetLastError(), "kernel launch");
}

std::vector<std::string> targets() {
  std::vector<std::string> t;
  std::string s = FASTACT_CUDA_TARGETS;  // CMAKE_CUDA_ARCHITECTURES, comma-separated (set by CMake)
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = s.find(',', start);
    std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!item.empty()) {
      const auto dash = item.find('-');
      const std::string num = item.substr(0, dash), kind = dash == std::string::npos ? "" : item.substr(dash + 1);
      if (kind != "virtual") t.push_back("sm_" + num);
      if (kind != "real") t.push_back("compute_" + num);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return t;
}

}  // namespace fastact::cuda
