// A persistent pool of worker threads. run(n, fn) calls fn(0..n-1) once each, the caller taking part,
// and returns when all are done. A pool already busy (a call from another thread, or a nested call)
// runs the work on the calling thread instead: never a deadlock, and results never depend on it.
// Workers run in fastact's floating-point state (fp_env.h).
#pragma once
#include <functional>

namespace fastact::cpu {

constexpr int kMaxThreads = 4096;  // set_num_threads and FASTACT_NUM_THREADS take 1 to this

int num_threads();
void set_num_threads(int n);  // 1 <= n <= kMaxThreads
// Rethrows (on the caller) the first exception a task threw, after every task has ended.
void parallel_run(int ntasks, const std::function<void(int)>& fn);

}  // namespace fastact::cpu
