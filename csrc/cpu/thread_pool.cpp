#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "env.h"
#include "fastact/fastact.h"
#include "fp_env.h"

namespace fastact::cpu {
namespace {

int default_threads() {
  if (const auto n = env_int("FASTACT_NUM_THREADS", 1, kMaxThreads)) return int(*n);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

// Spinning before sleeping: waking a thread blocked on a condition variable costs several microseconds,
// as much as the work of a 64K-element call, so workers watch for the next region for a while (and the
// caller for the end of its region) before they block.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Calls ready() until it is true or kSpin has passed; returns its last value. The caller waiting for
// its region's last tasks (yield_after: 5 us) yields the core between checks after a few microseconds:
// when the kernel has put the worker it waits for on this very core (it wakes workers next to their
// waker, and may take milliseconds to move them), pausing in place would keep that worker off the core
// for the rest of the time slice (measured: 230 us calls instead of 12). Idle workers pause in place:
// yielding would make them slow to see the next region whenever the cores are all busy.
constexpr auto kSpinInPlace = std::chrono::microseconds(5);

template <class F>
bool spin_until(F ready, std::chrono::microseconds yield_after = kSpin) {
  const auto start = std::chrono::steady_clock::now();
  bool yielding = false;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if (yielding) {
      sched_yield();
    } else {
      cpu_relax();
    }
    if ((i & 15) == 15) {
      const auto waited = std::chrono::steady_clock::now() - start;
      if (waited > kSpin) return ready();
      yielding = waited > yield_after;
    }
  }
}

// Where the pool's threads run. Linux wakes a sleeping worker next to the thread that woke it and may
// leave it there for milliseconds while another CPU idles (measured on a 2-vCPU VM: after a 50 ms pause,
// most batches of 6 us regions ran both tasks on one CPU, 13 us a region instead of 7). So each thread
// notes its CPU at every region, and a worker that finds another pool thread on its own CPU moves to one
// that no pool thread was last seen on, by narrowing its affinity for an instant and restoring it at
// once: a move, not a pin (the scheduler stays free to place it afterwards; with every allowed CPU in
// use, or a single one allowed, nothing moves).
class Placement {
 public:
  void resize(int threads) {
    slots_.reset(new std::atomic<int>[std::size_t(threads)]);
    for (int i = 0; i < threads; ++i) slots_[std::size_t(i)].store(-1, std::memory_order_relaxed);
    n_ = threads;
  }
  void note_caller() { slots_[0].store(sched_getcpu(), std::memory_order_relaxed); }
  void settle_worker(int slot) {  // slot >= 1
    const int here = sched_getcpu();
    slots_[std::size_t(slot)].store(here, std::memory_order_relaxed);
    if (here < 0 || here >= CPU_SETSIZE || !shared(slot, here)) return;
    cpu_set_t allowed, unused;
    if (pthread_getaffinity_np(pthread_self(), sizeof(allowed), &allowed) != 0) return;
    unused = allowed;
    for (int j = 0; j < n_; ++j) {
      const int c = slots_[std::size_t(j)].load(std::memory_order_relaxed);
      if (c >= 0 && c < CPU_SETSIZE) CPU_CLR(c, &unused);
    }
    if (CPU_COUNT(&unused) == 0) return;
    if (pthread_setaffinity_np(pthread_self(), sizeof(unused), &unused) == 0)
      pthread_setaffinity_np(pthread_self(), sizeof(allowed), &allowed);
    slots_[std::size_t(slot)].store(sched_getcpu(), std::memory_order_relaxed);
  }

 private:
  bool shared(int slot, int cpu) const {
    for (int j = 0; j < n_; ++j)
      if (j != slot && slots_[std::size_t(j)].load(std::memory_order_relaxed) == cpu) return true;
    return false;
  }
  std::unique_ptr<std::atomic<int>[]> slots_;
  int n_ = 0;
};

class Pool {
 public:
  explicit Pool(int size) : size_(size) {}

  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    stop_workers();
    size_.store(n);
  }

  // A task that throws (std::bad_alloc, say) does not end the process: the region runs to its end (the
  // tasks not yet started are skipped), and the first exception is rethrown here, on the caller, once
  // no worker uses fn or the caller's stack any more.
  void run(int ntasks, const std::function<void(int)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || ntasks <= 1 || size() <= 1 || ntasks > 0xffff) {
      for (int t = 0; t < ntasks; ++t) fn(t);
      return;
    }
    start_if_needed();
    placement_.note_caller();
    // Publish the region: fn_ and done_ first, then the ticket that names it (acquire/release pairs).
    fn_.store(&fn);
    done_.store(0);
    const std::uint32_t gen = ++generation_;
    {
      std::lock_guard<std::mutex> lk(m_);  // a worker going to sleep checks the ticket under m_
      ticket_.store(pack(gen, ntasks, 0));
      if (sleepers_ > 0) cv_.notify_all();
    }
    const int mine = work(gen);
    if (done_.fetch_add(mine) + mine != ntasks && !spin_until([&] { return done_.load() == ntasks; }, kSpinInPlace)) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [&] { return done_.load() == ntasks; });
    }
    fn_.store(nullptr);
    if (failed_.load()) {
      std::exception_ptr e;
      {
        std::lock_guard<std::mutex> lk(error_m_);
        e = error_;
        error_ = nullptr;
        failed_.store(false);
      }
      std::rethrow_exception(e);
    }
  }

 private:
  // The ticket: generation (32 bits) | task count (16) | next task (16). A task is claimed by advancing
  // the ticket of its own region, so a thread that arrives late can never take a task of the next one.
  static std::uint64_t pack(std::uint32_t gen, int ntasks, int next) {
    return (std::uint64_t(gen) << 32) | (std::uint64_t(ntasks) << 16) | std::uint64_t(next);
  }
  static std::uint32_t gen_of(std::uint64_t v) { return std::uint32_t(v >> 32); }
  static int ntasks_of(std::uint64_t v) { return int((v >> 16) & 0xffff); }
  static int next_of(std::uint64_t v) { return int(v & 0xffff); }

  int work(std::uint32_t gen) {
    int n = 0;
    std::uint64_t v = ticket_.load();
    while (gen_of(v) == gen && next_of(v) < ntasks_of(v)) {
      if (ticket_.compare_exchange_weak(v, v + 1)) {
        if (!failed_.load(std::memory_order_relaxed)) {
          try {
            (*fn_.load())(next_of(v));
          } catch (...) {
            std::lock_guard<std::mutex> lk(error_m_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true);
          }
        }
        ++n;
        v = ticket_.load();
      }
    }
    return n;
  }

  void start_if_needed() {
    const int size = this->size();
    if (int(workers_.size()) == size - 1) return;
    stop_workers();
    quit_.store(false);
    placement_.resize(size);
    for (int i = 0; i < size - 1; ++i) {
      try {
        workers_.emplace_back([this, i] { loop(i + 1); });
      } catch (const std::system_error& e) {  // out of threads or memory for their stacks
        stop_workers();
        throw std::runtime_error("fastact: could not start worker thread " + std::to_string(i + 1) + " of " +
                                 std::to_string(size - 1) + " (" + e.what() +
                                 "); use fewer threads: fastact.set_num_threads(n) or FASTACT_NUM_THREADS");
      }
    }
  }

  void loop(int slot) {
    std::uint32_t seen = gen_of(ticket_.load());
    auto woken = [&] { return quit_.load() || gen_of(ticket_.load()) != seen; };
    for (;;) {
      if (!spin_until(woken)) {
        std::unique_lock<std::mutex> lk(m_);
        ++sleepers_;
        cv_.wait(lk, woken);
        --sleepers_;
      }
      if (quit_.load()) return;
      use_fastact_fp_state();
      placement_.settle_worker(slot);
      const std::uint64_t v = ticket_.load();
      seen = gen_of(v);
      const int n = work(seen);
      // Only a thread that ran tasks of the region counts them: the region cannot end before it does.
      if (n > 0 && done_.fetch_add(n) + n == ntasks_of(v)) {
        std::lock_guard<std::mutex> lk(m_);  // the caller may be about to sleep on done_cv_
        done_cv_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_.store(true);
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<int> size_;  // read by num_threads() on any thread; written under busy_
  std::mutex busy_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(int)>*> fn_{nullptr};
  std::atomic<std::uint64_t> ticket_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> quit_{false};
  std::atomic<bool> failed_{false};  // a task of the current region threw
  std::mutex error_m_;
  std::exception_ptr error_;  // its exception (under error_m_)
  Placement placement_;  // written by the caller (under busy_) and the workers; resized with no worker
  std::uint32_t generation_ = 0;  // the caller's count (under busy_)
  int sleepers_ = 0;              // guarded by m_
};

// Pools are never destroyed: workers may outlive static destruction. A forked child inherits none of
// the parent's workers, and its copies of the mutexes and condition variables may count waiters that
// do not exist there: the child gets a new pool (the inherited one is left untouched).
std::atomic<Pool*> g_pool{nullptr};

void new_pool_in_child() {
  if (Pool* old = g_pool.load()) g_pool.store(new Pool(old->size()));
}

Pool& pool() {
  static const bool ready = [] {
    g_pool.store(new Pool(default_threads()));
    pthread_atfork(nullptr, nullptr, new_pool_in_child);
    return true;
  }();
  (void)ready;
  return *g_pool.load();
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw Error("set_num_threads: n must be from 1 to " + std::to_string(kMaxThreads) + ", got " + std::to_string(n));
  pool().resize(n);
}

void parallel_run(int ntasks, const std::function<void(int)>& fn) { pool().run(ntasks, fn); }

}  // namespace fastact::cpu
