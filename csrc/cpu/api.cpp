// The public C++ API (fastact/fastact.h), generated from the registry: each function validates its
// parameters and hands raw pointers to the engines with the active ISA's kernel.
#include <cstdint>
#include <string>
#include <utility>
#include <type_traits>

#include "dispatch.h"
#include "engine.h"
#include "fp_env.h"
#include "../layout.h"
#include "fastact/fastact.h"
#include "op_info.h"
#include "tables16.h"
#include "thread_pool.h"

#ifndef FASTACT_VERSION
#define FASTACT_VERSION "0.0.0"
#endif

namespace fastact {
namespace {

template <class T>
constexpr int dtype_of() {
  if constexpr (std::is_same_v<T, half>) return cpu::kF16;
  else if constexpr (std::is_same_v<T, bfloat16>) return cpu::kBF16;
  else return sizeof(T) == 4 ? cpu::kF32 : cpu::kF64;
}

// An output must have distinct elements and may share memory with an input only by being that input,
// element for element (in place): the pointer API has no temporary to take a partial overlap through.
template <class T>
void check_output(const char* fn, int ndim, const std::int64_t* shape, const T* out, const std::int64_t* so,
                  const T* const* ins, const std::int64_t* const* sins, int nins) {
  if (layout::has_internal_overlap(ndim, shape, so))
    throw Error(std::string(fn) + ": the output's strides make two results share one element");
  auto span = [&](const T* p, const std::int64_t* st) {
    std::int64_t lo = 0, hi = 0;
    for (int i = 0; i < ndim; ++i) {
      if (shape[i] == 0) return std::pair<const T*, const T*>(p, p);
      (st[i] < 0 ? lo : hi) += (shape[i] - 1) * st[i];
    }
    return std::pair<const T*, const T*>(p + lo, p + hi + 1);
  };
  const auto o = span(out, so);
  for (int k = 0; k < nins; ++k) {
    if (!ins[k]) continue;
    const auto in = span(ins[k], sins[k]);
    if (o.first == o.second || in.first == in.second || o.second <= in.first || in.second <= o.first) continue;
    bool same = ins[k] == out;
    for (int i = 0; same && i < ndim; ++i) same = shape[i] == 1 || sins[k][i] == so[i];
    if (!same)
      throw Error(std::string(fn) + ": the output overlaps an input without being that input element for element "
                                    "(in place); pass separate arrays");
  }
}

template <class T>
void run_ew(ElementwiseOp op, int dir, const T* a, std::ptrdiff_t sa, const T* b, T* out, std::ptrdiff_t so,
            std::size_t n, const double* params) {
  const cpu::FpEnvScope fp;  // the checks too: a float32 overflow check traps where overflow is unmasked
  const cpu::OpInfo& info = cpu::elementwise_ops()[int(op)];
  cpu::check_params(info, params, dtype_of<T>(), dir != cpu::kForward);
  if (dir == cpu::kBackwardY) cpu::check_backward_from_y(info, params);
  const std::int64_t shape[1] = {std::int64_t(n)};
  const std::int64_t s_a[1] = {sa}, s_o[1] = {so};
  const T* ins[2] = {a, b};
  const std::int64_t* sins[2] = {s_a, s_a};
  check_output(info.name, 1, shape, out, s_o, ins, sins, 2);
  cpu::EwKernel k = cpu::tables16::pick(cpu::active_table(), int(op), dir, dtype_of<T>(), std::int64_t(n));
  cpu::run_elementwise(k, sizeof(T), 1, shape, out, s_o, {a, s_a}, {b, s_a}, params);
}

template <class T>
void run_row(RowOp op, int dir, const T* a, const T* b, T* out, std::ptrdiff_t row_a, std::ptrdiff_t col_a,
             std::ptrdiff_t row_o, std::ptrdiff_t col_o, std::size_t rows, std::size_t cols) {
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(cols)};
  const std::int64_t s_a[2] = {row_a, col_a}, s_o[2] = {row_o, col_o};
  const T* ins[2] = {a, b};
  const std::int64_t* sins[2] = {s_a, s_a};
  check_output(cpu::row_ops()[int(op)].name, 2, shape, out, s_o, ins, sins, 2);
  cpu::RowKernel k = cpu::active_table().row[int(op)][dir][dtype_of<T>()];
  cpu::run_rows(k, sizeof(T), 2, shape, 1, out, s_o, {a, s_a}, {b, s_a});
}

}  // namespace

const char* version() { return FASTACT_VERSION; }
std::vector<std::string> compiled_isas() { return cpu::compiled_isa_names(); }
std::vector<std::string> supported_isas() { return cpu::supported_isa_names(); }
std::string current_isa() { return cpu::active_table().isa; }
void set_isa(const std::string& name) { cpu::select_isa(name); }
int num_threads() { return cpu::num_threads(); }
void set_num_threads(int n) {
  if (n < 1 || n > cpu::kMaxThreads)
    throw Error("set_num_threads: n must be from 1 to " + std::to_string(cpu::kMaxThreads) + ", got " + std::to_string(n));
  cpu::set_num_threads(n);
}

#define FASTACT_P_DEF(type, name, def, check, choices) , type name
#define FASTACT_P_VAL(type, name, def, check, choices) , param_value(name)
#define FASTACT_SIG(params) FASTACT_PARAMS_APPLY(DEF, params)
#define FASTACT_PACK(params) const double p[kMaxParams + 1] = {0 FASTACT_PARAMS_APPLY(VAL, params)};
#define FASTACT_DEF_Y_FromX(op, T, params)
#define FASTACT_DEF_Y_FromXorY(op, T, params)                                                   \
  void op##_backward_from_y(const T* dy, const T* y, T* dx, std::size_t n FASTACT_SIG(params)) { \
    FASTACT_PACK(params)                                                                         \
    run_ew<T>(ElementwiseOp::op, cpu::kBackwardY, dy, 1, y, dx, 1, n, p + 1);                    \
  }
#define FASTACT_DEF_Y_FromXorYIfPos FASTACT_DEF_Y_FromXorY
#define FASTACT_DEF_EW_T(op, from, T, params)                                                     \
  void op(const T* x, T* y, std::size_t n FASTACT_SIG(params)) {                                   \
    FASTACT_PACK(params)                                                                           \
    run_ew<T>(ElementwiseOp::op, cpu::kForward, x, 1, nullptr, y, 1, n, p + 1);                    \
  }                                                                                                \
  void op(const T* x, std::ptrdiff_t x_stride, T* y, std::ptrdiff_t y_stride,                      \
          std::size_t n FASTACT_SIG(params)) {                                                     \
    FASTACT_PACK(params)                                                                           \
    run_ew<T>(ElementwiseOp::op, cpu::kForward, x, x_stride, nullptr, y, y_stride, n, p + 1);      \
  }                                                                                                \
  void op##_backward(const T* dy, const T* x, T* dx, std::size_t n FASTACT_SIG(params)) {          \
    FASTACT_PACK(params)                                                                           \
    run_ew<T>(ElementwiseOp::op, cpu::kBackwardX, dy, 1, x, dx, 1, n, p + 1);                      \
  }                                                                                                \
  FASTACT_DEF_Y_##from(op, T, params)
#define FASTACT_DEF_EW(op, F, from, doc, params)                                      \
  FASTACT_DEF_EW_T(op, from, float, params) FASTACT_DEF_EW_T(op, from, double, params) \
  FASTACT_DEF_EW_T(op, from, half, params) FASTACT_DEF_EW_T(op, from, bfloat16, params)

FASTACT_ELEMENTWISE_OPS(FASTACT_DEF_EW)

#define FASTACT_DEF_ROW_T(op, T)                                                                         \
  void op(const T* x, T* y, std::size_t rows, std::size_t cols) {                                         \
    run_row<T>(RowOp::op, 0, x, nullptr, y, std::ptrdiff_t(cols), 1, std::ptrdiff_t(cols), 1, rows, cols); \
  }                                                                                                       \
  void op(const T* x, std::ptrdiff_t x_row_stride, std::ptrdiff_t x_col_stride, T* y,                     \
          std::ptrdiff_t y_row_stride, std::ptrdiff_t y_col_stride, std::size_t rows, std::size_t cols) {  \
    run_row<T>(RowOp::op, 0, x, nullptr, y, x_row_stride, x_col_stride, y_row_stride, y_col_stride, rows, cols); \
  }                                                                                                       \
  void op##_backward(const T* dy, const T* y, T* dx, std::size_t rows, std::size_t cols) {                \
    run_row<T>(RowOp::op, 1, dy, y, dx, std::ptrdiff_t(cols), 1, std::ptrdiff_t(cols), 1, rows, cols);      \
  }
#define FASTACT_DEF_ROW(op, F, from, doc) \
  FASTACT_DEF_ROW_T(op, float) FASTACT_DEF_ROW_T(op, double) FASTACT_DEF_ROW_T(op, half) FASTACT_DEF_ROW_T(op, bfloat16)
FASTACT_ROW_OPS(FASTACT_DEF_ROW)

}  // namespace fastact
