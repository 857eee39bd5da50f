// Picks the kernel table for this CPU (or the one FASTACT_ISA / set_isa asks for).
#pragma once
#include <string>
#include <vector>

#include "kernels.h"

namespace fastact::cpu {

const KernelTable& active_table();
const KernelTable* table_for(const std::string& isa);  // null if not compiled or not supported here
std::vector<std::string> compiled_isa_names();
std::vector<std::string> supported_isa_names();
void select_isa(const std::string& name);  // throws fastact::Error

}  // namespace fastact::cpu
