// Tables for 16-bit inputs. A float16 or bfloat16 input has only 65,536 bit patterns, so for an op whose
// math is costly (ops declare it: `tabulate16` in math/ops.h) large calls look results up instead of
// computing them. The tables are filled by the very vector kernels they stand in for, so a looked-up
// result is bit for bit the computed one:
//   forward      out = T[x]            T[x] = the kernel's rounded 16-bit result for x
//   backward_x   dx  = round(dy * G[x])  G[x] = backward_x(1, x) in float32: every tabulated op's
//                                       gradient is dy times a factor of x alone, multiplied last
// A table is built on the first call that can use it (one evaluation of the 65,536 patterns) and kept
// for the life of the process, one per (op, direction, dtype, parameter values); FASTACT_HALF_TABLES=0
// turns them off. Small calls compute: a lookup from a table not in cache costs more than the math.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastact/registry.h"
#include "kernels.h"

namespace fastact::cpu::tables16 {

// Calls of fewer elements compute (and never build a table).
constexpr std::int64_t kMinElements = 16384;
constexpr std::size_t kPatterns = 1 << 16;

struct Key {
  int op, dir, dtype;
  double params[kMaxParams];
};
// Fills table (kPatterns entries: uint16 for the forward, float for the gradient factor).
using Build = void (*)(void* table, const double* params);

// The table for key, built by build on first use; null when tables are off or the cache is full.
const void* get(const Key& key, std::size_t bytes, Build build);

// out[i] = table[a[i]] (a and out may be the same array).
void map(const std::uint16_t* table, const std::uint16_t* a, std::uint16_t* out, std::size_t n);
// out[i] = table[idx[i]].
void gather(const float* table, const std::uint16_t* idx, float* out, std::size_t n);

struct Stats {
  bool enabled;
  int count;
  std::size_t bytes;
};
Stats stats();

// The kernel for a call of n elements: the table kernel where there is one, tables are on and n is large
// enough; the computing kernel otherwise.
EwKernel pick(const KernelTable& t, int op, int dir, int dtype, std::int64_t n);

}  // namespace fastact::cpu::tables16
