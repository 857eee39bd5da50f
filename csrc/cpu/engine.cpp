#include "engine.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../layout.h"
#include "../math/rows.h"
#include "fp_env.h"
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

// A walk over [begin, end) of the coalesced dims d, operand k at base[k] (the nout outputs first, then the
// inputs). Runs along the innermost dim where every operand is unit-stride go straight to the kernel;
// otherwise by chunks: inputs of other strides gathered (a stride-0 input splatted once per run, as it
// is the same element all along it), outputs of other strides written through a buffer.
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
  const void* in[layout::kMaxOperands];
  void* out[layout::kMaxOperands];
  std::int64_t pos = begin;
  while (pos < end) {
    T* p[layout::kMaxOperands];
    bool unit = true;
    for (int o = 0; o < nops; ++o) {
      std::int64_t off = 0;
      for (int i = 0; i <= last; ++i) off += idx[i] * d.st[o][i];
      p[o] = base[o] + off;
      unit = unit && d.st[o][last] == 1;
    }
    const std::int64_t run = std::min(d.size[last] - idx[last], end - pos);
    if (unit) {
      for (int o = 0; o < nout; ++o) out[o] = p[o];
      for (int o = 0; o < nin; ++o) in[o] = p[nout + o];
      k.fn(in, out, std::size_t(run), params);
    } else {
      for (int o = 0; o < nin; ++o) {  // a splatted input is filled once per run
        const int q = nout + o;
        if (d.st[q][last] == 0) std::fill(buf[q], buf[q] + std::min(kChunk, run), *p[q]);
      }
      for (std::int64_t j0 = 0; j0 < run; j0 += kChunk) {
        const std::int64_t m = std::min(kChunk, run - j0);
        for (int o = 0; o < nin; ++o) {
          const int q = nout + o;
          const std::int64_t s = d.st[q][last];
          if (s == 1) {
            in[o] = p[q] + j0;
          } else {
            if (s != 0)
              for (std::int64_t j = 0; j < m; ++j) buf[q][j] = p[q][(j0 + j) * s];
            in[o] = buf[q];
          }
        }
        for (int o = 0; o < nout; ++o) out[o] = d.st[o][last] == 1 ? static_cast<void*>(p[o] + j0) : buf[o];
        k.fn(in, out, std::size_t(m), params);
        for (int o = 0; o < nout; ++o) {
          const std::int64_t s = d.st[o][last];
          if (s != 1)
            for (std::int64_t j = 0; j < m; ++j) p[o][(j0 + j) * s] = buf[o][j];
        }
      }
    }
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
