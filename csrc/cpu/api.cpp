// The public C++ API (fastact/fastact.h), generated from the registry: each function validates its
// parameters and hands raw pointers to the engines with the active ISA's kernel.
#include <cmath>
#include <cstdint>
#include <vector>
#include <string>
#include <utility>
#include <type_traits>

#include "dispatch.h"
#include "engine.h"
#include "fp_env.h"
#include "losses.h"
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
  std::int64_t bo[layout::kMaxDims], bi[layout::kMaxDims];  // byte strides
  for (int i = 0; i < ndim; ++i) bo[i] = so[i] * std::int64_t(sizeof(T));
  for (int k = 0; k < nins; ++k) {
    if (!ins[k]) continue;
    for (int i = 0; i < ndim; ++i) bi[i] = sins[k][i] * std::int64_t(sizeof(T));
    if (layout::overlaps_differently(reinterpret_cast<std::uintptr_t>(out), bo, reinterpret_cast<std::uintptr_t>(ins[k]),
                                     bi, ndim, shape, sizeof(T)))
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

// A gated op over nin inputs and nout outputs of one shape (the two-array form: 1-d; the one-array form:
// rows of halves, 2-d), each output checked against the inputs and the other output.
template <class T>
void run_gated(ElementwiseOp op, int dir, int ndim, const std::int64_t* shape, int nin, const T* const* in,
               const std::int64_t* const* sin, int nout, T* const* out, const std::int64_t* const* sout,
               const double* params) {
  const cpu::FpEnvScope fp;
  const cpu::OpInfo& info = cpu::elementwise_ops()[int(op)];
  cpu::check_params(info, params, dtype_of<T>(), dir != cpu::kForward);
  const std::string fn = std::string(info.name) + (dir ? "_backward" : "");
  for (int o = 0; o < nout; ++o) check_output(fn.c_str(), ndim, shape, out[o], sout[o], in, sin, nin);
  if (nout == 2) {
    std::int64_t b0[2], b1[2];
    for (int i = 0; i < ndim; ++i) b0[i] = sout[0][i] * std::int64_t(sizeof(T)), b1[i] = sout[1][i] * std::int64_t(sizeof(T));
    if (layout::may_share_memory(reinterpret_cast<std::uintptr_t>(out[0]), ndim, shape, b0,
                                 reinterpret_cast<std::uintptr_t>(out[1]), ndim, shape, b1, sizeof(T)))
      throw Error(fn + ": the two outputs share memory");
  }
  cpu::Operand ci[3], co[2];
  for (int i = 0; i < nin; ++i) ci[i] = {in[i], sin[i]};
  for (int o = 0; o < nout; ++o) co[o] = {out[o], sout[o]};
  cpu::run_elementwise(cpu::active_table().ew[int(op)][dir][dtype_of<T>()], sizeof(T), ndim, shape, nout, co, nin, ci,
                       params);
}

// An op with a broadcast operand (prelu, bias_act) on x of shape (outer, channels, inner), contiguous, w one
// value per channel: forward in = {x, w}; backward in = {dy, x, w} -> dx and dw (channels values, summed
// by the reduction engine). Outputs may be their matching inputs (dx: x or dy; dw: w).
template <class T>
void run_broadcast(ElementwiseOp op, int dir, std::size_t outer, std::size_t channels, std::size_t inner,
                   const T* const* in, T* out, T* dw, const double* params) {
  const cpu::FpEnvScope fp;
  const cpu::OpInfo& info = cpu::elementwise_ops()[int(op)];
  cpu::check_params(info, params, dtype_of<T>(), dir != cpu::kForward);
  const std::string fn = std::string(info.name) + (dir ? "_backward" : "");
  const std::int64_t shape[3] = {std::int64_t(outer), std::int64_t(channels), std::int64_t(inner)};
  const std::int64_t sx[3] = {std::int64_t(channels * inner), std::int64_t(inner), 1}, sw[3] = {0, 1, 0};
  const int nin = dir ? 3 : 2;
  const std::int64_t* sin[3] = {sx, dir ? sx : sw, sw};
  check_output(fn.c_str(), 3, shape, out, sx, in, sin, nin - 1);  // against x (and dy); w below
  const std::int64_t total = std::int64_t(outer * channels * inner), one_byte[1] = {std::int64_t(sizeof(T))};
  const std::int64_t nw[1] = {std::int64_t(channels)};
  const auto shares = [&](const void* a, std::int64_t na, const void* b, std::int64_t nb) {
    const std::int64_t la[1] = {na}, lb[1] = {nb};
    return layout::may_share_memory(reinterpret_cast<std::uintptr_t>(a), 1, la, one_byte,
                                    reinterpret_cast<std::uintptr_t>(b), 1, lb, one_byte, sizeof(T));
  };
  const T* w = in[nin - 1];
  if (shares(out, total, w, nw[0]))
    throw Error(fn + ": the output overlaps the " + info.operand + "; pass separate arrays");
  if (dir) {
    if (shares(dw, nw[0], out, total) || shares(dw, nw[0], in[0], total) || shares(dw, nw[0], in[1], total))
      throw Error(fn + ": the " + info.operand + "'s gradient overlaps another array; pass separate arrays");
    if (dw != w && shares(dw, nw[0], w, nw[0]))
      throw Error(fn + ": the " + info.operand + "'s gradient overlaps the " + info.operand +
                  " without being it (in place); pass separate arrays");
  }
  cpu::Operand ci[3], co[1] = {{out, sx}};
  for (int i = 0; i < nin; ++i) ci[i] = {in[i], sin[i]};
  const cpu::KernelTable& t = cpu::active_table();
  const cpu::EwKernel k = t.ew[int(op)][dir][dtype_of<T>()];
  if (!dir) {
    cpu::run_elementwise(k, sizeof(T), 3, shape, 1, co, nin, ci, params);
    return;
  }
  const std::int64_t reduced_shape[3] = {1, std::int64_t(channels), 1};
  cpu::run_reduction(k, t.reduce, dtype_of<T>(), 3, shape, 1, co, nin, ci, {dw, sw}, reduced_shape, params);
}

}  // namespace

const char* version() { return FASTACT_VERSION; }
std::vector<std::string> compiled_isas() { return cpu::compiled_isa_names(); }
std::vector<std::string> supported_isas() { return cpu::supported_isa_names(); }
std::string current_isa() { return cpu::active_table().isa; }
void set_isa(const std::string& name) { cpu::select_isa(name); }
int num_threads() { return cpu::num_threads(); }
void set_num_threads(int n) { cpu::set_num_threads(n); }

#define FASTACT_P_DEF(type, name, def, check, choices, init) , type name
#define FASTACT_P_VAL(type, name, def, check, choices, init) , param_value(name)
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

// Gated ops: two arrays of n (gate, up), or rows of 2 * half split in halves (a, b) along each row.
#define FASTACT_DEF_GATED_T(op, T, params)                                                                       \
  void op(const T* gate, const T* up, T* y, std::size_t n FASTACT_SIG(params)) {                                  \
    FASTACT_PACK(params)                                                                                          \
    const std::int64_t shape[1] = {std::int64_t(n)}, one[1] = {1};                                                \
    const T* in[2] = {gate, up};                                                                                  \
    const std::int64_t* s[2] = {one, one};                                                                        \
    run_gated<T>(ElementwiseOp::op, cpu::kForward, 1, shape, 2, in, s, 1, &y, s, p + 1);                          \
  }                                                                                                               \
  void op(const T* x, T* y, std::size_t rows, std::size_t half_len FASTACT_SIG(params)) {                             \
    FASTACT_PACK(params)                                                                                          \
    const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(half_len)};                                      \
    const std::int64_t sx[2] = {2 * std::int64_t(half_len), 1}, sy[2] = {std::int64_t(half_len), 1};                     \
    const T* in[2] = {x, x + half_len};                                                                               \
    const std::int64_t* s_in[2] = {sx, sx};                                                                       \
    const std::int64_t* s_out[1] = {sy};                                                                          \
    run_gated<T>(ElementwiseOp::op, cpu::kForward, 2, shape, 2, in, s_in, 1, &y, s_out, p + 1);                   \
  }                                                                                                               \
  void op##_backward(const T* dy, const T* gate, const T* up, T* dgate, T* dup, std::size_t n FASTACT_SIG(params)) { \
    FASTACT_PACK(params)                                                                                          \
    const std::int64_t shape[1] = {std::int64_t(n)}, one[1] = {1};                                                \
    const T* in[3] = {dy, gate, up};                                                                              \
    T* out[2] = {dgate, dup};                                                                                     \
    const std::int64_t* s[3] = {one, one, one};                                                                   \
    run_gated<T>(ElementwiseOp::op, cpu::kBackwardX, 1, shape, 3, in, s, 2, out, s, p + 1);                      \
  }                                                                                                               \
  void op##_backward(const T* dy, const T* x, T* dx, std::size_t rows, std::size_t half_len FASTACT_SIG(params)) {    \
    FASTACT_PACK(params)                                                                                          \
    const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(half_len)};                                      \
    const std::int64_t sx[2] = {2 * std::int64_t(half_len), 1}, sdy[2] = {std::int64_t(half_len), 1};                    \
    const T* in[3] = {dy, x, x + half_len};                                                                           \
    T* out[2] = {dx, dx + half_len};                                                                                  \
    const std::int64_t* s_in[3] = {sdy, sx, sx};                                                                  \
    const std::int64_t* s_out[2] = {sx, sx};                                                                      \
    run_gated<T>(ElementwiseOp::op, cpu::kBackwardX, 2, shape, 3, in, s_in, 2, out, s_out, p + 1);               \
  }
#define FASTACT_DEF_GATED(op, Act, which, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DEF_GATED_T, op, params)
FASTACT_GATED_OPS(FASTACT_DEF_GATED)

// Broadcast ops: x of (outer, channels, inner), contiguous, a weight of channels values.
#define FASTACT_DEF_BROADCAST_T(op, T, params)                                                                   \
  void op(const T* x, const T* w, T* y, std::size_t outer, std::size_t channels,                                \
          std::size_t inner FASTACT_SIG(params)) {                                                               \
    FASTACT_PACK(params)                                                                                          \
    const T* in[2] = {x, w};                                                                                      \
    run_broadcast<T>(ElementwiseOp::op, cpu::kForward, outer, channels, inner, in, y, nullptr, p + 1);          \
  }                                                                                                               \
  void op##_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, std::size_t outer, std::size_t channels, \
                     std::size_t inner FASTACT_SIG(params)) {                                                    \
    FASTACT_PACK(params)                                                                                          \
    const T* in[3] = {dy, x, w};                                                                                  \
    run_broadcast<T>(ElementwiseOp::op, cpu::kBackwardX, outer, channels, inner, in, dx, dw, p + 1);            \
  }
#define FASTACT_DEF_BROADCAST(op, F, operand, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DEF_BROADCAST_T, op, params)
FASTACT_BROADCAST_OPS(FASTACT_DEF_BROADCAST)

// bias_act: rows of cols, contiguous, the bias along each row.
#define FASTACT_DEF_BIAS_T(op, T, params)                                                                        \
  void bias_##op(const T* x, const T* b, T* y, std::size_t rows, std::size_t cols FASTACT_SIG(params)) {     \
    FASTACT_PACK(params)                                                                                          \
    const T* in[2] = {x, b};                                                                                   \
    run_broadcast<T>(ElementwiseOp::bias_act_##op, cpu::kForward, rows, cols, 1, in, y, nullptr, p + 1);        \
  }                                                                                                               \
  void bias_##op##_backward(const T* dy, const T* x, const T* b, T* dx, T* db, std::size_t rows,         \
                            std::size_t cols FASTACT_SIG(params)) {                                              \
    FASTACT_PACK(params)                                                                                          \
    const T* in[3] = {dy, x, b};                                                                               \
    run_broadcast<T>(ElementwiseOp::bias_act_##op, cpu::kBackwardX, rows, cols, 1, in, dx, db, p + 1);       \
  }
#define FASTACT_DEF_BIAS(op, F, from, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DEF_BIAS_T, op, params)
FASTACT_ELEMENTWISE_OPS(FASTACT_DEF_BIAS)

// Losses: rows of contiguous classes.
namespace {
std::vector<std::int64_t> checked_targets(const char* fn, const std::int64_t* target, std::size_t rows,
                                          std::size_t classes, std::int64_t ignore_index) {
  std::vector<std::int64_t> t(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int64_t v = target[r];
    if (v == ignore_index) t[r] = -1;
    else if (v < 0 || std::uint64_t(v) >= classes)
      throw Error(std::string(fn) + ": target " + std::to_string(v) + " of row " + std::to_string(r) +
                  " is not a class in [0, " + std::to_string(classes) + ") (nor ignore_index=" +
                  std::to_string(ignore_index) + ")");
    else t[r] = v;
  }
  return t;
}

cpu::CrossEntropy checked_options(const char* fn, const CrossEntropyOptions& o, const std::int64_t* t) {
  if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
    throw Error(std::string(fn) + ": label_smoothing must be in [0, 1]");
  if (!(o.z_loss >= 0 && std::isfinite(o.z_loss))) throw Error(std::string(fn) + ": z_loss must be finite and >= 0");
  if (int(o.reduction) < 0 || int(o.reduction) > 2) throw Error(std::string(fn) + ": no such reduction");
  return cpu::CrossEntropy{t, o.weight, o.label_smoothing, o.z_loss, cpu::Reduction(int(o.reduction))};
}

template <class T>
double cross_entropy_t(const T* logits, const std::int64_t* target, std::size_t rows, std::size_t classes,
                       const CrossEntropyOptions& o, double* per_row) {
  const cpu::FpEnvScope fp;
  if (o.reduction == Reduction::none && !per_row && rows) throw Error("cross_entropy: Reduction::none needs per_row");
  const std::vector<std::int64_t> t = checked_targets("cross_entropy", target, rows, classes, o.ignore_index);
  const cpu::CrossEntropy ce = checked_options("cross_entropy", o, t.data());
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(classes)}, st[2] = {std::int64_t(classes), 1};
  return cpu::run_cross_entropy(dtype_of<T>(), 2, shape, {logits, st}, ce, per_row);
}

template <class T>
void cross_entropy_backward_t(const double* grad, const T* logits, const std::int64_t* target, T* dlogits,
                              std::size_t rows, std::size_t classes, const CrossEntropyOptions& o) {
  const cpu::FpEnvScope fp;
  const std::vector<std::int64_t> t = checked_targets("cross_entropy_backward", target, rows, classes, o.ignore_index);
  const cpu::CrossEntropy ce = checked_options("cross_entropy_backward", o, t.data());
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(classes)}, st[2] = {std::int64_t(classes), 1};
  const T* ins[1] = {logits};
  const std::int64_t* sins[1] = {st};
  check_output("cross_entropy_backward", 2, shape, dlogits, st, ins, sins, 1);
  cpu::run_cross_entropy_backward(dtype_of<T>(), 2, shape, {logits, st}, dlogits, st, ce, grad);
}

template <class T>
double nll_loss_t(const T* x, const std::int64_t* target, std::size_t rows, std::size_t classes,
                  const CrossEntropyOptions& o, double* per_row) {
  if (o.reduction == Reduction::none && !per_row && rows) throw Error("nll_loss: Reduction::none needs per_row");
  if (o.label_smoothing != 0 || o.z_loss != 0) throw Error("nll_loss: label_smoothing and z_loss are cross_entropy's");
  const std::vector<std::int64_t> t = checked_targets("nll_loss", target, rows, classes, o.ignore_index);
  const cpu::CrossEntropy ce = checked_options("nll_loss", o, t.data());
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(classes)}, st[2] = {std::int64_t(classes), 1};
  return cpu::run_nll(dtype_of<T>(), 2, shape, {x, st}, ce, per_row);
}

template <class T>
void nll_loss_backward_t(const double* grad, const std::int64_t* target, T* dx, std::size_t rows, std::size_t classes,
                         const CrossEntropyOptions& o) {
  if (o.label_smoothing != 0 || o.z_loss != 0) throw Error("nll_loss_backward: label_smoothing and z_loss are cross_entropy's");
  const std::vector<std::int64_t> t = checked_targets("nll_loss_backward", target, rows, classes, o.ignore_index);
  const cpu::CrossEntropy ce = checked_options("nll_loss_backward", o, t.data());
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(classes)}, st[2] = {std::int64_t(classes), 1};
  cpu::run_nll_backward(dtype_of<T>(), 2, shape, dx, st, ce, grad);
}

template <class T>
double cross_entropy_probs_t(const T* logits, const T* probs, T* dlogits, const double* grad, std::size_t rows,
                             std::size_t classes, const CrossEntropyOptions& o, double* per_row) {
  const cpu::FpEnvScope fp;
  const char* fn = dlogits ? "cross_entropy_probs_backward" : "cross_entropy_probs";
  if (!dlogits && o.reduction == Reduction::none && !per_row && rows) throw Error(std::string(fn) + ": Reduction::none needs per_row");
  const cpu::CrossEntropy ce = checked_options(fn, o, nullptr);
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(classes)}, st[2] = {std::int64_t(classes), 1};
  const cpu::ProbTargets pt{{probs, st}, o.weight, o.label_smoothing, o.z_loss, ce.reduction};
  if (!dlogits) return cpu::run_cross_entropy_probs(dtype_of<T>(), 2, shape, {logits, st}, pt, per_row);
  const T* ins[2] = {logits, probs};
  const std::int64_t* sins[2] = {st, st};
  check_output(fn, 2, shape, dlogits, st, ins, sins, 2);  // dlogits may be logits (probs: refused below)
  if (rows && classes && dlogits == probs) throw Error(std::string(fn) + ": dlogits cannot be probs (read for every row)");
  cpu::run_cross_entropy_probs_backward(dtype_of<T>(), 2, shape, {logits, st}, dlogits, st, pt, grad);
  return 0;
}

template <class T>
void logsumexp_t(const T* x, T* y, std::size_t rows, std::size_t cols) {
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(cols)}, st[2] = {std::int64_t(cols), 1};
  std::vector<double> lse(rows);
  cpu::run_logsumexp(dtype_of<T>(), 2, shape, {x, st}, lse.data());
  for (std::size_t r = 0; r < rows; ++r) y[r] = from_double<T>(lse[r]);
}

template <class T>
void logsumexp_backward_t(const T* dy, const T* x, T* dx, std::size_t rows, std::size_t cols) {
  const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(cols)}, st[2] = {std::int64_t(cols), 1};
  const T* ins[1] = {x};
  const std::int64_t* sins[1] = {st};
  check_output("logsumexp_backward", 2, shape, dx, st, ins, sins, 1);
  std::vector<double> coef(4 * rows, 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) coef[4 * r] = double(to_float(dy[r]));
    else coef[4 * r] = double(dy[r]);
  }
  cpu::run_loss_grad(dtype_of<T>(), 2, shape, {x, st}, dx, st, nullptr, nullptr, coef.data());
}
template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) return double(to_float(v));
  else return double(v);
}

// An element-wise loss (dir 0: the loss, reduced or into out; dir 1: the gradient into out), its weights
// null for 1 (a stride-0 operand).
template <class T>
double run_loss_op(ElementwiseOp op, int dir, Reduction reduction, const T* dy, const T* input, const T* target,
                   std::initializer_list<const T*> weights, T* out, std::size_t n, const double* params_in) {
  const cpu::FpEnvScope fp;
  const cpu::OpInfo& info = cpu::elementwise_ops()[int(op)];
  const std::string fn = std::string(info.name) + (dir ? "_backward" : "");
  if (int(reduction) < 0 || int(reduction) > 2) throw Error(fn + ": no such reduction");
  const int nw = info.n_in[0] - 2;
  if (int(weights.size()) > nw)
    throw Error(fn + ": " + std::to_string(weights.size()) + " weights given; it takes " + std::to_string(nw) +
                (nw ? std::string(" (the last of: ") + info.operand + ")" : std::string()));
  double p[kMaxParams] = {};
  for (int i = 0; i < kMaxParams - 1; ++i) p[i] = params_in[i];
  cpu::check_params(info, p, dtype_of<T>(), dir != 0);
  const bool none = reduction == Reduction::none;
  if (!input || !target || ((none || dir) && !out) || (dir && !dy)) {
    if (n) throw Error(fn + ": a null array");
  }
  T one;
  if constexpr (std::is_same_v<T, half>) one = to_half(1.0f);
  else if constexpr (std::is_same_v<T, bfloat16>) one = to_bfloat16(1.0f);
  else one = T(1);
  const std::int64_t shape[1] = {std::int64_t(n)}, unit[1] = {1}, splat[1] = {0};
  cpu::Operand ins[layout::kMaxOperands];
  int nin = 0;
  if (dir) ins[nin++] = none ? cpu::Operand{dy, unit} : cpu::Operand{&one, splat};
  ins[nin++] = {input, unit};
  ins[nin++] = {target, unit};
  for (int i = 0; i < nw; ++i) {
    const T* w = i < int(weights.size()) ? weights.begin()[i] : nullptr;
    ins[nin++] = w ? cpu::Operand{w, unit} : cpu::Operand{&one, splat};
  }
  const cpu::KernelTable& table = cpu::active_table();
  const int dt = dtype_of<T>();
  if (!dir && !none) {
    const double total = cpu::run_total(table.ew[info.summed][0][dt], table.reduce, dt, 1, shape, nin, ins, p);
    return reduction == Reduction::mean ? total / double(n) : total;
  }
  p[kGradScale] = !dir || none ? 1.0 : to_double(dy ? *dy : one) / (reduction == Reduction::mean ? double(n) : 1.0);
  const T* in_ptrs[layout::kMaxOperands];
  const std::int64_t* in_strides[layout::kMaxOperands];
  for (int i = 0; i < nin; ++i) {
    in_ptrs[i] = static_cast<const T*>(ins[i].data);
    in_strides[i] = ins[i].strides;
  }
  check_output(fn.c_str(), 1, shape, out, unit, in_ptrs, in_strides, nin);
  const cpu::Operand o[1] = {{out, unit}};
  cpu::run_elementwise(table.ew[int(op)][dir][dt], int(sizeof(T)), 1, shape, 1, o, nin, ins, p);
  return 0;
}
}  // namespace

#define FASTACT_DEF_LOSS_OP_T(op, T, params)                                                                       \
  double op(const T* input, const T* target, std::size_t n, Reduction reduction, T* loss,                          \
            std::initializer_list<const T*> weights FASTACT_SIG(params)) {                                         \
    FASTACT_PACK(params)                                                                                            \
    return run_loss_op<T>(ElementwiseOp::op, 0, reduction, nullptr, input, target, weights, loss, n, p + 1);        \
  }                                                                                                                 \
  void op##_backward(const T* grad, const T* input, const T* target, T* grad_input, std::size_t n,                  \
                     Reduction reduction, std::initializer_list<const T*> weights FASTACT_SIG(params)) {            \
    FASTACT_PACK(params)                                                                                            \
    run_loss_op<T>(ElementwiseOp::op, 1, reduction, grad, input, target, weights, grad_input, n, p + 1);           \
  }
#define FASTACT_DEF_LOSS_OP(op, L, operands, doc, params) FASTACT_EACH_STORAGE_T(FASTACT_DEF_LOSS_OP_T, op, params)
FASTACT_LOSS_OPS(FASTACT_DEF_LOSS_OP)
#undef FASTACT_DEF_LOSS_OP_T
#undef FASTACT_DEF_LOSS_OP

#define FASTACT_DEF_LOSS_T(T)                                                                                       \
  void logsumexp(const T* x, T* y, std::size_t rows, std::size_t cols) { logsumexp_t(x, y, rows, cols); }           \
  void logsumexp_backward(const T* dy, const T* x, T* dx, std::size_t rows, std::size_t cols) {                     \
    logsumexp_backward_t(dy, x, dx, rows, cols);                                                                    \
  }                                                                                                                 \
  double cross_entropy(const T* logits, const std::int64_t* target, std::size_t rows, std::size_t classes,           \
                       const CrossEntropyOptions& options, double* per_row) {                                       \
    return cross_entropy_t(logits, target, rows, classes, options, per_row);                                        \
  }                                                                                                                 \
  void cross_entropy_backward(const double* grad, const T* logits, const std::int64_t* target, T* dlogits,           \
                              std::size_t rows, std::size_t classes, const CrossEntropyOptions& options) {           \
    cross_entropy_backward_t(grad, logits, target, dlogits, rows, classes, options);                                \
  }                                                                                                                 \
  double nll_loss(const T* log_probs, const std::int64_t* target, std::size_t rows, std::size_t classes,              \
                  const CrossEntropyOptions& options, double* per_row) {                                            \
    return nll_loss_t(log_probs, target, rows, classes, options, per_row);                                          \
  }                                                                                                                 \
  void nll_loss_backward(const double* grad, const std::int64_t* target, T* dlog_probs, std::size_t rows,             \
                         std::size_t classes, const CrossEntropyOptions& options) {                                 \
    nll_loss_backward_t(grad, target, dlog_probs, rows, classes, options);                                          \
  }                                                                                                                 \
  double cross_entropy_probs(const T* logits, const T* probs, std::size_t rows, std::size_t classes,                 \
                             const CrossEntropyOptions& options, double* per_row) {                                 \
    return cross_entropy_probs_t<T>(logits, probs, nullptr, nullptr, rows, classes, options, per_row);              \
  }                                                                                                                 \
  void cross_entropy_probs_backward(const double* grad, const T* logits, const T* probs, T* dlogits,                  \
                                    std::size_t rows, std::size_t classes, const CrossEntropyOptions& options) {     \
    cross_entropy_probs_t<T>(logits, probs, dlogits, grad, rows, classes, options, nullptr);                        \
  }
FASTACT_DEF_LOSS_T(float)
FASTACT_DEF_LOSS_T(double)
FASTACT_DEF_LOSS_T(half)
FASTACT_DEF_LOSS_T(bfloat16)
#undef FASTACT_DEF_LOSS_T

}  // namespace fastact
