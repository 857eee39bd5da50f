#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "env.h"
#include "fastact/fastact.h"

namespace fastact::cpu {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
unsigned cpuid1_ecx() {
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  return c;
}
bool os_saves(unsigned long long mask) {
  __builtin_cpu_init();
  if (!(cpuid1_ecx() & (1u << 27))) return false;  // no OSXSAVE: the OS does not save the vector state
  return (xgetbv0() & mask) == mask;
}
bool has_f16c() { return cpuid1_ecx() & (1u << 29); }
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c() && os_saves(0x6);
}
bool has_avx512() { return __builtin_cpu_supports("avx512f") && has_avx2() && os_saves(0xe6); }
#endif

struct Entry {
  const char* name;
  const KernelTable& (*table)();
  bool (*supported)();
};

const std::vector<Entry>& entries() {  // best last
  static const std::vector<Entry> e = {
      {"scalar", scalar::table, [] { return true; }},
#if defined(FASTACT_HAVE_AVX2)
      {"avx2", avx2::table, has_avx2},
#endif
#if defined(FASTACT_HAVE_AVX512)
      {"avx512", avx512::table, has_avx512},
#endif
#if defined(FASTACT_HAVE_NEON)
      {"neon", neon::table, [] { return true; }},
#endif
  };
  return e;
}

const KernelTable* best() {
  const KernelTable* t = nullptr;
  for (const auto& e : entries())
    if (e.supported()) t = &e.table();
  return t;
}

const KernelTable* initial() {
  const char* env = std::getenv("FASTACT_ISA");
  if (!env || !*env) return best();
  const KernelTable* t = table_for(env);
  if (!t && std::string(env) != "best")
    throw Error("FASTACT_ISA=" + std::string(env) + " is not available on this CPU or build; choose one of: " +
                [] {
                  std::string s;
                  for (auto& n : supported_isa_names()) s += (s.empty() ? "" : ", ") + n;
                  return s;
                }());
  return t ? t : best();
}

std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> c{initial()};
  return c;
}

}  // namespace

const KernelTable& active_table() { return *current().load(std::memory_order_relaxed); }

const KernelTable* table_for(const std::string& isa) {
  for (const auto& e : entries())
    if (isa == e.name && e.supported()) return &e.table();
  return nullptr;
}

std::vector<std::string> compiled_isa_names() {
  std::vector<std::string> v;
  for (const auto& e : entries()) v.emplace_back(e.name);
  return v;
}

std::vector<std::string> supported_isa_names() {
  std::vector<std::string> v;
  for (const auto& e : entries())
    if (e.supported()) v.emplace_back(e.name);
  return v;
}

void select_isa(const std::string& name) {
  const KernelTable* t = name == "best" ? best() : table_for(name);
  if (!t) {
    std::string s;
    for (auto& n : supported_isa_names()) s += (s.empty() ? "" : ", ") + n;
    throw Error("ISA '" + name + "' is not available on this CPU or build; choose one of: " + s + " (or best)");
  }
  current().store(t);
}

namespace {
// The last-level cache of CPU 0 from Linux's sysfs (glibc's sysconf reports a whole socket's L3 on
// chiplet CPUs, 12x the 32 MiB one core can use); 32 MiB where it cannot be read.
std::size_t last_level_cache_bytes() {
  // C stdio, not iostreams: a statically linked libstdc++ next to the system's has crashed in
  // iostream's locale code (see the snprintf in the error messages)
  std::size_t best = 0;
  for (int i = 0; i < 8; ++i) {
    char path[96];
    int level = 0;
    unsigned long long size = 0;
    char unit = 0;
    std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    const bool have_level = std::fscanf(f, "%d", &level) == 1;
    std::fclose(f);
    std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    f = std::fopen(path, "r");
    if (!f) continue;
    const bool have_size = std::fscanf(f, "%llu%c", &size, &unit) >= 1;
    std::fclose(f);
    if (!have_level || !have_size) continue;
    if (unit == 'K') size <<= 10;
    else if (unit == 'M') size <<= 20;
    if (level >= 2 && size > best) best = std::size_t(size);
  }
  return best ? best : std::size_t(32) << 20;
}

std::atomic<std::size_t>& stream_threshold() {
  static std::atomic<std::size_t> bytes{[] {
    if (!env_flag("FASTACT_STREAM_STORES").value_or(true)) return ~std::size_t(0);  // off
    return last_level_cache_bytes() / 2;
  }()};
  return bytes;
}
}  // namespace

std::size_t stream_min_bytes() { return stream_threshold().load(std::memory_order_relaxed); }
void set_stream_min_bytes(std::size_t bytes) { stream_threshold().store(bytes); }

}  // namespace fastact::cpu
