// Helpers shared by the C++ tests.
#pragma once
#include <vector>

#include "cpu/op_info.h"

namespace fastact::testing_util {

// The parameter sets every op is tested with: its defaults, then each parameter changed in turn (a
// choice to its second option, a number to 0.37).
inline std::vector<std::vector<double>> param_sets(const cpu::OpInfo& op) {
  std::vector<double> def(kMaxParams, 0.0);
  for (std::size_t i = 0; i < op.params.size(); ++i) def[i] = op.params[i].default_value;
  std::vector<std::vector<double>> sets = {def};
  for (std::size_t i = 0; i < op.params.size(); ++i) {
    auto alt = def;
    alt[i] = op.params[i].choices ? 1.0 : 0.37;
    sets.push_back(alt);
  }
  return sets;
}

}  // namespace fastact::testing_util
