// Helpers shared by the C++ tests.
#pragma once
#include <vector>

#include "cpu/kernels.h"

#include "cpu/op_info.h"

namespace fastact::testing_util {

// The parameter sets every op is tested with: its defaults, then each parameter changed in turn (a
// choice to its second option, a number to 0.37).
inline std::vector<std::vector<double>> param_sets(const cpu::OpInfo& op) {
  std::vector<double> def(kMaxParams, 0.0);
  for (std::size_t i = 0; i < op.params.size(); ++i) def[i] = op.params[i].default_value;
  if (op.kind == cpu::OpKind::Loss) def[kGradScale] = 0.75;  // the backward's grad_output factor (ops.h LossOp)
  std::vector<std::vector<double>> sets = {def};
  for (std::size_t i = 0; i < op.params.size(); ++i) {
    auto alt = def;
    alt[i] = op.params[i].choices ? 1.0 : 0.37;
    sets.push_back(alt);
  }
  return sets;
}

// Calls an element-wise kernel on the op's operands in a direction: ins[0..n_in), outs[0..n_out).
template <class T>
void call(const cpu::EwKernel& k, const std::vector<T*>& ins, const std::vector<T*>& outs, std::size_t n,
          const double* params) {
  std::vector<const void*> in(ins.begin(), ins.end());
  std::vector<void*> out(outs.begin(), outs.end());
  k.fn(in.data(), out.data(), n, params);
}

// Pointers to the data of each vector.
template <class T>
std::vector<T*> data_of(std::vector<std::vector<T>>& v) {
  std::vector<T*> p;
  for (auto& x : v) p.push_back(x.data());
  return p;
}

// In place, an op's outputs are its last inputs (x for a unary forward and for its backward's dx; a and
// b for a gated op's (da, db)): the element-wise walk reads each element before writing it.
template <class T>
std::vector<T*> in_place_outputs(const std::vector<T*>& ins, int n_out) {
  return std::vector<T*>(ins.end() - n_out, ins.end());
}

}  // namespace fastact::testing_util
