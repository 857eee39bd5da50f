// The CUDA emulation (test_cuda_emulation.h) of the row kernels: the softmax family.
#include "test_cuda_emulation.h"

namespace {

// ------------------------------------------------------------------------------ rows
// The kernel shells' sequences (kernels.cu), with the 32 lanes of a warp run one after the other where
// the GPU runs them at once, and the warp shuffles read from arrays. First one warp per row:
template <class S, class Op>
void emulate_warp_rows(const cuda::RowWalk& w, int dir, const S* a, const S* b, S* o, Grid g) {
  using B = cuda::RowBody<S, Op>;
  using C = typename B::C;
  for (i64 blk = 0; blk < g.blocks; ++blk) {
    for (int first = 0; first < g.threads; first += cuda::kWarp) {
      const Coord c0{blk, g.blocks, first, g.threads};
      for (i64 r = B::warp(c0); r < w.nrows; r += B::warps(c0)) {
        const typename B::Row row = B::row(w, r, a, b, o);
        C v[cuda::kWarp];
        C m = C(0);
        if (dir == 0) {
          for (int l = 0; l < cuda::kWarp; ++l) v[l] = B::lane_max(row, l, 0, row.len);
          m = math::rows::combine_max<C>([&](int j) { return v[j]; });
        }
        math::rows::PartialSums<C> sums;  // kernels.cu chunked_sum keeps lane ch % 32's share in that lane
        for (i64 ch = 0; ch < B::chunks(row.len); ++ch) {
          for (int l = 0; l < cuda::kWarp; ++l) {
            const auto k = dir == 0 ? B::lane_sum(row, l, m, ch) : B::lane_backward_sum(row, l, ch);
            v[l] = (k.s - k.c).v;
          }
          sums.add(math::rows::combine_sum<C>([&](int j) { return v[j]; }));
        }
        const C s = sums.total();
        for (int l = 0; l < cuda::kWarp; ++l)
          for (i64 i = l; i < row.len; i += cuda::kWarp) {
            if (dir == 0) B::write(row, i, m, B::finish(s));
            else B::backward_write(row, i, s);
          }
      }
    }
  }
}

// Then split rows: a warp per (row, chunk) task, then a warp per row, through the workspace. Tasks are
// independent, so which warp of the grid takes which one does not change the bits.
template <class S, class Op>
void emulate_split_rows(const cuda::RowWalk& w, int dir, const S* a, const S* b, S* o) {
  using B = cuda::RowBody<S, Op>;
  using C = typename B::C;
  using WS = cuda::RowWorkspace<C>;
  const i64 nch = B::chunks(w.len);
  std::vector<C> buf(std::size_t(WS::elements(w)));
  const WS ws = WS::at(buf.data(), w);
  C v[cuda::kWarp];
  const auto chunk_row = [&](i64 t, S* out) {
    const cuda::SplitTask k = cuda::split_task(t, nch);
    return std::pair{k, B::row(w, k.row, a, b, out)};
  };
  if (dir == 0) {
    for (i64 t = 0; t < w.nrows * nch; ++t) {
      const auto [k, row] = chunk_row(t, nullptr);
      const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
      for (int l = 0; l < cuda::kWarp; ++l) v[l] = B::lane_max(row, l, begin, end);
      ws.chunk_max[t] = math::rows::combine_max<C>([&](int j) { return v[j]; });
    }
    for (i64 r = 0; r < w.nrows; ++r) {
      for (int l = 0; l < cuda::kWarp; ++l) {
        simd::Scalar<C> acc(-B::inf());
        for (i64 j = l; j < nch; j += cuda::kWarp) acc = math::rows::max_nan(acc, simd::Scalar<C>(ws.chunk_max[r * nch + j]));
        v[l] = acc.v;
      }
      ws.row_max[r] = math::rows::combine_max<C>([&](int j) { return v[j]; });
    }
  }
  for (i64 t = 0; t < w.nrows * nch; ++t) {
    const auto [k, row] = chunk_row(t, nullptr);
    for (int l = 0; l < cuda::kWarp; ++l) {
      const auto acc = dir == 0 ? B::lane_sum(row, l, ws.row_max[k.row], k.chunk) : B::lane_backward_sum(row, l, k.chunk);
      v[l] = (acc.s - acc.c).v;
    }
    ws.chunk_sum[t] = math::rows::combine_sum<C>([&](int j) { return v[j]; });
  }
  for (i64 r = 0; r < w.nrows; ++r) {
    for (int l = 0; l < cuda::kWarp; ++l) {
      math::rows::Kahan<simd::Scalar<C>> mine;
      for (i64 j = l; j < nch; j += cuda::kWarp) mine.add(simd::Scalar<C>(ws.chunk_sum[r * nch + j]));
      v[l] = (mine.s - mine.c).v;
    }
    ws.row_sum[r] = nch == 1 ? ws.chunk_sum[r * nch] : math::rows::combine_sum<C>([&](int j) { return v[j]; });
  }
  for (i64 t = 0; t < w.nrows * nch; ++t) {
    const auto [k, row] = chunk_row(t, o);
    const i64 begin = B::chunk_begin(k.chunk), end = B::chunk_stop(row, k.chunk);
    for (i64 i = begin; i < end; ++i) {
      if (dir == 0) B::write(row, i, ws.row_max[k.row], B::finish(ws.row_sum[k.row]));
      else B::backward_write(row, i, ws.row_sum[k.row]);
    }
  }
}

template <class S, class Op>
void check_rows(int op_id) {
  const std::string name = std::string(cpu::row_ops().at(op_id).name) + " dtype " + std::to_string(dtype_of<S>());
  for (int dir = 0; dir < 2; ++dir) {
    const cpu::RowKernel k = ref().row[op_id][dir][dtype_of<S>()];
    for (i64 len : kRowLens) {
      for (i64 nrows : {1, 3, 17}) {
        for (int axis : {1, 0}) {  // rows contiguous (last axis), then strided (first axis)
          for (int sm : kRowSmCounts) {
            const i64 shape[2] = {axis == 1 ? nrows : len, axis == 1 ? len : nrows};
            const i64 st[2] = {shape[1], 1};
            const std::size_t n = std::size_t(nrows * len);
            auto a = inputs<S>(n, unsigned(len * 31 + nrows));
            if constexpr (sizeof(S) != 2) {  // keep most rows finite: softmax of garbage is mostly NaN
              for (std::size_t i = 0; i < n; ++i)
                if (i % 7 != 0) a[i] = S(std::fmod(double(i) * 0.7548, 23.0) - 11.0);
            }
            auto b = inputs<S>(n, unsigned(len * 31 + nrows + 1));
            if (dir == 1) cpu::run_rows(ref().row[op_id][0][dtype_of<S>()], int(sizeof(S)), 2, shape, axis, b.data(), st,
                                        {a.data(), st}, {nullptr, st});  // y: a real forward output
            std::vector<S> want(n), got(n);
            cpu::run_rows(k, int(sizeof(S)), 2, shape, axis, want.data(), st, {a.data(), st}, {dir ? b.data() : nullptr, st});
            const cuda::RowWalk w = cuda::plan_rows(2, shape, axis, st, st, dir ? st : nullptr);
            const std::string what = name + " dir " + std::to_string(dir) + " len " + std::to_string(len) + " rows " +
                                     std::to_string(nrows) + " axis " + std::to_string(axis);
            emulate_warp_rows<S, Op>(w, dir, a.data(), dir ? b.data() : nullptr, got.data(), cuda::row_grid(w.nrows, sm));
            ASSERT_TRUE(same_bits(got.data(), want.data(), n, what + " (a warp per row)"));
            if (sm != 1) continue;  // the split path does not depend on the grid
            std::fill(got.begin(), got.end(), S{});
            emulate_split_rows<S, Op>(w, dir, a.data(), dir ? b.data() : nullptr, got.data());
            ASSERT_TRUE(same_bits(got.data(), want.data(), n, what + " (split rows)"));
            if (dir == 0) {  // in place, both paths
              auto c = a;
              emulate_warp_rows<S, Op>(w, dir, c.data(), nullptr, c.data(), cuda::row_grid(w.nrows, sm));
              ASSERT_TRUE(same_bits(c.data(), want.data(), n, what + " in place (a warp per row)"));
              emulate_split_rows<S, Op>(w, dir, a.data(), nullptr, a.data());
              ASSERT_TRUE(same_bits(a.data(), want.data(), n, what + " in place (split rows)"));
            }
          }
        }
      }
    }
  }
}

template <class Op>
void check_row_op(int id) {
  check_rows<float, Op>(id);
  check_rows<double, Op>(id);
  check_rows<half, Op>(id);
  check_rows<bfloat16, Op>(id);
}

TEST(CudaEmulation, RowsMatchCpuScalar) {
#define FASTACT_CHECK_ROW(name, Op, ...) check_row_op<ops::Op>(int(RowOp::name));
  FASTACT_ROW_OPS(FASTACT_CHECK_ROW)
#undef FASTACT_CHECK_ROW
}

}  // namespace
