// Registry metadata at run time (names, parameters, defaults, checks, backward forms), for argument
// validation here and for the Python layer, which builds its functions and docstrings from it.
#pragma once
#include <vector>

#include "../kinds.h"
#include "fastact/registry.h"

namespace fastact::cpu {

struct ParamInfo {
  const char* name;
  double default_value;
  ParamCheck check;
  const char* choices;  // "a|b" for a choice parameter (its value is the index), null for a number
  bool required() const { return default_value != default_value; }  // no default (NaN): the caller gives it
};



// The shapes of work an op has: one input to one output element by element (unary), a GLU-family op
// (gated: two halves, or two arrays, to one; see registry.h), one with a broadcast operand (broadcast), or
// a reduction along an axis (row).
// An op with a broadcast operand (prelu's weight, bias_act's bias: broadcast; its backward also gives that
// operand's gradient, reduced).
// An element-wise loss (registry.h FASTACT_LOSS_OPS: the op of reduction "none" and the backward), and its
// summed form (the kernel of "mean" and "sum", not a function of its own).
enum class OpKind { Unary, Gated, Broadcast, Row, Loss, SummedLoss };

struct OpInfo {
  const char* name;
  const char* doc;
  BackwardFrom backward_from;
  OpKind kind;
  int id;  // ElementwiseOp (unary and gated) or RowOp
  bool tabulated16;  // large float16 / bfloat16 calls look results up (tables16.h)
  std::vector<ParamInfo> params;
  int n_in[kinds::kNumDirections] = {0, 0, 0};   // element-wise: inputs and outputs per direction
  int n_out[kinds::kNumDirections] = {0, 0, 0};  // (ops::Signature; 0: the direction is not offered)
  int n_reduced[kinds::kNumDirections] = {0, 0, 0};  // the last outputs that are contributions (compute type)
  const char* gate = nullptr;        // gated: "first" or "second", the half the activation acts on
  const char* activation = nullptr;  // gated, bias_act: the unary op it applies (its parameters, in order, are this op's)
  const char* operand = nullptr;     // broadcast: the broadcast operand's name ("weight", "bias"); losses:
                                     // every operand's, space-separated ("logits target weight pos_weight")
  int summed = -1;                   // a loss: the id of its summed form
  const char* param_rule = nullptr;  // "a <= b" over two of params (registry.h), or null
  const char* range = nullptr;       // unary and row ops: the values it takes, and its derivative, as text
  const char* derivative = nullptr;  // (the functor's `range` and `derivative`: for the docs)
  int rule_lhs = -1, rule_rhs = -1;  // param_rule's a and b as indices into params (-1: it names none)
  bool row() const { return kind == OpKind::Row; }
};

const std::vector<OpInfo>& elementwise_ops();  // unary and gated, indexed by ElementwiseOp
const std::vector<OpInfo>& row_ops();

// Throws fastact::Error naming the function (op or op_backward) and the parameter if a value is out of its domain, or does not fit
// the compute type of dtype (float32 for float32, float16 and bfloat16; float64 for float64): a slope
// of 1e39 would be inf in float32 and turn every result into inf or NaN.
void check_params(const OpInfo& op, const double* params, int dtype, bool backward = false);
// Throws fastact::Error if the backward of op cannot be computed from y (with these params).
void check_backward_from_y(const OpInfo& op, const double* params);

}  // namespace fastact::cpu
