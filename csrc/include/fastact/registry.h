// The op registry: every activation is declared here once. The C++ API, the kernel tables of every
// ISA, the Python bindings and wrappers, their docstrings and the tests are all generated from these
// lines. Adding an op = its math (csrc/math/ops.h) + one line here; a gated op, one line over an
// activation that is already here.
//
// OP(name, Functor, backward_from, "one-line description", params)
//   backward_from: FromX            backward needs the forward input x
//                  FromXorY         x or the forward output y
//                  FromXorYIfPos    x, or y when the first parameter is > 0
//   params: a sequence (no commas between items, possibly empty) of
//           FASTACT_PARAM(name, default, check)          a number; check: Any (finite) | Positive |
//                                                        NonNegative | Extended (finite or +-inf)
//           FASTACT_REQUIRED(name, check)                a number the caller must give (no default)
//           FASTACT_CHOICE(name, Enum, default, "a|b")   one of named choices (an enum in C++)
//   Required parameters come before those with defaults (the C++ API's overloads take defaults last).
//   Each item becomes a tuple (type, name, default, check, choices, init), init being "= default" or
//   nothing (a required parameter; its default is NaN). FASTACT_PARAMS_APPLY(K, params), K one of DECL,
//   DEF, VAL, INFO, expands the consumer's FASTACT_P_<K>(type, name, default, check, choices, init) for
//   each tuple, in order (a preprocessor sequence walked by two alternating macros).
//   A rule that ties two parameters together is the functor's `static constexpr const char* param_rule`,
//   "a <= b" (hardtanh's "min_val <= max_val"): checked with the others, and exported with the op.
#pragma once
#include <type_traits>

namespace fastact {
enum class GeluApprox { none = 0, tanh = 1 };

// Parameters travel to the kernels as doubles; a choice travels as its index.
template <class T>
constexpr double param_value(T v) {
  if constexpr (std::is_enum_v<T>) return double(static_cast<int>(v));
  else return double(v);
}
}

#define FASTACT_PARAM(name, def, check) (double, name, def, check, nullptr, = def)
#define FASTACT_REQUIRED(name, check) (double, name, __builtin_nan(""), check, nullptr, )
#define FASTACT_CHOICE(name, Enum, def, choices) \
  (::fastact::Enum, name, ::fastact::Enum::def, Any, choices, = ::fastact::Enum::def)

#define FASTACT_ELEMENTWISE_OPS(OP)                                                                   \
  OP(relu, Relu, FromXorY, "max(x, 0); NaN propagates", )                                               \
  OP(leaky_relu, LeakyRelu, FromXorYIfPos, "x if x > 0 else negative_slope * x",                      \
     FASTACT_PARAM(negative_slope, 0.01, Any))                                                        \
  OP(elu, Elu, FromXorYIfPos, "x if x > 0 else alpha * expm1(x)", FASTACT_PARAM(alpha, 1.0, Any))     \
  OP(gelu, Gelu, FromX, "x * Phi(x) (erfc form); approximate='tanh': x * sigmoid(2*sqrt(2/pi)*(x + 0.044715 x^3))", \
     FASTACT_CHOICE(approximate, GeluApprox, none, "none|tanh"))                                      \
  OP(silu, Silu, FromX, "x * sigmoid(beta * x) (alias: swish)", FASTACT_PARAM(beta, 1.0, Any))        \
  OP(sigmoid, Sigmoid, FromXorY, "1 / (1 + exp(-x))", )                                                 \
  OP(tanh, Tanh, FromXorY, "tanh(x)", )                                                                 \
  OP(selu, Selu, FromX, "scale * (x if x > 0 else alpha * expm1(x))",                                  \
     FASTACT_PARAM(alpha, 1.6732632423543772, Any) FASTACT_PARAM(scale, 1.0507009873554805, Any))         \
  OP(celu, Celu, FromX, "x if x > 0 else alpha * expm1(x / alpha)", FASTACT_PARAM(alpha, 1.0, Positive)) \
  OP(quick_gelu, QuickGelu, FromX, "x * sigmoid(1.702 x)", )                                            \
  OP(softcap, Softcap, FromXorY, "cap * tanh(x / cap) (logit soft-capping)", FASTACT_REQUIRED(cap, Positive)) \
  OP(hardtanh, Hardtanh, FromX, "clamp(x, min_val, max_val) (ONNX Clip: either bound may be +-inf)",     \
     FASTACT_PARAM(min_val, -1.0, Extended) FASTACT_PARAM(max_val, 1.0, Extended))                       \
  OP(relu6, Relu6, FromX, "clamp(x, 0, 6)", )                                                           \
  OP(hardsigmoid, Hardsigmoid, FromX, "clamp(alpha * x + beta, 0, 1) (ONNX HardSigmoid: alpha=0.2)",      \
     FASTACT_PARAM(alpha, 1.0 / 6.0, Any) FASTACT_PARAM(beta, 0.5, Any))                                 \
  OP(hardswish, Hardswish, FromX, "x * clamp(x / 6 + 1/2, 0, 1)", )                                     \
  OP(softshrink, Softshrink, FromX, "x - lambd if x > lambd, x + lambd if x < -lambd, else 0",           \
     FASTACT_PARAM(lambd, 0.5, NonNegative))                                                             \
  OP(hardshrink, Hardshrink, FromX, "x if |x| > lambd else 0", FASTACT_PARAM(lambd, 0.5, NonNegative))  \
  OP(shrink, Shrink, FromX, "x - bias if x > lambd, x + bias if x < -lambd, else 0 (ONNX Shrink)",       \
     FASTACT_PARAM(lambd, 0.5, NonNegative) FASTACT_PARAM(bias, 0.0, Any))                               \
  OP(threshold, Threshold, FromX, "x if x > threshold else value",                                      \
     FASTACT_REQUIRED(threshold, Any) FASTACT_REQUIRED(value, Any))                                      \
  OP(softsign, Softsign, FromX, "x / (1 + |x|)", )                                                     \
  OP(softplus, Softplus, FromX, "log1p(exp(beta * x)) / beta; x where beta * x > threshold",              \
     FASTACT_PARAM(beta, 1.0, Positive) FASTACT_PARAM(threshold, 20.0, Extended))                         \
  OP(logsigmoid, Logsigmoid, FromX, "log(sigmoid(x)) = -softplus(-x)", )                                 \
  OP(mish, Mish, FromX, "x * tanh(softplus(x))", )                                                      \
  OP(tanhshrink, Tanhshrink, FromX, "x - tanh(x)", )

// Gated ops (the GLU family): an activation (an op above) of one half times the other. Both forms take
// them: one array split into halves a and b along an axis, or two arrays (a = the gate, b = up).
// GATED(name, activation functor, the half it acts on: First (a) or Second (b), doc, params: the activation's,
// under the names this op gives them). Backward from the inputs: (dy, a, b) -> (da, db).
#define FASTACT_GATED_OPS(OP)                                                                                  \
  OP(glu, Sigmoid, Second, "a * sigmoid(b) (PyTorch's glu: the second half gates)", )                          \
  OP(swiglu, Silu, First, "silu(a) * b, silu's beta = alpha (SwiGLU; ONNX SwiGLU)", FASTACT_PARAM(alpha, 1.0, Any)) \
  OP(geglu, Gelu, First, "gelu(a) * b (GeGLU)", FASTACT_CHOICE(approximate, GeluApprox, none, "none|tanh"))     \
  OP(reglu, Relu, First, "relu(a) * b (ReGLU)", )

// Ops with a broadcast operand (a weight or a bias) whose backward also gives that operand's gradient,
// summed over the axes it is broadcast along in a fixed order (the reduction engine).
// BROADCAST(name, Functor, the operand's name, doc, params). bias_act is one more, over every op of
// FASTACT_ELEMENTWISE_OPS (ops::BiasAct<Act>, the activation's parameters): act(x + bias), bias along the
// last axis.
#define FASTACT_BROADCAST_OPS(OP)                                                                         \
  OP(prelu, Prelu, weight, "x if x > 0 else weight * x (a slope per channel, or one, or broadcast)", )

// Element-wise losses of an input and a target of one shape (ops.h LossOp): LOSS(name, Functor, the
// operands' names, space-separated: the input's (SPEC 2.3: pred or logits), target, then the weights that
// broadcast to the input's shape (1 where not given), doc, params). Each is reduced ("mean", "sum": a fixed-order compensated sum, the same bits for any thread count
// and ISA) or not ("none"); its backward takes grad_output (a scalar for "mean" / "sum") and gives
// grad_input.
#define FASTACT_LOSS_OPS(OP)                                                                                        \
  OP(mse_loss, MseLoss, "pred target", "(pred - target)^2", )                                                                  \
  OP(huber_loss, HuberLoss, "pred target", "0.5 d^2 if |d| <= delta else delta * (|d| - delta / 2), d = pred - target",        \
     FASTACT_PARAM(delta, 1.0, Positive))                                                                            \
  OP(smooth_l1_loss, SmoothL1Loss, "pred target", "0.5 d^2 / beta if |d| < beta else |d| - beta / 2, d = pred - target",       \
     FASTACT_PARAM(beta, 1.0, NonNegative))                                                                          \
  OP(binary_cross_entropy_with_logits, BceWithLogits, "logits target weight pos_weight",                                           \
     "weight * (pos_weight * target * softplus(-logits) + (1 - target) * softplus(logits)): sigmoid and binary "       \
     "cross-entropy in one", )

// Row ops reduce along one axis; their backward takes the forward output y.
#define FASTACT_ROW_OPS(OP)                                  \
  OP(softmax, Softmax, FromY, "exp(x - max) / sum(exp(x - max)) along axis") \
  OP(log_softmax, LogSoftmax, FromY, "x - max - log(sum(exp(x - max))) along axis")

// M(op, T, params) for each storage type T (the C++ API's overloads).
#define FASTACT_EACH_STORAGE_T(M, op, params) \
  M(op, float, params) M(op, double, params) M(op, ::fastact::half, params) M(op, ::fastact::bfloat16, params)

#define FASTACT_PARAMS_APPLY(K, params) FASTACT_PA_END(FASTACT_PA_##K##_A params)
#define FASTACT_PA_END(...) FASTACT_PA_END_I(__VA_ARGS__)  // pastes _END onto the dangling alternator
#define FASTACT_PA_END_I(...) __VA_ARGS__##_END
#define FASTACT_PA_DECL_A(...) FASTACT_P_DECL(__VA_ARGS__) FASTACT_PA_DECL_B
#define FASTACT_PA_DECL_B(...) FASTACT_P_DECL(__VA_ARGS__) FASTACT_PA_DECL_A
#define FASTACT_PA_DECL_A_END
#define FASTACT_PA_DECL_B_END
#define FASTACT_PA_DEF_A(...) FASTACT_P_DEF(__VA_ARGS__) FASTACT_PA_DEF_B
#define FASTACT_PA_DEF_B(...) FASTACT_P_DEF(__VA_ARGS__) FASTACT_PA_DEF_A
#define FASTACT_PA_DEF_A_END
#define FASTACT_PA_DEF_B_END
#define FASTACT_PA_VAL_A(...) FASTACT_P_VAL(__VA_ARGS__) FASTACT_PA_VAL_B
#define FASTACT_PA_VAL_B(...) FASTACT_P_VAL(__VA_ARGS__) FASTACT_PA_VAL_A
#define FASTACT_PA_VAL_A_END
#define FASTACT_PA_VAL_B_END
#define FASTACT_PA_INFO_A(...) FASTACT_P_INFO(__VA_ARGS__) FASTACT_PA_INFO_B
#define FASTACT_PA_INFO_B(...) FASTACT_P_INFO(__VA_ARGS__) FASTACT_PA_INFO_A
#define FASTACT_PA_INFO_A_END
#define FASTACT_PA_INFO_B_END

namespace fastact {
// Dense ids, in registry order.
#define FASTACT_ID(name, ...) name,
// Element-wise ops of every kind share one numbering: the unary ops, the gated ones, the broadcast ones,
// bias_act over each unary op (bias_act_relu, ...), the losses, then each loss's summed form (summed_mse_loss:
// the kernel of "mean" and "sum").
#define FASTACT_BIAS_ACT_ID(name, ...) bias_act_##name,
#define FASTACT_SUMMED_ID(name, ...) summed_##name,
enum class ElementwiseOp {
  FASTACT_ELEMENTWISE_OPS(FASTACT_ID) FASTACT_GATED_OPS(FASTACT_ID) FASTACT_BROADCAST_OPS(FASTACT_ID)
      FASTACT_ELEMENTWISE_OPS(FASTACT_BIAS_ACT_ID) FASTACT_LOSS_OPS(FASTACT_ID) FASTACT_LOSS_OPS(FASTACT_SUMMED_ID) count
};
#undef FASTACT_BIAS_ACT_ID
#undef FASTACT_SUMMED_ID
enum class RowOp { FASTACT_ROW_OPS(FASTACT_ID) count };
#undef FASTACT_ID
enum class BackwardFrom { FromX, FromY, FromXorY, FromXorYIfPos };
enum class ParamCheck { Any, Positive, NonNegative, Extended };
constexpr int kMaxParams = 4;
constexpr int kGradScale = kMaxParams - 1;  // the parameter slot of a loss backward's grad_output factor (ops.h LossOp)
}  // namespace fastact
