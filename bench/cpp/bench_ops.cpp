// C++ microbenchmarks (Google Benchmark): one benchmark per registry op x direction x ISA x dtype x size,
// on the single-threaded kernels (what an ISA path costs per element, free of threading and Python),
// plus the threaded public engine at each size. Reports elements/s and bytes/s (bytes read + written),
// over wall-clock time.
//
//   cmake -S . -B build -DFASTACT_BUILD_BENCHMARKS=ON && cmake --build build -j --target fastact_bench
//   build/bench/cpp/fastact_bench --benchmark_filter='gelu/fwd/avx512/f32'
//
// Names: <op>/<fwd|bwd_x|bwd_y>/<isa|engine>/<f32|f64|f16|bf16>/<elements>.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/engine.h"
#include "cpu/kernels.h"
#include "cpu/op_info.h"
#include "fastact/half.h"

using namespace fastact;

namespace {

const char* kDtypeNames[] = {"f32", "f64", "f16", "bf16"};
const char* kDirNames[] = {"fwd", "bwd_x", "bwd_y"};
const int kElsize[] = {4, 8, 2, 2};
const std::int64_t kSizes[] = {1 << 10, 1 << 16, 1 << 20};

// Bytes holding n values of the dtype, uniform in [-8, 8] (the range where every op does real work).
std::vector<unsigned char> values(int dtype, std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  std::vector<unsigned char> b(std::size_t(n) * kElsize[dtype] + 64);
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = u(rng);
    unsigned char* p = b.data() + std::size_t(i) * kElsize[dtype];
    if (dtype == kinds::kF32) std::memcpy(p, &v, 4);
    else if (dtype == kinds::kF64) { const double d = v; std::memcpy(p, &d, 8); }
    else if (dtype == kinds::kF16) { const half h = to_half(v); std::memcpy(p, &h, 2); }
    else { const bfloat16 h = to_bfloat16(v); std::memcpy(p, &h, 2); }
  }
  return b;
}

std::vector<double> defaults(const cpu::OpInfo& op) {
  std::vector<double> p(kMaxParams, 0.0);
  for (std::size_t i = 0; i < op.params.size(); ++i) p[i] = op.params[i].default_value;
  return p;
}

void finish(benchmark::State& st, std::int64_t n, int dtype, int operands) {
  st.SetItemsProcessed(st.iterations() * n);
  st.SetBytesProcessed(st.iterations() * n * kElsize[dtype] * operands);
}

void register_all() {
  std::vector<std::string> isas = cpu::supported_isa_names();
  isas.push_back("engine");  // the public path: all threads, the ISA in use
  for (const auto& op : cpu::elementwise_ops()) {
    for (int dir = 0; dir < kinds::kNumDirections; ++dir) {
      for (const auto& isa : isas) {
        const cpu::KernelTable* t = isa == "engine" ? &cpu::active_table() : cpu::table_for(isa);
        for (int dt = 0; dt < kinds::kNumDtypes; ++dt) {
          const cpu::EwKernel k = t->ew[op.id][dir][dt];
          if (!k) continue;
          for (std::int64_t n : kSizes) {
            const std::string name = std::string(op.name) + "/" + kDirNames[dir] + "/" + isa + "/" + kDtypeNames[dt] +
                                     "/" + std::to_string(n);
            const bool engine = isa == "engine";
            const int ni = op.n_in[dir], no = op.n_out[dir];
            // contributions to a reduction (a broadcast operand's gradient, a loss's "sum") come from the
            // reduction engine, not this one: their kernels run alone here, into compute-type buffers
            if (engine && op.n_reduced[dir]) continue;
            benchmark::RegisterBenchmark(name.c_str(), [k, n, dt, ni, no, engine, p = defaults(op)](benchmark::State& st) {
              std::vector<decltype(values(dt, n, 1))> in, out;
              for (int i = 0; i < ni; ++i) in.push_back(values(dt, n, unsigned(1 + i)));
              for (int o = 0; o < no; ++o) out.push_back(values(kinds::kF64, n, unsigned(10 + o)));  // room for any type
              const std::int64_t one = 1;
              std::vector<cpu::Operand> ins, outs;
              std::vector<const void*> pin;
              std::vector<void*> pout;
              for (auto& v : in) ins.push_back({v.data(), &one}), pin.push_back(v.data());
              for (auto& v : out) outs.push_back({v.data(), &one}), pout.push_back(v.data());
              for (auto _ : st) {
                if (engine)
                  cpu::run_elementwise(k, kElsize[dt], 1, &n, no, outs.data(), ni, ins.data(), p.data());
                else
                  k.fn(pin.data(), pout.data(), std::size_t(n), p.data());
                benchmark::ClobberMemory();
              }
              finish(st, n, dt, ni + no);
            })->UseRealTime();
          }
        }
      }
    }
  }
  for (const auto& op : cpu::row_ops()) {
    for (int dir = 0; dir < 2; ++dir) {
      for (const auto& isa : isas) {
        const cpu::KernelTable* t = isa == "engine" ? &cpu::active_table() : cpu::table_for(isa);
        for (int dt = 0; dt < kinds::kNumDtypes; ++dt) {
          const cpu::RowKernel k = t->row[op.id][dir][dt];
          for (std::int64_t n : kSizes) {
            const std::string name = std::string(op.name) + "/" + (dir ? "bwd_y" : "fwd") + "/" + isa + "/" +
                                     kDtypeNames[dt] + "/" + std::to_string(n);
            const bool engine = isa == "engine";
            benchmark::RegisterBenchmark(name.c_str(), [k, n, dt, dir, engine](benchmark::State& st) {
              constexpr std::int64_t kRow = 1024;  // rows of 1024, as bench/compare.py
              const std::int64_t shape[2] = {n / kRow, kRow}, strides[2] = {kRow, 1};
              auto a = values(dt, n, 1), b = values(dt, n, 2), o = values(dt, n, 3);
              const void* pb = dir ? b.data() : nullptr;
              for (auto _ : st) {
                if (engine)
                  cpu::run_rows(k, kElsize[dt], 2, shape, 1, o.data(), strides, {a.data(), strides}, {pb, strides});
                else
                  for (std::int64_t r = 0; r < shape[0]; ++r)
                    k(a.data() + r * kRow * kElsize[dt], pb ? b.data() + r * kRow * kElsize[dt] : nullptr,
                      o.data() + r * kRow * kElsize[dt], std::size_t(kRow));
                benchmark::ClobberMemory();
              }
              finish(st, n, dt, dir ? 3 : 2);
            })->UseRealTime();
          }
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("fastact ISA in use", cpu::active_table().isa);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
