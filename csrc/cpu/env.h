// FASTACT_* environment variables. A variable that is set to something fastact cannot use is an error
// that names it and says what it takes (fastact::Error, a ValueError in Python, raised at import), never
// silently ignored. Unset or empty: the default.
#pragma once
#include <optional>

namespace fastact::cpu {

// An integer in [lo, hi], or nullopt when unset.
std::optional<long long> env_int(const char* name, long long lo, long long hi);
// "0" (false) or "1" (true), or nullopt when unset.
std::optional<bool> env_flag(const char* name);

}  // namespace fastact::cpu
