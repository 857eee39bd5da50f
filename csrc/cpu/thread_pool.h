// A persistent pool of worker threads. run(n, fn) calls fn(0..n-1) once each, the caller taking part,
// and returns when all are done. A pool already busy (a call from another thread, or a nested call)
// runs the work on the calling thread instead: never a deadlock, and results never depend on it.
#pragma once
#include <functional>

namespace fastact::cpu {

int num_threads();
void set_num_threads(int n);  // n >= 1
void parallel_run(int ntasks, const std::function<void(int)>& fn);

}  // namespace fastact::cpu
