// Regression tests of the hardening issue on the C++ side: the pool under exceptions, the floating-point
// state, fork while a 16-bit table is being built, concurrent calls (run under ThreadSanitizer in CI), and
// the pointer API's checks of its outputs and parameters.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/fp_env.h"
#include "cpu/tables16.h"
#include "cpu/thread_pool.h"
#include "fastact/fastact.h"

namespace {

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Threads {  // sets the pool's size for a test and puts the old one back
  int before = fastact::num_threads();
  explicit Threads(int n) { fastact::set_num_threads(n); }
  ~Threads() { fastact::set_num_threads(before); }
};

}  // namespace

TEST(ThreadPool, AnExceptionInAWorkersTaskReachesTheCaller) {
  // Only workers throw, and their own type: the caller can have it only from a worker's task.
  struct WorkerError {};
  Threads threads(4);
  int rounds_with_worker_tasks = 0;
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> worker_tasks{0};
    const auto caller = std::this_thread::get_id();
    bool thrown = false;
    try {
      fastact::cpu::parallel_run(64, [&](int) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));  // long enough for the workers to join
        if (std::this_thread::get_id() != caller) {
          ++worker_tasks;
          throw WorkerError{};
        }
      });
    } catch (const WorkerError&) {
      thrown = true;
    }
    ASSERT_EQ(thrown, worker_tasks.load() > 0) << "a worker's exception was lost (or one appeared from nowhere)";
    rounds_with_worker_tasks += worker_tasks.load() > 0;
  }
  EXPECT_GT(rounds_with_worker_tasks, 0) << "no worker ever ran a task: the test proved nothing";
  std::atomic<int> count{0};  // the pool still works, every task once
  fastact::cpu::parallel_run(100, [&](int) { ++count; });
  EXPECT_EQ(count.load(), 100);
}

TEST(ThreadPool, TheCallersExceptionWaitsForTheWorkersTasks) {
  // The caller's own task throws at once; the workers' tasks still use the caller's stack (local) for a
  // while. run() may rethrow only once no task is running (ASan sees a use after return otherwise).
  Threads threads(4);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> running{0};
    const auto caller = std::this_thread::get_id();
    bool thrown = false;
    try {
      int local[64] = {};
      fastact::cpu::parallel_run(64, [&](int t) {
        ++running;
        if (std::this_thread::get_id() == caller) {
          --running;
          throw std::runtime_error("caller's task");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        local[t] = t;
        --running;
      });
    } catch (const std::runtime_error&) {
      thrown = true;
      EXPECT_EQ(running.load(), 0) << "run() returned while tasks were running";
    }
    ASSERT_TRUE(thrown);
  }
}

TEST(FpEnv, ResultsDoNotDependOnTheCallersOrTheWorkersState) {
  using namespace fastact::cpu;
  const std::size_t n = std::size_t(1) << 22;  // large enough for every thread to take part
  std::vector<float> x(n, -100.0f), y(n);
  const float want = 3.7835059e-44f;  // sigmoid(-100) rounded: a subnormal (27 * 2^-149)
  ASSERT_EQ(bits(want), 27u);
  const FpState caller_state = read_fp_state();
#if defined(__x86_64__) || defined(_M_X64)
  // FTZ, DAZ, round down, and every exception unmasked (the masks are control bits too: cleared)
  const FpState odd = (caller_state & ~kFpControlMask) | 0x8040u | (2u << 13);
#elif defined(__aarch64__)
  const FpState odd = (caller_state & ~kFpControlMask) | (1u << 24) | (2u << 22);  // FZ, round to -inf
#else
  GTEST_SKIP() << "no floating-point control register known here";
#endif
  write_fp_state(odd);
  {
    Threads threads(1);
    fastact::set_num_threads(3);  // new workers, created in this state: they inherit it
    fastact::sigmoid(x.data(), y.data(), n);
    const FpState after = read_fp_state();
    write_fp_state(caller_state);
    ASSERT_EQ(after & kFpControlMask, odd & kFpControlMask) << "the caller's state was not given back";
  }
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), 27u) << "at " << i;
  std::vector<float> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = -7.0f + 14.0f * float(i) / float(n);
  std::vector<float> ref(n), got(n);
  fastact::gelu(g.data(), ref.data(), n);
  write_fp_state(odd);
  fastact::gelu(g.data(), got.data(), n);
  fastact::softmax(g.data(), got.data(), 1024, n / 1024);  // rows too, then gelu again
  fastact::gelu(g.data(), got.data(), n);
  write_fp_state(caller_state);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(bits(got[i]), bits(ref[i])) << "at " << i;
}

namespace {
std::mutex g_build_m;
std::condition_variable g_build_cv;
bool g_build_started = false, g_build_release = false;
void blocking_build(void* table, const double*) {
  {
    std::unique_lock<std::mutex> lk(g_build_m);
    g_build_started = true;
    g_build_cv.notify_all();
    g_build_cv.wait(lk, [] { return g_build_release; });
  }
  std::memset(table, 0, fastact::cpu::tables16::kPatterns * 2);
}
void quick_build(void* table, const double*) { std::memset(table, 1, fastact::cpu::tables16::kPatterns * 2); }
}  // namespace

TEST(Fork, AChildForkedWhileATableIsBuiltCanBuildTables) {
  namespace t16 = fastact::cpu::tables16;
  if (!t16::stats().enabled) GTEST_SKIP() << "FASTACT_HALF_TABLES=0";
  // a full cache would build nothing, and the wait below would never end (ctest runs this test alone)
  ASSERT_EQ(t16::stats().count, 0) << "run this test in a fresh process (--gtest_filter=Fork.*)";
  t16::Key building{900, 0, 2, {1.0}}, other{901, 0, 2, {2.0}};
  std::thread builder([&] { t16::get(building, t16::kPatterns * 2, blocking_build); });
  {
    std::unique_lock<std::mutex> lk(g_build_m);
    g_build_cv.wait(lk, [] { return g_build_started; });
  }
  const pid_t pid = fork();  // while the builder holds the table cache's lock
  if (pid == 0) {
    alarm(10);  // a hang ends the child with SIGALRM
    const void* t = t16::get(other, t16::kPatterns * 2, quick_build);
    _exit(t && static_cast<const unsigned char*>(t)[5] == 1 ? 0 : 3);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  {
    std::lock_guard<std::mutex> lk(g_build_m);
    g_build_release = true;
    g_build_cv.notify_all();
  }
  builder.join();
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
                                 << " (SIGALRM: it hung on the table cache's lock)";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Concurrency, ManyThreadsCallingAtOnceGetExactResults) {
  // Calls from several threads share the pool (one region at a time, the others run on their own thread),
  // the 16-bit tables and the ISA table; with ThreadSanitizer this is the race check of all of them.
  const std::size_t n = 1 << 17;
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = -6.0f + 12.0f * float(i % 4099) / 4099.0f;
  std::vector<fastact::half> xh(n);
  for (std::size_t i = 0; i < n; ++i) xh[i] = fastact::to_half(x[i]);
  std::vector<float> want_gelu(n), want_soft(n);
  std::vector<fastact::half> want_silu(n);
  fastact::gelu(x.data(), want_gelu.data(), n);
  fastact::softmax(x.data(), want_soft.data(), 128, n / 128);
  fastact::silu(xh.data(), want_silu.data(), n, 0.75);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < 8; ++k)
    ts.emplace_back([&, k] {
      std::vector<float> y(n);
      std::vector<fastact::half> h(n);
      for (int r = 0; r < 6; ++r) {
        if (k == 0 && r == 3) fastact::set_num_threads(r % 2 + 2);  // resized while others call
        fastact::gelu(x.data(), y.data(), n);
        if (std::memcmp(y.data(), want_gelu.data(), n * 4) != 0) ++bad;
        fastact::softmax(x.data(), y.data(), 128, n / 128);
        if (std::memcmp(y.data(), want_soft.data(), n * 4) != 0) ++bad;
        fastact::silu(xh.data(), h.data(), n, 0.75 + 0.0 * k);
        if (std::memcmp(h.data(), want_silu.data(), n * 2) != 0) ++bad;
        (void)fastact::num_threads();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Api, OutputsThatOverlapAreRefused) {
  std::vector<float> x(64, 0.5f), y(64);
  EXPECT_THROW(fastact::sigmoid(x.data(), 1, y.data(), 0, 64), fastact::Error);  // one element, 64 times
  EXPECT_THROW(fastact::sigmoid(x.data(), 1, x.data() + 1, 1, 32), fastact::Error);  // shifted by one
  EXPECT_THROW(fastact::sigmoid(x.data(), 2, x.data(), 1, 32), fastact::Error);  // same start, other stride
  EXPECT_THROW(fastact::softmax(x.data(), 8, 1, y.data(), 4, 1, 8, 8), fastact::Error);  // rows overlap
  EXPECT_NO_THROW(fastact::sigmoid(x.data(), 1, x.data(), 1, 64));  // in place
  EXPECT_EQ(x[5], 1.0f / (1.0f + std::exp(-0.5f)));
  EXPECT_NO_THROW(fastact::sigmoid(x.data(), 0, y.data(), 1, 64));  // a broadcast input is fine
  EXPECT_NO_THROW(fastact::sigmoid(x.data(), 2, x.data(), 2, 32));  // in place, strided
  EXPECT_NO_THROW(fastact::sigmoid(x.data(), 1, y.data(), 1, 0));  // nothing to write
}

TEST(Api, ParametersMustFitTheComputeType) {
  std::vector<float> x(4, -1.0f), y(4);
  EXPECT_THROW(fastact::elu(x.data(), y.data(), 4, 1e39), fastact::Error);
  EXPECT_THROW(fastact::leaky_relu(x.data(), y.data(), 4, -1e39), fastact::Error);
  std::vector<fastact::bfloat16> xb(4, fastact::to_bfloat16(-1.0f)), yb(4);
  EXPECT_THROW(fastact::elu(xb.data(), yb.data(), 4, 1e39), fastact::Error);
  std::vector<double> xd(4, -1.0), yd(4);
  fastact::elu(xd.data(), yd.data(), 4, 1e39);  // float64 computes in float64
  EXPECT_DOUBLE_EQ(yd[0], 1e39 * std::expm1(-1.0));
  try {
    fastact::elu(x.data(), y.data(), 4, 1e39);
    ADD_FAILURE() << "no exception";
  } catch (const fastact::Error& e) {
    EXPECT_NE(std::string(e.what()).find("alpha must be a finite float32 number"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fastact::set_num_threads(0), fastact::Error);
  EXPECT_THROW(fastact::set_num_threads(fastact::cpu::kMaxThreads + 1), fastact::Error);
}
