#include "op_info.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>

#include "fastact/fastact.h"
#include "../math/ops.h"

namespace fastact::cpu {

#define FASTACT_P_INFO(type, name, def, check, choices, init) \
  ParamInfo{#name, param_value(static_cast<type>(def)), ParamCheck::check, choices},
namespace {
template <class Op, class = void>
struct rule_of {
  static constexpr const char* value = nullptr;
};
template <class Op>
struct rule_of<Op, std::void_t<decltype(Op::param_rule)>> {
  static constexpr const char* value = Op::param_rule;
};

template <class Op, class = void>
struct text_of {
  static constexpr const char* range = nullptr;
  static constexpr const char* derivative = nullptr;
};
template <class Op>
struct text_of<Op, std::void_t<decltype(Op::range), decltype(Op::derivative)>> {
  static constexpr const char* range = Op::range;
  static constexpr const char* derivative = Op::derivative;
};
template <class Op>
OpInfo with_text(OpInfo o) {
  o.range = text_of<Op>::range;
  o.derivative = text_of<Op>::derivative;
  return o;
}

// Act: the functor whose parameters these are (the op's own, or a gated op's / bias_act's activation).
template <class Op, class Act = Op>
OpInfo with_signature(OpInfo o, const char* gate = nullptr, const char* activation = nullptr,
                      const char* operand = nullptr) {
  for (int d = 0; d < kinds::kNumDirections; ++d) {
    o.n_in[d] = ops::Signature<Op>::in[d];
    o.n_out[d] = ops::Signature<Op>::out[d];
    o.n_reduced[d] = ops::Signature<Op>::reduced[d];
  }
  o.gate = gate;
  o.activation = activation;
  o.operand = operand;
  o.param_rule = rule_of<Act>::value;
  if (o.param_rule) {  // parsed once here, not on every call
    const std::string rule = o.param_rule, sep = " <= ";
    const std::size_t at = rule.find(sep);
    for (std::size_t i = 0; at != std::string::npos && i < o.params.size(); ++i) {
      if (rule.compare(0, at, o.params[i].name) == 0) o.rule_lhs = int(i);
      if (rule.compare(at + sep.size(), std::string::npos, o.params[i].name) == 0) o.rule_rhs = int(i);
    }
  }
  return o;
}

// The registry name of the unary op whose functor is Act.
template <class Act>
const char* unary_name() {
#define FASTACT_NAME_OF(name, Op, ...) \
  if constexpr (std::is_same_v<Act, ops::Op>) return #name;
  FASTACT_ELEMENTWISE_OPS(FASTACT_NAME_OF)
#undef FASTACT_NAME_OF
  return nullptr;
}
}  // namespace

#define FASTACT_EW_INFO(name, Op, from, doc, params)                                                              \
  with_text<ops::Op>(with_signature<ops::Op>(OpInfo{#name, doc, BackwardFrom::from, OpKind::Unary,              \
                                                    int(ElementwiseOp::name), ops::is_tabulated16<ops::Op>::value,  \
                                                    {FASTACT_PARAMS_APPLY(INFO, params)}})),
#define FASTACT_GATED_INFO(name, Act, which, doc, params)                                                         \
  with_signature<ops::Gated<ops::Act, ops::Gate::which>, ops::Act>(                                                       \
      OpInfo{#name, doc, BackwardFrom::FromX, OpKind::Gated, int(ElementwiseOp::name), false,                       \
             {FASTACT_PARAMS_APPLY(INFO, params)}},                                                                 \
      ops::Gate::which == ops::Gate::First ? "first" : "second", unary_name<ops::Act>()),
#define FASTACT_BROADCAST_INFO(name, Op, operand, doc, params)                                                    \
  with_signature<ops::Op>(OpInfo{#name, doc, BackwardFrom::FromX, OpKind::Broadcast, int(ElementwiseOp::name), false, \
                                 {FASTACT_PARAMS_APPLY(INFO, params)}},                                             \
                          nullptr, nullptr, #operand),
#define FASTACT_BIAS_ACT_INFO(name, Op, from, doc, params)                                                        \
  with_signature<ops::BiasAct<ops::Op>, ops::Op>(                                                                        \
      OpInfo{"bias_act", "act(x + bias), bias along the last axis", BackwardFrom::FromX, OpKind::Broadcast,  \
             int(ElementwiseOp::bias_act_##name), false, {FASTACT_PARAMS_APPLY(INFO, params)}},                     \
      nullptr, #name, "bias"),
#define FASTACT_LOSS_INFO(name, L, operands, doc, params)                                                          \
  [] {                                                                                                              \
    OpInfo o = with_signature<ops::LossOp<ops::L>>(OpInfo{#name, doc, BackwardFrom::FromX, OpKind::Loss,            \
                                                          int(ElementwiseOp::name), false,                          \
                                                          {FASTACT_PARAMS_APPLY(INFO, params)}},                    \
                                                   nullptr, nullptr, operands);                                     \
    o.summed = int(ElementwiseOp::summed_##name);                                                                   \
    return o;                                                                                                       \
  }(),
#define FASTACT_SUMMED_INFO(name, L, operands, doc, params)                                                        \
  with_signature<ops::SummedLoss<ops::L>>(OpInfo{#name, doc, BackwardFrom::FromX, OpKind::SummedLoss,              \
                                                 int(ElementwiseOp::summed_##name), false,                         \
                                                 {FASTACT_PARAMS_APPLY(INFO, params)}},                            \
                                          nullptr, nullptr, operands),
#define FASTACT_ROW_INFO(name, Op, from, doc) \
  with_text<ops::Op>(OpInfo{#name, doc, BackwardFrom::from, OpKind::Row, int(RowOp::name), false, {}}),

const std::vector<OpInfo>& elementwise_ops() {
  static const std::vector<OpInfo> v = {FASTACT_ELEMENTWISE_OPS(FASTACT_EW_INFO) FASTACT_GATED_OPS(FASTACT_GATED_INFO)
                                            FASTACT_BROADCAST_OPS(FASTACT_BROADCAST_INFO)
                                                FASTACT_ELEMENTWISE_OPS(FASTACT_BIAS_ACT_INFO)
                                                    FASTACT_LOSS_OPS(FASTACT_LOSS_INFO)
                                                        FASTACT_LOSS_OPS(FASTACT_SUMMED_INFO)};
  return v;
}
const std::vector<OpInfo>& row_ops() {
  static const std::vector<OpInfo> v = {FASTACT_ROW_OPS(FASTACT_ROW_INFO)};
  return v;
}

void check_params(const OpInfo& op, const double* params, int dtype, bool backward) {
  const bool f64 = dtype == kinds::kF64;
  for (std::size_t i = 0; i < op.params.size(); ++i) {
    const ParamInfo& p = op.params[i];
    const double v = params[i];
    const double c = f64 ? v : double(float(v));  // what the kernels compute with (16-bit types: float32)
    const char* want = nullptr;
    if (p.choices) {
      int n = 1;
      for (const char* ch = p.choices; *ch; ++ch) n += *ch == '|';
      if (!(v >= 0 && v < n && v == std::floor(v))) want = "one of the choices";
    } else if (p.check == ParamCheck::Extended ? v != v : !std::isfinite(v)) {
      want = p.check == ParamCheck::Extended ? "a number or +-inf (not NaN)" : "a finite number";
    } else if (!std::isfinite(c) && p.check != ParamCheck::Extended) {  // Extended: a huge bound is +-inf
      want = dtype == kinds::kF32 ? "a finite float32 number (|value| <= 3.4028235e38)"
                           : "a finite float32 number (|value| <= 3.4028235e38: 16-bit types compute in float32)";
    } else if (p.check == ParamCheck::Positive && !(c >= (f64 ? 0x1p-1022 : 0x1p-126))) {
      // subnormal values are refused: an op divides by them (softcap's x / cap), and their remainders
      // are no longer exact
      want = f64 ? "> 0 and normal (>= 2.2250738585072014e-308)" : "> 0 and a normal float32 (>= 1.1754944e-38)";
    } else if (p.check == ParamCheck::NonNegative && !(c >= 0)) {
      want = ">= 0";
    }
    if (want) {
      // snprintf, not an ostream: iostreams' locale machinery has crashed where a process holds two
      // libstdc++ copies (seen on a GPU image), and an error path must never crash
      char got[32];
      std::snprintf(got, sizeof got, "%g", v);
      throw Error(std::string(op.name) + (backward ? "_backward: " : ": ") + p.name + " must be " + want + ", got " + got);
    }
  }
  if (op.param_rule) {  // "a <= b", on the values the kernels compute with
    if (op.rule_lhs < 0 || op.rule_rhs < 0)
      throw Error(std::string(op.name) + ": its param_rule '" + op.param_rule + "' names no two of its parameters (registry)");
    const char *a = op.params[op.rule_lhs].name, *b = op.params[op.rule_rhs].name;
    const auto compute = [&](double v) { return f64 ? v : double(float(v)); };
    if (!(compute(params[op.rule_lhs]) <= compute(params[op.rule_rhs]))) {
      char got[80];
      std::snprintf(got, sizeof got, ", got %s=%g and %s=%g", a, params[op.rule_lhs], b, params[op.rule_rhs]);
      throw Error(std::string(op.name) + (backward ? "_backward: " : ": ") + a + " must be <= " + b + got);
    }
  }
}

void check_backward_from_y(const OpInfo& op, const double* params) {
  switch (op.backward_from) {
    case BackwardFrom::FromX:
      throw Error(std::string(op.name) + "_backward needs x (the forward input); it cannot use y");
    case BackwardFrom::FromXorYIfPos:
      if (!(params[0] > 0))
        throw Error(std::string(op.name) + "_backward can use y only when " + op.params[0].name +
                    " > 0; pass x (the forward input)");
      return;
    default:
      return;
  }
}

}  // namespace fastact::cpu
