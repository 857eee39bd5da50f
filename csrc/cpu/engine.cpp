#include "engine.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "fastact/half.h"

#include "../layout.h"
#include "../math/rows.h"
#include "fp_env.h"
#include "scratch.h"
#include "thread_pool.h"

namespace fastact::cpu {
namespace {

// Elements per thread below which splitting costs more than it saves.
constexpr std::int64_t kGrain = 1 << 15;
constexpr std::int64_t kChunk = 512;  // gather/scatter block for strided runs
using layout::Dims;
using layout::kMaxDims;

int threads_for(std::int64_t work) {
  std::int64_t t = std::min<std::int64_t>(num_threads(), work / kGrain);
  return int(std::max<std::int64_t>(t, 1));
}

// Calls k over run elements, operand o (the nout outputs first, then the nin inputs) at p[o] with stride
// s[o] along the run: unit-stride operands as they are; the others gathered into and scattered from buf by
// blocks of kChunk, a stride-0 input splatted once. extra: one more output after the nout, contiguous, of
// extra_size-byte elements (a reduction's contributions), or null.
template <class T>
void call_run(EwKernel k, int nout, int nin, T* const* p, const std::int64_t* s, std::int64_t run, const double* params,
              T (*buf)[kChunk], char* extra = nullptr, std::size_t extra_size = 0) {
  const int nops = nout + nin;
  const void* in[layout::kMaxOperands];
  void* out[layout::kMaxOperands];
  bool unit = true;
  for (int o = 0; o < nops; ++o) unit = unit && s[o] == 1;
  if (unit) {
    for (int o = 0; o < nout; ++o) out[o] = p[o];
    for (int o = 0; o < nin; ++o) in[o] = p[nout + o];
    out[nout] = extra;
    k.fn(in, out, std::size_t(run), params);
    return;
  }
  for (int o = 0; o < nin; ++o) {  // a splatted input is filled once per run
    const int q = nout + o;
    if (s[q] == 0) std::fill(buf[q], buf[q] + std::min(kChunk, run), *p[q]);
  }
  for (std::int64_t j0 = 0; j0 < run; j0 += kChunk) {
    const std::int64_t m = std::min(kChunk, run - j0);
    for (int o = 0; o < nin; ++o) {
      const int q = nout + o;
      if (s[q] == 1) {
        in[o] = p[q] + j0;
      } else {
        if (s[q] != 0)
          for (std::int64_t j = 0; j < m; ++j) buf[q][j] = p[q][(j0 + j) * s[q]];
        in[o] = buf[q];
      }
    }
    for (int o = 0; o < nout; ++o) out[o] = s[o] == 1 ? static_cast<void*>(p[o] + j0) : buf[o];
    out[nout] = extra ? extra + std::size_t(j0) * extra_size : nullptr;
    k.fn(in, out, std::size_t(m), params);
    for (int o = 0; o < nout; ++o)
      if (s[o] != 1)
        for (std::int64_t j = 0; j < m; ++j) p[o][(j0 + j) * s[o]] = buf[o][j];
  }
}

// A walk over [begin, end) of the coalesced dims d, operand k at base[k] (the nout outputs first, then the
// inputs), by runs along the innermost dim (call_run).
template <class T>
void ew_strided(EwKernel k, const Dims& d, int nout, int nin, T* const* base, std::int64_t begin, std::int64_t end,
                const double* params) {
  const int last = d.n - 1, nops = nout + nin;
  std::int64_t idx[kMaxDims];
  std::int64_t rem = begin;
  for (int i = last; i >= 0; --i) {
    idx[i] = rem % d.size[i];
    rem /= d.size[i];
  }
  T buf[layout::kMaxOperands][kChunk];
  std::int64_t s[layout::kMaxOperands];
  for (int o = 0; o < nops; ++o) s[o] = d.st[o][last];
  std::int64_t pos = begin;
  while (pos < end) {
    T* p[layout::kMaxOperands];
    for (int o = 0; o < nops; ++o) {
      std::int64_t off = 0;
      for (int i = 0; i <= last; ++i) off += idx[i] * d.st[o][i];
      p[o] = base[o] + off;
    }
    const std::int64_t run = std::min(d.size[last] - idx[last], end - pos);
    call_run<T>(k, nout, nin, p, s, run, params, buf);
    pos += run;
    idx[last] += run;
    for (int i = last; i > 0 && idx[i] == d.size[i]; --i) {
      idx[i] = 0;
      ++idx[i - 1];
    }
  }
}

template <class T>
void ew_typed(EwKernel k, int ndim, const std::int64_t* shape, int nout, const Operand* outs, int nin,
              const Operand* ins, const double* params) {
  const int nops = nout + nin;
  T* base[layout::kMaxOperands];
  const std::int64_t* strides[layout::kMaxOperands];
  for (int o = 0; o < nops; ++o) {
    const Operand& x = o < nout ? outs[o] : ins[o - nout];
    base[o] = static_cast<T*>(const_cast<void*>(x.data));
    strides[o] = x.strides;
  }
  const layout::Flat f = layout::flatten(ndim, shape, nops, strides);
  const std::int64_t n = f.n;
  if (n == 0) return;
  const int nt = threads_for(n);
  // Split on cache-line multiples so that threads never share an output line.
  const std::int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
  auto task = [&](int t) {
    const std::int64_t lo = std::min(n, t * per), hi = std::min(n, lo + per);
    if (lo >= hi) return;
    if (f.contiguous) {
      const void* in[layout::kMaxOperands];
      void* out[layout::kMaxOperands];
      for (int o = 0; o < nout; ++o) out[o] = base[o] + lo;
      for (int o = 0; o < nin; ++o) in[o] = base[nout + o] + lo;
      k.fn(in, out, std::size_t(hi - lo), params);
    } else {
      ew_strided<T>(k, f.d, nout, nin, base, lo, hi, params);
    }
  };
  if (nt == 1)
    task(0);
  else
    parallel_run(nt, task);
}

// The row's partials summed by the contract's rule (math/rows.h), in the compute type.
template <class C>
double sum_partials(const std::vector<double>& partials) {
  math::rows::PartialSums<C> s;
  for (double p : partials) s.add(C(p));
  return double(s.total());
}

// One long contiguous row shared by nt threads, each taking a run of whole chunks, phase by phase. The
// max's order does not matter (math/rows.h); the partials are summed in chunk order: one thread's bits.
void split_row(const RowKernel& k, int elsize, int nt, std::int64_t len, const void* a, const void* b, void* o) {
  const std::int64_t nch = (len + math::rows::kChunk - 1) / math::rows::kChunk;
  const int n = int(std::min<std::int64_t>(nt, nch));
  const std::int64_t per = (nch + n - 1) / n * math::rows::kChunk;  // elements per thread
  const auto at = [&](const void* p, std::int64_t i) {
    return p ? static_cast<const char*>(p) + i * elsize : nullptr;
  };
  const auto each = [&](auto f) {
    parallel_run(n, [&](int t) {
      const std::int64_t lo = t * per, hi = std::min(len, lo + per);
      if (lo < hi) f(t, lo, hi - lo);
    });
  };
  double m = 0;
  if (k.max) {
    std::vector<double> maxes(n, -std::numeric_limits<double>::infinity());
    each([&](int t, std::int64_t lo, std::int64_t cnt) { maxes[t] = k.max(at(a, lo), std::size_t(cnt)); });
    m = maxes[0];
    for (double v : maxes) m = (v > m || v != v) ? v : m;  // NaN wins, as in max_nan
  }
  std::vector<double> partials(static_cast<std::size_t>(nch));
  each([&](int, std::int64_t lo, std::int64_t cnt) {
    k.sums(at(a, lo), at(b, lo), const_cast<char*>(at(o, lo)), std::size_t(cnt), m,
           partials.data() + lo / math::rows::kChunk);
  });
  const double total = elsize == 8 ? sum_partials<double>(partials) : sum_partials<float>(partials);
  each([&](int, std::int64_t lo, std::int64_t cnt) {
    k.write(at(a, lo), at(b, lo), const_cast<char*>(at(o, lo)), std::size_t(cnt), m, total);
  });
}

template <class T>
void rows_typed(RowKernel k, int ndim, const std::int64_t* shape, int axis, T* out, const std::int64_t* os,
                Operand a, Operand b) {
  const std::int64_t len = shape[axis];
  std::int64_t nrows = 1;
  for (int i = 0; i < ndim; ++i)
    if (i != axis) nrows *= shape[i];
  if (len == 0 || nrows == 0) return;
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  const std::int64_t sa = a.strides[axis], so = os[axis], sb = pb ? b.strides[axis] : 1;
  const bool direct = sa == 1 && so == 1 && sb == 1;
  const int nt = threads_for(nrows * len);
  struct RowPtrs {
    T* o;
    const T* a;
    const T* b;
  };
  const auto row = [&](std::int64_t r) {
    std::int64_t off_o = 0, off_a = 0, off_b = 0;
    for (int i = ndim - 1; i >= 0; --i) {
      if (i == axis) continue;
      const std::int64_t j = r % shape[i];
      r /= shape[i];
      off_o += j * os[i];
      off_a += j * a.strides[i];
      if (pb) off_b += j * b.strides[i];
    }
    return RowPtrs{out + off_o, pa + off_a, pb ? pb + off_b : nullptr};
  };
  if (direct && nrows < nt && len >= 2 * math::rows::kChunk) {  // few long rows: threads share each row
    for (std::int64_t r = 0; r < nrows; ++r) {
      const RowPtrs p = row(r);
      split_row(k, int(sizeof(T)), nt, len, p.a, p.b, p.o);
    }
    return;
  }
  int inner = -1;  // the innermost dimension other than axis: consecutive rows step along it
  for (int i = ndim - 1; i >= 0 && inner < 0; --i)
    if (i != axis) inner = i;
  const std::int64_t per = (nrows + nt - 1) / nt;
  auto task = [&](int t) {
    const std::int64_t lo = std::min(nrows, t * per), hi = std::min(nrows, lo + per);
    if (direct) {  // runs of rows along the innermost other dimension are equally spaced: one call each
      for (std::int64_t r = lo; r < hi;) {
        const RowPtrs p = row(r);
        const std::int64_t run = inner < 0 ? 1 : std::min(hi - r, shape[inner] - r % shape[inner]);
        k.rows(p.a, p.b, p.o, std::size_t(len), std::size_t(run), inner < 0 ? 0 : a.strides[inner],
               inner < 0 || !pb ? 0 : b.strides[inner], inner < 0 ? 0 : os[inner]);
        r += run;
      }
      return;
    }
    std::vector<T> ba(len), bb(pb ? len : 0), bo(len);  // a strided row goes through contiguous copies
    for (std::int64_t r = lo; r < hi; ++r) {
      const RowPtrs p = row(r);
      for (std::int64_t j = 0; j < len; ++j) ba[j] = p.a[j * sa];
      if (pb)
        for (std::int64_t j = 0; j < len; ++j) bb[j] = p.b[j * sb];
      k(ba.data(), pb ? bb.data() : nullptr, bo.data(), std::size_t(len));
      for (std::int64_t j = 0; j < len; ++j) p.o[j * so] = bo[j];
    }
  };
  if (nt == 1)
    task(0);
  else
    parallel_run(nt, task);
}

template <class C>
void store_total(void* p, C v, int dtype) {
  switch (dtype) {
    case kF32: *static_cast<float*>(p) = float(v); break;
    case kF64: *static_cast<double*>(p) = double(v); break;
    case kF16: *static_cast<half*>(p) = to_half(float(v)); break;
    default: *static_cast<bfloat16*>(p) = to_bfloat16(float(v)); break;
  }
}

// The lanes of a task of a reduction along a kept innermost dim: 32 x 2 x its columns, 256 KiB (L2); a
// row of its columns is then 4 KiB of each operand, a page read straight through (narrower tiles, a
// page per row each, ran at a third of the memory's speed).
constexpr std::size_t kColumnBytes = 4096;

// Elements from one lane of a task's columns to the next: whole cache lines, and one more, so that the 32
// lanes of a column are not 4 KiB apart (they would all fall in one set of the L1 cache: the combine, which
// reads them together, ran 3x slower).
inline std::int64_t lane_stride(std::int64_t m) { return (m + 15) / 16 * 16 + 16; }

// T: the elements' move type (by size); C: the compute type the contributions come in.
// red_dtype: the reduced elements' storage dtype (dtype, or float64 for run_total's one value).
template <class T, class C>
void reduce_typed(EwKernel k, const ReduceKernel& rk, int red_dtype, int ndim, const std::int64_t* shape, int nout,
                  const Operand* outs, int nin, const Operand* ins, Operand red, const std::int64_t* red_shape,
                  const double* params) {
  const int dtype = red_dtype;
  const int nops = nout + nin, kRed = nops, nall = nops + 1;
  T* base[layout::kMaxOperands + 1];
  const std::int64_t* strides[layout::kMaxOperands + 1];
  for (int o = 0; o < nall; ++o) {
    const Operand& x = o < nout ? outs[o] : o < nops ? ins[o - nout] : red;
    base[o] = static_cast<T*>(const_cast<void*>(x.data));
    strides[o] = x.strides;
  }
  const layout::ReduceSplit rs = layout::split_reduction(ndim, shape, nall, strides, red_shape);
  const Dims& d = rs.d;
  const std::int64_t L = rs.L, J = rs.J;  // contributions per reduced element; reduced elements
  const auto K = [&](std::int64_t j, std::int64_t* off) { rs.offsets(rs.kept, rs.nkept, nall, j, off); };
  const auto R = [&](std::int64_t r, std::int64_t* off, std::int64_t* last = nullptr) {
    rs.offsets(rs.sum, rs.nsum, nops, r, off, last);
  };
  const auto red_at = [&](const std::int64_t* off) { return static_cast<void*>(base[kRed] + off[kRed]); };
  if (J == 0) return;
  if (L == 0) {  // empty sums
    std::int64_t off[layout::kMaxOperands + 1];
    for (std::int64_t j = 0; j < J; ++j) {
      K(j, off);
      store_total<C>(red_at(off), C(0), dtype);
    }
    return;
  }
  const std::int64_t nq = (L + math::rows::kChunk - 1) / math::rows::kChunk;  // chunks per reduced element
  std::vector<C> partials(nq > 1 ? std::size_t(J * nq) : 0);
  const bool columns = !rs.summed[d.n - 1];  // the innermost dim is kept: tasks take columns side by side
  const int last = d.n - 1;
  const std::int64_t ncol = d.size[last];
  const int nt_want = threads_for(L * J);
  std::int64_t kColumns = std::int64_t(kColumnBytes / sizeof(C));  // narrower where threads would idle
  while (columns && kColumns > 64 && J / ncol * nq * ((ncol + kColumns - 1) / kColumns) < nt_want) kColumns /= 2;
  const std::int64_t tiles = columns ? (ncol + kColumns - 1) / kColumns : 1;
  const std::int64_t width = std::min(ncol, kColumns);  // a task's columns, at most
  const std::int64_t ntasks = (columns ? J / ncol * tiles : J) * nq;
  const int nt = int(std::min<std::int64_t>(nt_want, ntasks));
  const std::int64_t per = (ntasks + nt - 1) / nt;
  std::int64_t s_run[layout::kMaxOperands];  // the operands' strides along a run: the innermost dim's
  for (int o = 0; o < nops; ++o) s_run[o] = d.st[o][last];
  auto task = [&](int t) {
    const std::int64_t lo = std::min(ntasks, t * per), hi = std::min(ntasks, lo + per);
    if (lo >= hi) return;
    T buf[layout::kMaxOperands][kChunk];
    // contributions, then the lanes' sums and compensations (and the columns' partials); set before use
    const std::size_t scratch_size = columns ? std::size_t(2 * width + 2 * math::rows::kLanes * lane_stride(width))
                                             : std::size_t(math::rows::kChunk + 2 * math::rows::kLanes);
    static_assert(2 * kColumnBytes + 2 * math::rows::kLanes * (kColumnBytes + 128) <= kScratchMaxBytes,
                  "a task's lanes fit");
    C* const scratch = static_cast<C*>(thread_scratch(scratch_size * sizeof(C)));
    std::int64_t offk[layout::kMaxOperands + 1], offr[layout::kMaxOperands + 1];
    T* p[layout::kMaxOperands];
    for (std::int64_t task_id = lo; task_id < hi; ++task_id) {
      const std::int64_t q = task_id % nq, r0 = q * math::rows::kChunk, r1 = std::min(L, r0 + math::rows::kChunk);
      if (!columns) {  // one reduced element j: its contributions along the summed innermost dim, by runs
        const std::int64_t j = task_id / nq;
        K(j, offk);
        C* v = scratch;
        C* ls = v + math::rows::kChunk;
        C* lc = ls + math::rows::kLanes;
        for (std::int64_t r = r0; r < r1;) {
          std::int64_t idx = 0;
          R(r, offr, &idx);
          const std::int64_t run = std::min(d.size[last] - idx, r1 - r);
          for (int o = 0; o < nops; ++o) p[o] = base[o] + offk[o] + offr[o];
          call_run<T>(k, nout, nin, p, s_run, run, params, buf, reinterpret_cast<char*>(v + (r - r0)), sizeof(C));
          r += run;
        }
        std::fill(ls, ls + 2 * math::rows::kLanes, C(0));
        rk.add_lanes(v, std::size_t(r1 - r0), ls, lc);
        C part;
        rk.combine(ls, lc, 1, 1, math::rows::kLanes, &part);
        if (nq == 1) store_total<C>(red_at(offk), part, dtype);
        else partials[std::size_t(j * nq + q)] = part;
        continue;
      }
      // columns [c0, c0 + m) of the innermost dim, lane (r - r0) % 32 of each taking contribution r
      const std::int64_t tile = task_id / nq, c0 = tile % tiles * kColumns, m = std::min(kColumns, ncol - c0);
      const std::int64_t j0 = tile / tiles * ncol + c0;
      K(j0, offk);
      const std::int64_t ld = lane_stride(m);
      C* v = scratch;
      C* part = v + m;
      C* ls = part + m;
      C* lc = ls + ld * math::rows::kLanes;
      const std::int64_t sr = d.st[kRed][last];
      const int used = int(std::min<std::int64_t>(r1 - r0, math::rows::kLanes));  // lanes past these stay 0
      if (L > 1) {
        std::fill(ls, ls + ld * used, C(0));
        std::fill(lc, lc + ld * used, C(0));
      }
      for (std::int64_t r = r0; r < r1; ++r) {
        R(r, offr);
        for (int o = 0; o < nops; ++o) p[o] = base[o] + offk[o] + offr[o];
        call_run<T>(k, nout, nin, p, s_run, m, params, buf, reinterpret_cast<char*>(v), sizeof(C));
        if (L == 1) {  // one contribution each: the rule's sum of it is v + 0
          for (std::int64_t i = 0; i < m; ++i)
            store_total<C>(static_cast<void*>(base[kRed] + offk[kRed] + i * sr), v[i] + C(0), dtype);
          continue;
        }
        const std::int64_t lane = (r - r0) % math::rows::kLanes;
        rk.add_row(v, std::size_t(m), ls + lane * ld, lc + lane * ld);
      }
      if (L == 1) continue;
      for (std::int64_t lane = (r1 - r0) % math::rows::kLanes; lane > 0 && lane < used; ++lane)
        rk.add_row(nullptr, std::size_t(m), ls + lane * ld, lc + lane * ld);  // the last block's padding
      rk.combine(ls, lc, std::size_t(m), std::size_t(ld), used, part);
      for (std::int64_t i = 0; i < m; ++i) {
        if (nq == 1) store_total<C>(static_cast<void*>(base[kRed] + offk[kRed] + i * sr), part[i], dtype);
        else partials[std::size_t((j0 + i) * nq + q)] = part[i];
      }
    }
  };
  if (nt <= 1)
    task(0);
  else
    parallel_run(nt, task);
  if (nq == 1) return;
  std::int64_t off[layout::kMaxOperands + 1];
  for (std::int64_t j = 0; j < J; ++j) {  // the chunks' partials of each reduced element, in chunk order
    math::rows::PartialSums<C, true> sum;
    for (std::int64_t q = 0; q < nq; ++q) sum.add(partials[std::size_t(j * nq + q)]);
    K(j, off);
    store_total<C>(red_at(off), sum.total(), dtype);
  }
}

}  // namespace

void run_elementwise(EwKernel k, int elsize, int ndim, const std::int64_t* shape, int nout, const Operand* outs,
                     int nin, const Operand* ins, const double* params) {
  if (nout < 1 || nin < 1 || nout + nin > layout::kMaxOperands)
    throw std::invalid_argument("run_elementwise: 1 to 5 inputs and outputs in all, at least one of each");
  const FpEnvScope fp;
  // The engines only move elements: any type of the right size will do.
  if (elsize == 2)
    ew_typed<std::uint16_t>(k, ndim, shape, nout, outs, nin, ins, params);
  else if (elsize == 4)
    ew_typed<float>(k, ndim, shape, nout, outs, nin, ins, params);
  else
    ew_typed<double>(k, ndim, shape, nout, outs, nin, ins, params);
}

void run_elementwise(EwKernel k, int elsize, int ndim, const std::int64_t* shape, void* out,
                     const std::int64_t* out_strides, Operand a, Operand b, const double* params) {
  const Operand outs[1] = {{out, out_strides}};
  const Operand ins[2] = {a, b};
  run_elementwise(k, elsize, ndim, shape, 1, outs, b.data ? 2 : 1, ins, params);
}

void run_reduction(EwKernel k, const ReduceKernel* rk, int dtype, int ndim, const std::int64_t* shape, int nout,
                   const Operand* outs, int nin, const Operand* ins, Operand reduced, const std::int64_t* reduced_shape,
                   const double* params) {
  if (nout < 1 || nin < 1 || nout + nin > layout::kMaxOperands - 1)
    throw std::invalid_argument("run_reduction: 1 to 4 inputs and outputs in all besides the reduced one");
  const FpEnvScope fp;
  if (dtype == kF64)
    reduce_typed<double, double>(k, rk[1], dtype, ndim, shape, nout, outs, nin, ins, reduced, reduced_shape, params);
  else if (dtype == kF32)
    reduce_typed<float, float>(k, rk[0], dtype, ndim, shape, nout, outs, nin, ins, reduced, reduced_shape, params);
  else
    reduce_typed<std::uint16_t, float>(k, rk[0], dtype, ndim, shape, nout, outs, nin, ins, reduced, reduced_shape,
                                       params);
}

double run_total(EwKernel k, const ReduceKernel* rk, int dtype, int ndim, const std::int64_t* shape, int nin,
                 const Operand* ins, const double* params) {
  if (nin < 1 || nin > layout::kMaxOperands - 1 || ndim < 0 || ndim > kMaxDims)
    throw std::invalid_argument("run_total: 1 to 5 inputs, at most 64 dimensions");
  const FpEnvScope fp;
  double total = 0;
  const std::int64_t one = 1, zero = 0;
  std::int64_t zeros[kMaxDims] = {}, ones[kMaxDims];
  std::fill(ones, ones + kMaxDims, std::int64_t(1));
  Operand in0[layout::kMaxOperands];
  if (ndim == 0) {  // one element, as a 1-d run
    for (int i = 0; i < nin; ++i) in0[i] = {ins[i].data, &zero};
    ins = in0;
    shape = &one;
    ndim = 1;
  }
  const Operand red{&total, zeros};
  if (dtype == kF64)
    reduce_typed<double, double>(k, rk[1], kF64, ndim, shape, 0, nullptr, nin, ins, red, ones, params);
  else if (dtype == kF32)
    reduce_typed<float, float>(k, rk[0], kF64, ndim, shape, 0, nullptr, nin, ins, red, ones, params);
  else
    reduce_typed<std::uint16_t, float>(k, rk[0], kF64, ndim, shape, 0, nullptr, nin, ins, red, ones, params);
  return total;
}

void run_rows(RowKernel k, int elsize, int ndim, const std::int64_t* shape, int axis, void* out,
              const std::int64_t* out_strides, Operand a, Operand b) {
  const FpEnvScope fp;
  if (elsize == 2)
    rows_typed<std::uint16_t>(k, ndim, shape, axis, static_cast<std::uint16_t*>(out), out_strides, a, b);
  else if (elsize == 4)
    rows_typed<float>(k, ndim, shape, axis, static_cast<float*>(out), out_strides, a, b);
  else
    rows_typed<double>(k, ndim, shape, axis, static_cast<double*>(out), out_strides, a, b);
}

}  // namespace fastact::cpu
