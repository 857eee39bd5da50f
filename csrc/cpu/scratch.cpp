#include "scratch.h"

#include <new>

namespace fastact::cpu {

void* thread_scratch(std::size_t bytes) {
  struct Block {
    void* p = nullptr;
    std::size_t cap = 0;
    ~Block() { ::operator delete[](p, std::align_val_t(64)); }
  };
  thread_local Block b;
  if (b.cap < bytes) {
    ::operator delete[](b.p, std::align_val_t(64));
    b.p = nullptr;
    b.cap = 0;
    const std::size_t cap = (bytes + 63) / 64 * 64;
    b.p = ::operator new[](cap, std::align_val_t(64));
    b.cap = cap;
  }
  return b.p;
}

}  // namespace fastact::cpu
