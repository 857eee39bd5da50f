#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fastact::cpu {
namespace {

int default_threads() {
  if (const char* env = std::getenv("FASTACT_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 4096) return int(v);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

class Pool {
 public:
  explicit Pool(int size) : size_(size) {}

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    stop_workers();
    size_ = n;
  }

  void run(int ntasks, const std::function<void(int)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || ntasks <= 1 || size_ <= 1) {
      for (int t = 0; t < ntasks; ++t) fn(t);
      return;
    }
    start_if_needed();
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      ntasks_ = ntasks;
      next_.store(0);
      done_ = 0;
      ++generation_;
    }
    cv_.notify_all();
    int mine = work();
    std::unique_lock<std::mutex> lk(m_);
    done_ += mine;
    done_cv_.wait(lk, [&] { return done_ == ntasks_; });
    fn_ = nullptr;
  }

 private:
  int work() {
    int n = 0;
    for (int t; (t = next_.fetch_add(1)) < ntasks_.load(); ++n) (*fn_.load())(t);
    return n;
  }

  void start_if_needed() {
    if (int(workers_.size()) == size_ - 1) return;
    stop_workers();
    quit_ = false;
    for (int i = 0; i < size_ - 1; ++i) workers_.emplace_back([this] { loop(); });
  }

  void loop() {
    unsigned long seen = generation_;
    for (;;) {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
      lk.unlock();
      int n = work();
      lk.lock();
      done_ += n;
      if (done_ == ntasks_) done_cv_.notify_one();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int size_;
  std::mutex busy_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(int)>*> fn_{nullptr};
  std::atomic<int> next_{0};
  std::atomic<int> ntasks_{0};
  int done_ = 0;
  unsigned long generation_ = 0;
  bool quit_ = false;
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
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  pool().resize(n);
}

void parallel_run(int ntasks, const std::function<void(int)>& fn) { pool().run(ntasks, fn); }

}  // namespace fastact::cpu
