// fastact's floating-point state: round to nearest, no flush-to-zero, no denormals-are-zero, every
// exception masked. Results must not depend on the state a caller or another library left in a thread
// (torch.set_flush_denormal, code built with -ffast-math, fesetround, feenableexcept), and worker
// threads inherit their creator's state. The engines set it for each call and restore the caller's
// afterwards; pool workers set it for each region.
#pragma once
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace fastact::cpu {

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
// MXCSR: control bits 6 (DAZ), 7-12 (exception masks), 13-14 (rounding), 15 (FTZ); 0-5 are status flags.
using FpState = std::uint32_t;
constexpr FpState kFpControlMask = 0xFFC0u;
constexpr FpState kFpDefaultControl = 0x1F80u;  // every exception masked, round to nearest, no FTZ / DAZ
inline FpState read_fp_state() { return _mm_getcsr(); }
inline void write_fp_state(FpState s) { _mm_setcsr(s); }
#elif defined(__aarch64__)
// FPCR (the control register: trap enables bits 8-12 and 15, FZ16 19, rounding 22-23, FZ 24, DN 25, AHP
// 26) in the low 32 bits, FPSR (the status flags) in the high 32: both are saved and given back.
using FpState = std::uint64_t;
constexpr FpState kFpControlMask = (0x1Fu << 8) | (1u << 15) | (1u << 19) | (3u << 22) | (1u << 24) | (1u << 25) |
                                   (1u << 26);
constexpr FpState kFpDefaultControl = 0;
inline FpState read_fp_state() {
  std::uint64_t cr, sr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(cr));
  __asm__ volatile("mrs %0, fpsr" : "=r"(sr));
  return (cr & 0xFFFFFFFFu) | (sr << 32);
}
inline void write_fp_state(FpState s) {
  const std::uint64_t cr = s & 0xFFFFFFFFu, sr = s >> 32;
  __asm__ volatile("msr fpcr, %0" : : "r"(cr));
  __asm__ volatile("msr fpsr, %0" : : "r"(sr));
}
#else
using FpState = unsigned;
constexpr FpState kFpControlMask = 0, kFpDefaultControl = 0;
inline FpState read_fp_state() { return 0; }
inline void write_fp_state(FpState) {}
#endif

// For threads fastact owns (pool workers): set the state, nothing to restore.
inline void use_fastact_fp_state() {
  const FpState s = read_fp_state();
  if ((s & kFpControlMask) != kFpDefaultControl) write_fp_state((s & ~kFpControlMask) | kFpDefaultControl);
}

// Sets fastact's state for its lifetime when the thread's differs, and then puts the thread's back,
// status flags included: a call leaves the caller's state exactly as it found it. Reading the state is
// cheap; it is written only where it differs.
class FpEnvScope {
 public:
  FpEnvScope() : saved_(read_fp_state()) { use_fastact_fp_state(); }
  ~FpEnvScope() {
    if (read_fp_state() != saved_) write_fp_state(saved_);
  }
  FpEnvScope(const FpEnvScope&) = delete;
  FpEnvScope& operator=(const FpEnvScope&) = delete;

 private:
  FpState saved_;
};

}  // namespace fastact::cpu
