#include "env.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fastact/fastact.h"

namespace fastact::cpu {

std::optional<long long> env_int(const char* name, long long lo, long long hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  const bool digits_only = (*v >= '0' && *v <= '9') || ((*v == '-' || *v == '+') && v[1] >= '0' && v[1] <= '9');
  if (!digits_only || end == v || *end != '\0' || errno == ERANGE || n < lo || n > hi)
    throw Error(std::string(name) + "='" + v + "' is not valid: expected an integer from " + std::to_string(lo) +
                " to " + std::to_string(hi) + " (or unset it)");
  return n;
}

std::optional<bool> env_flag(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  if (std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") == 0) return true;
  throw Error(std::string(name) + "='" + v + "' is not valid: expected 0 or 1 (or unset it)");
}

}  // namespace fastact::cpu
