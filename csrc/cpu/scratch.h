// Per-thread scratch memory for the engines and kernels (a softmax row's exp values, a reduction's lanes).
#pragma once
#include <cstddef>

namespace fastact::cpu {

// The most a thread keeps: it lives as long as the thread, so users of more recompute or go by parts.
constexpr std::size_t kScratchMaxBytes = std::size_t(320) << 10;

// At least `bytes` (<= kScratchMaxBytes) of this thread's scratch, 64-byte aligned and on cache lines of
// its own (two threads' scratch sharing a line would bounce it between cores on every use: measured 1.5x
// slower rows). Valid until this thread's next call; the memory is kept for the thread's later calls
// (a fresh allocation of this size is mapped and zeroed by the kernel on first touch: 5-10 us a call).
// Not inline: one definition, compiled without any ISA's flags, which every ISA's code may call.
void* thread_scratch(std::size_t bytes);

}  // namespace fastact::cpu
