// Every ISA path against the scalar reference, bit for bit (NaN payloads aside), for every registry op,
// direction and dtype, on sizes around every vector width and block boundary, with special values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/engine.h"
#include "cpu/kernels.h"
#include "cpu/op_info.h"
#include "cpu/tables16.h"
#include "cpu/thread_pool.h"
#include "fastact/half.h"
#include "layout.h"
#include "test_util.h"

using namespace fastact;
using testing_util::call;
using testing_util::data_of;
using testing_util::in_place_outputs;
using testing_util::param_sets;

namespace {

template <class T>
std::vector<T> inputs(std::size_t n, unsigned seed) {
  using I = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  std::mt19937_64 rng(seed);
  const T specials[] = {T(0), -T(0), std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
                        std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::denorm_min(),
                        -std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::min(),
                        std::numeric_limits<T>::max(), -std::numeric_limits<T>::max(), T(0.5), T(-0.75)};
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (i % 4) {
      case 0: v[i] = specials[(i / 4) % (sizeof(specials) / sizeof(T))]; break;
      case 1: {  // any bit pattern
        I b = I(rng());
        std::memcpy(&v[i], &b, sizeof(T));
        break;
      }
      default: v[i] = T(std::uniform_real_distribution<double>(-60, 60)(rng));
    }
  }
  return v;
}

template <class T>
::testing::AssertionResult same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << "index " << i << ": " << a[i] << " vs " << b[i];
  }
  return ::testing::AssertionSuccess();
}

const std::size_t kSizes[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 1000, 4099};

template <class T>
void check_elementwise(const cpu::KernelTable& t, const cpu::KernelTable& ref) {
  const int dt = sizeof(T) == 4 ? cpu::kF32 : cpu::kF64;
  for (const auto& op : cpu::elementwise_ops()) {
    for (const auto& p : param_sets(op)) {
      for (int dir = 0; dir < cpu::kNumDirections; ++dir) {
        cpu::EwKernel k = t.ew[op.id][dir][dt], r = ref.ew[op.id][dir][dt];
        ASSERT_EQ(bool(k), bool(r));
        if (!k) continue;
        const int ni = op.n_in[dir], no = op.n_out[dir];
        for (std::size_t n : kSizes) {
          std::vector<std::vector<T>> in, yk(no, std::vector<T>(n)), yr(no, std::vector<T>(n));
          for (int i = 0; i < ni; ++i) in.push_back(inputs<T>(n, unsigned(n) + 1 + unsigned(i)));
          call(k, data_of(in), data_of(yk), n, p.data());
          call(r, data_of(in), data_of(yr), n, p.data());
          for (int o = 0; o < no; ++o)
            EXPECT_TRUE(same_bits(yk[o], yr[o])) << t.isa << " " << op.name << " dir " << dir << " n " << n << " out " << o;
          auto io = in;  // in place
          call(k, data_of(io), in_place_outputs(data_of(io), no), n, p.data());
          for (int o = 0; o < no; ++o)
            EXPECT_TRUE(same_bits(io[std::size_t(ni - no + o)], yr[o])) << t.isa << " " << op.name << " in place, n " << n;
        }
      }
    }
  }
}

template <class T>
void check_rows(const cpu::KernelTable& t, const cpu::KernelTable& ref) {
  const int dt = sizeof(T) == 4 ? cpu::kF32 : cpu::kF64;
  std::mt19937 rng(3);
  for (const auto& op : cpu::row_ops()) {
    for (int dir = 0; dir < 2; ++dir) {
      for (std::size_t n : kSizes) {
        std::vector<T> a(n), b(n), yk(n), yr(n);
        for (auto& v : a) v = T(std::normal_distribution<double>(0, 20)(rng));
        for (auto& v : b) v = T(std::uniform_real_distribution<double>(0, 1)(rng));
        t.row[op.id][dir][dt](a.data(), b.data(), yk.data(), n);
        ref.row[op.id][dir][dt](a.data(), b.data(), yr.data(), n);
        EXPECT_TRUE(same_bits(yk, yr)) << t.isa << " " << op.name << " dir " << dir << " n " << n;
      }
    }
  }
}

}  // namespace

// 16-bit storage: every op on all 65536 input patterns (and random second operands), every direction.
void check_16bit(const cpu::KernelTable& t, const cpu::KernelTable& ref, int dt) {
  std::vector<std::uint16_t> a(1 << 16);
  std::vector<std::vector<std::uint16_t>> others(layout::kMaxOperands, std::vector<std::uint16_t>(1 << 16));
  std::mt19937 rng(9);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = std::uint16_t(i);
    for (auto& o : others) o[i] = std::uint16_t(rng());
  }
  auto as_float = [dt](std::uint16_t u) { return dt == cpu::kF16 ? to_float(half{u}) : to_float(bfloat16{u}); };
  for (const auto& op : cpu::elementwise_ops())
    for (const auto& p : param_sets(op))
      for (int dir = 0; dir < cpu::kNumDirections; ++dir) {
        cpu::EwKernel k = t.ew[op.id][dir][dt], r = ref.ew[op.id][dir][dt];
        if (!k) continue;
        const int no = op.n_out[dir], ns = no - op.n_reduced[dir];  // outputs ns.. are float contributions
        // every pattern as each input in turn (the others random)
        for (int order = 0; order < op.n_in[dir]; ++order)
          for (std::size_t n : {a.size(), std::size_t(37)}) {
            std::vector<std::uint16_t*> in;
            for (int i = 0; i < op.n_in[dir]; ++i) in.push_back(i == order ? a.data() : others[std::size_t(i)].data());
            // room for a float per element in every output (the contributions)
            std::vector<std::vector<std::uint16_t>> yk(no, std::vector<std::uint16_t>(2 * n)), yr(no, std::vector<std::uint16_t>(2 * n));
            call(k, in, data_of(yk), n, p.data());
            call(r, in, data_of(yr), n, p.data());
            for (int o = 0; o < ns; ++o)
              for (std::size_t i = 0; i < n; ++i)
                if (yk[o][i] != yr[o][i] && !(std::isnan(as_float(yk[o][i])) && std::isnan(as_float(yr[o][i]))))
                  FAIL() << t.isa << " " << op.name << " dir " << dir << " dtype " << dt << " input " << a[i];
            for (int o = ns; o < no; ++o) {
              std::vector<float> ck(n), cr(n);
              std::memcpy(ck.data(), yk[o].data(), n * sizeof(float));
              std::memcpy(cr.data(), yr[o].data(), n * sizeof(float));
              EXPECT_TRUE(same_bits(ck, cr)) << t.isa << " " << op.name << " contribution, dtype " << dt;
            }
          }
      }
  for (const auto& op : cpu::row_ops())
    for (int dir = 0; dir < 2; ++dir)
      for (std::size_t n : kSizes) {
        std::vector<std::uint16_t> x(n), y(n), yk(n), yr(n);
        for (std::size_t i = 0; i < n; ++i) {
          x[i] = dt == cpu::kF16 ? to_half(float(int(rng() % 2001) - 1000) / 100.0f).bits
                                 : to_bfloat16(float(int(rng() % 2001) - 1000) / 100.0f).bits;
          y[i] = dt == cpu::kF16 ? to_half(float(rng() % 1000) / 1000.0f).bits : to_bfloat16(float(rng() % 1000) / 1000.0f).bits;
        }
        t.row[op.id][dir][dt](x.data(), y.data(), yk.data(), n);
        ref.row[op.id][dir][dt](x.data(), y.data(), yr.data(), n);
        EXPECT_EQ(yk, yr) << t.isa << " " << op.name << " dir " << dir << " n " << n;
      }
}

// The 16-bit tables (cpu/tables16.h) against the kernels they stand in for: every input pattern, forward
// and backward (each x with several dy, specials included), every parameter set and ISA. This is what
// makes a lookup legal: it checks the tabulate16 promise that backward_x(dy, x) == dy * backward_x(1, x).
void check_tables(const cpu::KernelTable& t, int dt) {
  auto is_nan = [dt](std::uint16_t u) { return std::isnan(dt == cpu::kF16 ? to_float(half{u}) : to_float(bfloat16{u})); };
  const std::size_t n = cpu::tables16::kPatterns;
  std::vector<std::uint16_t> x(n), yt(n), yk(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = std::uint16_t(i);
  std::vector<std::vector<std::uint16_t>> dys;
  std::mt19937 rng(11);
  for (int k = 0; k < 4; ++k) {  // random patterns, then specials of both signs: 0, 1, inf, NaN, subnormal
    std::vector<std::uint16_t> dy(n);
    const std::uint16_t sp[] = {0x0000, 0x8000, std::uint16_t(dt == cpu::kF16 ? 0x3c00 : 0x3f80),
                                std::uint16_t(dt == cpu::kF16 ? 0x7c00 : 0x7f80), std::uint16_t(dt == cpu::kF16 ? 0xfc00 : 0xff80),
                                std::uint16_t(dt == cpu::kF16 ? 0x7e00 : 0x7fc0), 0x0001, 0x8001};
    for (std::size_t i = 0; i < n; ++i) dy[i] = k < 3 ? std::uint16_t(rng()) : sp[(i * 7 + i / 8) % 8];
    dys.push_back(dy);
  }
  int tabulated = 0;
  for (const auto& op : cpu::elementwise_ops())
    for (const auto& p : param_sets(op))
      for (int dir = 0; dir < cpu::kNumDirections; ++dir) {
        cpu::EwKernel tk = t.ew_tabulated[op.id][dir][dt], k = t.ew[op.id][dir][dt];
        if (!tk) continue;
        ++tabulated;
        for (std::size_t m : {n, std::size_t(cpu::tables16::kMinElements) + 37}) {
          for (const auto& dy : dys) {
            const std::uint16_t* a = dir == cpu::kForward ? x.data() : dy.data();
            const std::uint16_t* b = dir == cpu::kForward ? nullptr : x.data();
            tk(a, b, yt.data(), m, p.data());
            k(a, b, yk.data(), m, p.data());
            for (std::size_t i = 0; i < m; ++i)
              if (yt[i] != yk[i] && !(is_nan(yt[i]) && is_nan(yk[i])))
                FAIL() << t.isa << " " << op.name << " dir " << dir << " dtype " << dt << " a " << a[i] << " x " << x[i]
                       << ": table " << yt[i] << " vs computed " << yk[i];
            if (dir == cpu::kForward) break;
          }
        }
      }
  EXPECT_GT(tabulated, 0);
  const cpu::tables16::Stats st = cpu::tables16::stats();
  EXPECT_TRUE(st.enabled);
  EXPECT_GT(st.count, 0);
}

TEST(Kernels, HalfTablesMatchTheKernelsBitForBit) {
  for (const auto& name : cpu::supported_isa_names()) {
    SCOPED_TRACE(name);
    check_tables(*cpu::table_for(name), cpu::kF16);
    check_tables(*cpu::table_for(name), cpu::kBF16);
  }
}

TEST(Kernels, EveryIsaMatchesScalarBitForBit) {
  const cpu::KernelTable* ref = cpu::table_for("scalar");
  ASSERT_NE(ref, nullptr);
  auto isas = cpu::supported_isa_names();
  ASSERT_FALSE(isas.empty());
  for (const auto& name : isas) {
    SCOPED_TRACE(name);
    const cpu::KernelTable* t = cpu::table_for(name);
    ASSERT_NE(t, nullptr);
    check_elementwise<float>(*t, *ref);
    check_elementwise<double>(*t, *ref);
    check_rows<float>(*t, *ref);
    check_rows<double>(*t, *ref);
    check_16bit(*t, *ref, cpu::kF16);
    check_16bit(*t, *ref, cpu::kBF16);
  }
  std::printf("checked ISA paths:");
  for (const auto& n : isas) std::printf(" %s", n.c_str());
  std::printf("\n");
}

// Large float32 / float64 outputs are written with non-temporal stores from the first vector-aligned
// element on (kernels.inc): the bits must be those of ordinary stores, whatever the output's alignment
// (heads of 0 to W-1 elements), the size (tails), in place too. The threshold is lowered so that small
// calls stream.
template <class T>
void check_streaming(const cpu::KernelTable& t) {
  const int dt = sizeof(T) == 4 ? cpu::kF32 : cpu::kF64;
  const std::size_t saved = cpu::stream_min_bytes();
  for (const auto& op : cpu::elementwise_ops())
    for (int dir = 0; dir < cpu::kNumDirections; ++dir) {
      cpu::EwKernel k = t.ew[op.id][dir][dt];
      if (!k) continue;
      const auto p = param_sets(op).front();
      const int ni = op.n_in[dir], no = op.n_out[dir];
      for (std::size_t n : {std::size_t(300), std::size_t(1001)})
        for (std::size_t shift = 0; shift < 17; ++shift) {
          std::vector<std::vector<T>> in, plain(no, std::vector<T>(n)), streamed(no, std::vector<T>(n + shift));
          for (int i = 0; i < ni; ++i) in.push_back(inputs<T>(n, unsigned(n + shift + 7 * std::size_t(i))));
          auto io = in;
          std::vector<T*> shifted;
          for (auto& v : streamed) shifted.push_back(v.data() + shift);
          cpu::set_stream_min_bytes(~std::size_t(0));
          call(k, data_of(in), data_of(plain), n, p.data());
          cpu::set_stream_min_bytes(64);
          call(k, data_of(in), shifted, n, p.data());
          call(k, data_of(io), in_place_outputs(data_of(io), no), n, p.data());
          cpu::set_stream_min_bytes(saved);
          for (int o = 0; o < no; ++o) {
            EXPECT_TRUE(same_bits(std::vector<T>(streamed[o].begin() + std::ptrdiff_t(shift), streamed[o].end()), plain[o]))
                << t.isa << " " << op.name << " dir " << dir << " n " << n << " shift " << shift;
            EXPECT_TRUE(same_bits(io[std::size_t(ni - no + o)], plain[o])) << t.isa << " " << op.name << " in place, n " << n;
          }
        }
    }
  cpu::set_stream_min_bytes(saved);
}

// The reductions' lanes (reduce_kernels.h) on every ISA against the scalar path, bit for bit: one column's
// lanes over runs of any length (the last block padded), rows of many columns (vector bodies and scalar
// tails), their tree with some lanes absent; specials and infinities included.
template <class T>
void check_reduce(const cpu::KernelTable& t, const cpu::KernelTable& ref) {
  const cpu::ReduceKernel& k = t.reduce[sizeof(T) == 4 ? 0 : 1];
  const cpu::ReduceKernel& r = ref.reduce[sizeof(T) == 4 ? 0 : 1];
  for (std::size_t n : kSizes) {
    const std::vector<T> v = inputs<T>(n, unsigned(n) + 11);
    std::vector<T> sk(64, T(0)), sr(64, T(0));  // sums then compensations
    k.add_lanes(v.data(), n, sk.data(), sk.data() + 32);
    r.add_lanes(v.data(), n, sr.data(), sr.data() + 32);
    k.add_lanes(v.data(), n, sk.data(), sk.data() + 32);  // lanes that already hold sums
    r.add_lanes(v.data(), n, sr.data(), sr.data() + 32);
    EXPECT_TRUE(same_bits(sk, sr)) << t.isa << " add_lanes n " << n;
    T ok, orf;
    k.combine(sk.data(), sk.data() + 32, 1, 1, 32, &ok);
    r.combine(sr.data(), sr.data() + 32, 1, 1, 32, &orf);
    EXPECT_TRUE(same_bits(std::vector<T>{ok}, std::vector<T>{orf})) << t.isa << " combine n " << n;
  }
  for (std::size_t m : {std::size_t(1), std::size_t(7), std::size_t(16), std::size_t(37), std::size_t(130)}) {
    std::vector<T> sk(2 * 32 * m, T(0)), sr(2 * 32 * m, T(0)), ok(m), orf(m);
    for (int lane = 0; lane < 32; ++lane)
      for (int rep = 0; rep < 3; ++rep) {
        const std::vector<T> v = inputs<T>(m, unsigned(lane * 3 + rep) + 5);
        const bool pad = rep == 2 && lane % 5 == 0;  // a padded block's zero row
        k.add_row(pad ? nullptr : v.data(), m, sk.data() + lane * m, sk.data() + (32 + lane) * m);
        r.add_row(pad ? nullptr : v.data(), m, sr.data() + lane * m, sr.data() + (32 + lane) * m);
      }
    EXPECT_TRUE(same_bits(sk, sr)) << t.isa << " add_row m " << m;
    for (int lanes : {1, 5, 32}) {
      k.combine(sk.data(), sk.data() + 32 * m, m, m, lanes, ok.data());
      r.combine(sr.data(), sr.data() + 32 * m, m, m, lanes, orf.data());
      EXPECT_TRUE(same_bits(ok, orf)) << t.isa << " combine m " << m << " lanes " << lanes;
    }
  }
}

TEST(Kernels, ReductionLanesMatchScalarBitForBit) {
  for (const auto& name : cpu::supported_isa_names()) {
    check_reduce<float>(*cpu::table_for(name), *cpu::table_for("scalar"));
    check_reduce<double>(*cpu::table_for(name), *cpu::table_for("scalar"));
  }
}

TEST(Kernels, StreamingStoresGiveTheBitsOfOrdinaryStores) {
  for (const auto& name : cpu::supported_isa_names()) {
    check_streaming<float>(*cpu::table_for(name));
    check_streaming<double>(*cpu::table_for(name));
  }
}

// Few long rows are shared by threads, phase by phase over whole chunks (engine.cpp split_row): the
// result must be one thread's whole-row call, bit for bit -- every ISA, dtype, op and direction, rows of
// 2 to 40 chunks (partials wrapping the 32 lanes), softmax in place too.
template <class S>
void check_split_rows(const cpu::KernelTable& t, int dt) {
  for (const auto& op : cpu::row_ops())
    for (int dir = 0; dir < 2; ++dir)
      for (std::size_t len : {std::size_t(70001), std::size_t(40 * 4096 + 5)}) {
        std::vector<S> x(len), y(len), whole(len), split(len);
        std::mt19937 rng(unsigned(len + dir));
        for (std::size_t i = 0; i < len; ++i) {
          const float xv = float(int(rng() % 4001) - 2000) / 100.0f, yv = float(rng() % 1000) / 1000.0f;
          if constexpr (std::is_same_v<S, half>) x[i] = to_half(xv), y[i] = to_half(yv);
          else if constexpr (std::is_same_v<S, bfloat16>) x[i] = to_bfloat16(xv), y[i] = to_bfloat16(yv);
          else x[i] = S(xv), y[i] = S(yv);
        }
        const cpu::RowKernel& k = t.row[op.id][dir][dt];
        k(x.data(), y.data(), whole.data(), len);
        const std::int64_t shape[1] = {std::int64_t(len)}, st[1] = {1};
        cpu::run_rows(k, int(sizeof(S)), 1, shape, 0, split.data(), st, {x.data(), st}, {dir ? y.data() : nullptr, st});
        EXPECT_EQ(0, std::memcmp(whole.data(), split.data(), len * sizeof(S)))
            << t.isa << " " << op.name << " dir " << dir << " dtype " << dt << " len " << len;
        if (dir == 0) {  // in place
          cpu::run_rows(k, int(sizeof(S)), 1, shape, 0, x.data(), st, {x.data(), st}, {nullptr, st});
          EXPECT_EQ(0, std::memcmp(whole.data(), x.data(), len * sizeof(S))) << t.isa << " " << op.name << " in place";
        }
      }
}

TEST(Rows, LongRowsSharedByThreadsMatchOneThread) {
  const int saved = cpu::num_threads();
  cpu::set_num_threads(3);
  for (const auto& name : cpu::supported_isa_names()) {
    const cpu::KernelTable& t = *cpu::table_for(name);
    check_split_rows<float>(t, cpu::kF32);
    check_split_rows<double>(t, cpu::kF64);
    check_split_rows<half>(t, cpu::kF16);
    check_split_rows<bfloat16>(t, cpu::kBF16);
  }
  cpu::set_num_threads(saved);
}

TEST(Kernels, EveryOpAndDirectionIsFilled) {
  for (const auto& name : cpu::supported_isa_names()) {
    const cpu::KernelTable* t = cpu::table_for(name);
    for (const auto& op : cpu::elementwise_ops())
      for (int dt = 0; dt < cpu::kNumDtypes; ++dt) {
        EXPECT_TRUE(t->ew[op.id][cpu::kForward][dt]) << op.name;
        if (op.kind == cpu::OpKind::SummedLoss) {  // a forward kernel only ("mean" and "sum" of its loss)
          EXPECT_FALSE(t->ew[op.id][cpu::kBackwardX][dt] || t->ew[op.id][cpu::kBackwardY][dt]) << op.name;
          continue;
        }
        EXPECT_EQ(bool(t->ew[op.id][cpu::kBackwardX][dt]), op.backward_from != BackwardFrom::FromY) << op.name;
        EXPECT_EQ(bool(t->ew[op.id][cpu::kBackwardY][dt]), op.backward_from != BackwardFrom::FromX) << op.name;
      }
    for (const auto& op : cpu::row_ops())
      for (int dir = 0; dir < 2; ++dir)
        for (int dt = 0; dt < cpu::kNumDtypes; ++dt) {
          const cpu::RowKernel& k = t->row[op.id][dir][dt];
          EXPECT_TRUE(k.rows && k.sums && k.write && (dir == 1) == (k.max == nullptr)) << op.name;
        }
  }
}

// The portable conversions against independent references, on a stride through all 2^32 floats plus
// every pattern near the half type's boundaries (overflow, subnormals, ties).
namespace {
double round_to_bits(double x, int mant_bits, int min_exp, double max_finite) {
  if (x == 0 || std::isinf(x)) return x;
  int e = std::ilogb(x);
  if (e < min_exp) e = min_exp;
  const double q = std::ldexp(std::nearbyint(std::ldexp(x, mant_bits - e)), e - mant_bits);  // ties to even
  // beyond the largest finite value by half a quantum or more: inf
  if (std::fabs(q) > max_finite) return std::copysign(INFINITY, x);
  return q;
}
}  // namespace

TEST(Conversions, HalfAndBfloat16RoundToNearestEven) {
  std::vector<std::uint32_t> pats;
  for (std::uint64_t u = 0; u < (1ull << 32); u += 251) pats.push_back(std::uint32_t(u));
  for (std::uint32_t hi = 0; hi < (1u << 16); ++hi)  // around every bfloat16 / half boundary
    for (std::uint32_t lo : {0x0000u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu, 0x1000u, 0x0fffu})
      pats.push_back((hi << 16) | lo);
  for (std::uint32_t u : pats) {
    float f;
    std::memcpy(&f, &u, 4);
    const half h = to_half(f);
    const bfloat16 b = to_bfloat16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(to_float(h)) && std::isnan(to_float(b))) << u;
      continue;
    }
    const float want_h = float(round_to_bits(f, 10, -14, 65504.0));
    const float want_b = float(round_to_bits(f, 7, -126, 0x1.fep127));
    const float got_h = to_float(h);
    ASSERT_EQ(std::memcmp(&want_h, &got_h, 4), 0) << std::hex << u << " " << got_h << " " << want_h;
    ASSERT_EQ(to_float(b), want_b) << std::hex << u;
    ASSERT_EQ(std::signbit(to_float(b)), std::signbit(want_b)) << std::hex << u;
  }
  for (std::uint32_t u = 0; u < (1u << 16); ++u) {  // half -> float -> half is the identity
    const half h{std::uint16_t(u)};
    if (!std::isnan(to_float(h))) {
      ASSERT_EQ(to_half(to_float(h)).bits, h.bits) << u;
    }
  }
}
