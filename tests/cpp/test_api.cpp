// The public C++ API (fastact/fastact.h) and the engines behind it, with no Python involved.
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "cpu/engine.h"
#include "cpu/dispatch.h"
#include "cpu/thread_pool.h"
#include "fastact/fastact.h"

TEST(Api, ForwardBackwardContiguousAndStrided) {
  const std::size_t n = 1001;
  std::vector<float> x(n), y(n), ys(2 * n), xs(3 * n), dx(n), g(n, 1.0f);
  for (std::size_t i = 0; i < n; ++i) x[i] = xs[3 * i] = -8.0f + 16.0f * float(i) / float(n);
  fastact::gelu(x.data(), y.data(), n);
  EXPECT_FLOAT_EQ(y[n / 2], x[n / 2] * 0.5f * std::erfc(-x[n / 2] / std::sqrt(2.0f)));
  fastact::gelu(xs.data(), 3, ys.data(), 2, n);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(ys[2 * i], y[i]);
  fastact::gelu(x.data(), y.data(), n, fastact::GeluApprox::tanh);
  const double want = -8.0 / (1.0 + std::exp(1.5957691216057308 * (8.0 + 0.044715 * 512.0)));  // ~ -3e-21
  EXPECT_NEAR(y[0] / want, 1.0, 2e-7);
  fastact::elu(x.data(), y.data(), n, 0.5);
  EXPECT_FLOAT_EQ(y[0], 0.5f * std::expm1(-8.0f));
  fastact::sigmoid(x.data(), y.data(), n);
  fastact::sigmoid_backward_from_y(g.data(), y.data(), dx.data(), n);
  std::vector<float> dx2(n);
  fastact::sigmoid_backward(g.data(), x.data(), dx2.data(), n);
  for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(dx[i], dx2[i], 1e-7f);
  std::vector<double> xd(x.begin(), x.end()), yd(n);
  fastact::tanh(xd.data(), yd.data(), n);
  EXPECT_DOUBLE_EQ(yd[n - 1], std::tanh(xd[n - 1]));
}

TEST(Api, CatalogSignatures) {
  // required parameters (no default), a parameter named bias beside bias_act's b, the cross-parameter rule
  const std::size_t n = 9;
  std::vector<float> x(n), y(n), b(n, 0.5f), db(n), dx(n), g(n, 1.0f);
  for (std::size_t i = 0; i < n; ++i) x[i] = -2.0f + 0.5f * float(i);
  fastact::threshold(x.data(), y.data(), n, 0.25, -7.0);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], x[i] > 0.25f ? x[i] : -7.0f);
  fastact::softcap(x.data(), y.data(), n, 30.0);
  EXPECT_NEAR(y[0], 30.0 * std::tanh(-2.0 / 30.0), 1e-6);
  fastact::softcap_backward_from_y(g.data(), y.data(), dx.data(), n, 30.0);
  EXPECT_NEAR(dx[0], 1.0 - std::pow(std::tanh(-2.0 / 30.0), 2), 1e-6);
  fastact::bias_shrink(x.data(), b.data(), y.data(), 1, n, 1.0, 0.25);  // lambd = 1, bias = 0.25
  for (std::size_t i = 0; i < n; ++i) {
    const float z = x[i] + 0.5f;
    ASSERT_EQ(y[i], z > 1.0f ? z - 0.25f : z < -1.0f ? z + 0.25f : 0.0f);
  }
  fastact::hardtanh(x.data(), y.data(), n, -INFINITY, 1.0);  // ONNX Clip with no lower bound
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[n - 1], 1.0f);
  EXPECT_THROW(fastact::hardtanh(x.data(), y.data(), n, 2.0, 1.0), fastact::Error);
  EXPECT_THROW(fastact::softcap(x.data(), y.data(), n, 0.0), fastact::Error);
}

TEST(Api, RowOps) {
  const std::size_t rows = 3, cols = 1000;
  std::vector<float> x(rows * cols), y(rows * cols), yt(rows * cols), xt(rows * cols);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7919 % 100)) / 7.0f;
  fastact::softmax(x.data(), y.data(), rows, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::size_t c = 0; c < cols; ++c) s += y[r * cols + c];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
  // the same rows stored column-major
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) xt[c * rows + r] = x[r * cols + c];
  fastact::softmax(xt.data(), 1, std::ptrdiff_t(rows), yt.data(), 1, std::ptrdiff_t(rows), rows, cols);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) ASSERT_EQ(yt[c * rows + r], y[r * cols + c]);
  std::vector<float> g(x.size(), 1.0f), dx(x.size());
  fastact::softmax_backward(g.data(), y.data(), dx.data(), rows, cols);
  for (float v : dx) EXPECT_NEAR(v, 0.0f, 1e-7f);  // a constant gradient does not move softmax
}

TEST(Api, ErrorsAreExceptions) {
  float x = 1, y;
  EXPECT_THROW(fastact::elu(&x, &y, 1, NAN), fastact::Error);
  EXPECT_THROW(fastact::leaky_relu_backward_from_y(&x, &x, &y, 1, -0.5), fastact::Error);
  EXPECT_THROW(fastact::set_isa("avx1024"), fastact::Error);
  EXPECT_THROW(fastact::set_num_threads(0), std::invalid_argument);
}

TEST(Api, IsaSelectionAndThreadsDoNotChangeResults) {
  const std::size_t n = 200003;
  std::vector<float> x(n), y0(n), y1(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = float(i % 2001) / 100.0f - 10.0f;
  const std::string before = fastact::current_isa();
  fastact::set_isa("scalar");
  fastact::set_num_threads(1);
  fastact::silu(x.data(), y0.data(), n);
  fastact::set_isa("best");
  fastact::set_num_threads(3);
  fastact::silu(x.data(), y1.data(), n);
  fastact::set_isa(before);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(y0[i], y1[i]) << i;
  EXPECT_FALSE(fastact::compiled_isas().empty());
  EXPECT_EQ(fastact::supported_isas().front(), "scalar");
}

TEST(Engine, NdStridedEqualsContiguous) {
  // a 3-d view with a negative and a zero stride
  const std::int64_t shape[3] = {4, 5, 6};
  std::vector<double> base(4 * 5 * 6 * 2);
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = double(i) * 0.01 - 1.0;
  const std::int64_t st[3] = {-60, 0, 2};  // rows reversed, axis 1 broadcast, every other element
  const double* origin = base.data() + 3 * 60;
  std::vector<double> contig(4 * 5 * 6), out(4 * 5 * 6), want(4 * 5 * 6);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 6; ++k) contig[(i * 5 + j) * 6 + k] = origin[i * st[0] + j * st[1] + k * st[2]];
  const auto& t = fastact::cpu::active_table();
  auto k = t.ew[int(fastact::ElementwiseOp::gelu)][fastact::cpu::kForward][fastact::cpu::kF64];
  const double p[fastact::kMaxParams] = {0, 0, 0, 0};
  k(contig.data(), nullptr, want.data(), contig.size(), p);
  const std::int64_t os[3] = {30, 6, 1};
  fastact::cpu::run_elementwise(k, 8, 3, shape, out.data(), os, {origin, st}, {nullptr, st}, p);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], want[i]) << i;
}

TEST(Api, HalfTypesUseTheSameNames) {
  const std::size_t n = 5;
  fastact::half xh[n], yh[n];
  fastact::bfloat16 xb[n], yb[n];
  const float xs[n] = {-3.0f, -0.5f, 0.0f, 0.5f, 3.0f};
  float yf[n];
  fastact::gelu(xs, yf, n);
  for (std::size_t i = 0; i < n; ++i) {
    xh[i] = fastact::to_half(xs[i]);
    xb[i] = fastact::to_bfloat16(xs[i]);
  }
  fastact::gelu(xh, yh, n);
  fastact::gelu(xb, yb, n);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(yh[i].bits, fastact::to_half(yf[i]).bits);  // the float32 result, rounded once
    EXPECT_EQ(yb[i].bits, fastact::to_bfloat16(yf[i]).bits);
  }
  fastact::softmax(xh, yh, 1, n);
  float s = 0;
  for (auto v : yh) s += fastact::to_float(v);
  EXPECT_NEAR(s, 1.0f, 2e-3f);
}

// The pool under churn: many short regions back to back (workers spinning, sleeping, arriving late),
// from two caller threads at once; every task must run exactly once per region.
TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  const int before = fastact::num_threads();
  for (int threads : {2, 3, 8}) {
    fastact::set_num_threads(threads);
    std::atomic<int> workers_used{0};
    auto hammer = [&workers_used](unsigned seed, int regions, bool* ok) {
      std::vector<std::atomic<int>> hits(64);
      unsigned s = seed;
      for (int r = 0; r < regions && *ok; ++r) {
        s = s * 1664525u + 1013904223u;
        const int ntasks = 2 + int(s % 40);
        for (int t = 0; t < ntasks; ++t) hits[t].store(0);
        std::atomic<int> ran_elsewhere{0};
        const auto caller = std::this_thread::get_id();
        fastact::cpu::parallel_run(ntasks, [&](int t) {
          for (volatile int spin = 0; spin < 300; spin = spin + 1) {
          }
          if (std::this_thread::get_id() != caller) ran_elsewhere.fetch_add(1);
          hits[t].fetch_add(1);
        });
        workers_used.fetch_add(ran_elsewhere.load() > 0);
        for (int t = 0; t < ntasks; ++t)
          if (hits[t].load() != 1) *ok = false;
      }
    };
    bool ok1 = true, ok2 = true;
    std::thread other(hammer, 7u, 3000, &ok2);
    hammer(11u, 3000, &ok1);
    other.join();
    EXPECT_TRUE(ok1 && ok2) << threads << " threads";
    EXPECT_GT(workers_used.load(), 0) << "the workers never took part";
  }
  fastact::set_num_threads(before);
}

// Workers that find another pool thread on their CPU move off it (thread_pool.cpp, Placement) by
// narrowing their affinity for an instant: afterwards every pool thread must still hold the whole mask it
// started with (a move, never a pin), across pauses long enough for the workers to sleep and be woken.
TEST(ThreadPool, MovesNeverPinAWorker) {
  const int before = fastact::num_threads();
  cpu_set_t process;
  ASSERT_EQ(sched_getaffinity(0, sizeof(process), &process), 0);
  fastact::set_num_threads(2);
  std::atomic<int> narrowed{0}, ran{0};
  for (int pause = 0; pause < 6; ++pause) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the workers' 200 us spin
    for (int r = 0; r < 200; ++r)
      fastact::cpu::parallel_run(2, [&](int) {
        cpu_set_t mine;
        if (sched_getaffinity(0, sizeof(mine), &mine) != 0 || !CPU_EQUAL(&mine, &process)) narrowed.fetch_add(1);
        ran.fetch_add(1);
      });
  }
  EXPECT_EQ(ran.load(), 6 * 200 * 2);
  EXPECT_EQ(narrowed.load(), 0) << "a task ran on a thread whose affinity was left narrowed";
  fastact::set_num_threads(before);
}

TEST(Api, GatedOpsInBothForms) {
  // rows of 2 * half: the one-array form splits each row; the two-array form takes the halves
  const std::size_t rows = 5, half = 37;
  std::vector<float> x(rows * 2 * half), gate(rows * half), up(rows * half), y1(rows * half), y2(rows * half);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = -6.0f + 12.0f * float((i * 7919) % 1000) / 1000.0f;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < half; ++j) {
      gate[r * half + j] = x[r * 2 * half + j];
      up[r * half + j] = x[r * 2 * half + half + j];
    }
  fastact::swiglu(x.data(), y1.data(), rows, half, 0.5);
  fastact::swiglu(gate.data(), up.data(), y2.data(), rows * half, 0.5);
  EXPECT_EQ(y1, y2);
  std::vector<float> silu(rows * half);
  fastact::silu(gate.data(), silu.data(), rows * half, 0.5);
  for (std::size_t i = 0; i < y2.size(); ++i) ASSERT_EQ(y2[i], silu[i] * up[i]);  // the unfused bits
  std::vector<float> dy(rows * half, 0.75f), dx(x.size()), dg(rows * half), du(rows * half);
  fastact::geglu_backward(dy.data(), x.data(), dx.data(), rows, half, fastact::GeluApprox::tanh);
  fastact::geglu_backward(dy.data(), gate.data(), up.data(), dg.data(), du.data(), rows * half, fastact::GeluApprox::tanh);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < half; ++j) {
      ASSERT_EQ(dx[r * 2 * half + j], dg[r * half + j]);
      ASSERT_EQ(dx[r * 2 * half + half + j], du[r * half + j]);
    }
  std::vector<float> g2 = gate, u2 = up;  // in place
  fastact::geglu_backward(dy.data(), g2.data(), u2.data(), g2.data(), u2.data(), rows * half, fastact::GeluApprox::tanh);
  EXPECT_EQ(g2, dg);
  EXPECT_EQ(u2, du);
  EXPECT_THROW(fastact::glu_backward(dy.data(), gate.data(), up.data(), dg.data(), dg.data(), rows * half), fastact::Error);
  EXPECT_THROW(fastact::swiglu(gate.data(), up.data(), y1.data(), rows * half, 1e39), fastact::Error);
  EXPECT_THROW(fastact::reglu(gate.data(), up.data(), gate.data() + 1, rows * half - 1), fastact::Error);  // shifted
}

TEST(Api, BroadcastOpsPreluAndBiasAct) {
  // prelu on (outer, channels, inner): against the plain loop; dweight the sum of dy * x where x <= 0
  const std::size_t outer = 3, channels = 5, inner = 11, n = outer * channels * inner;
  std::vector<double> x(n), dy(n), w(channels), y(n), dx(n), dw(channels);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = -3.0 + 6.0 * double((i * 7919) % 1000) / 1000.0;
    dy[i] = 0.25 * double(int(i % 7) - 3);
  }
  for (std::size_t c = 0; c < channels; ++c) w[c] = 0.1 * double(c + 1);
  fastact::prelu(x.data(), w.data(), y.data(), outer, channels, inner);
  fastact::prelu_backward(dy.data(), x.data(), w.data(), dx.data(), dw.data(), outer, channels, inner);
  std::vector<double> want_dw(channels, 0.0);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t j = 0; j < inner; ++j) {
        const std::size_t i = (o * channels + c) * inner + j;
        ASSERT_EQ(y[i], x[i] > 0 ? x[i] : x[i] * w[c]);
        ASSERT_EQ(dx[i], x[i] > 0 ? dy[i] : dy[i] * w[c]);
        if (x[i] <= 0) want_dw[c] += dy[i] * x[i];
      }
  for (std::size_t c = 0; c < channels; ++c) EXPECT_NEAR(dw[c], want_dw[c], 1e-13);
  std::vector<double> w2 = w, x2 = x;  // in place: dx over x, dweight over the weight
  fastact::prelu_backward(dy.data(), x2.data(), w2.data(), x2.data(), w2.data(), outer, channels, inner);
  EXPECT_EQ(x2, dx);
  EXPECT_EQ(w2, dw);
  EXPECT_THROW(fastact::prelu_backward(dy.data(), x.data(), w.data(), dx.data(), dx.data() + 3, outer, channels, inner),
               fastact::Error);  // dweight inside dx
  EXPECT_THROW(fastact::prelu_backward(dy.data(), x.data(), w2.data(), dx.data(), w2.data() + 1, outer, channels - 1, inner),
               fastact::Error);  // dweight one past the weight (not it)
  // bias_gelu: gelu(x + bias) bit for bit; dbias the column sums of dx
  const std::size_t rows = 300, cols = 17;
  std::vector<float> a(rows * cols), b(cols), out(rows * cols), z(rows * cols), g(rows * cols), ga(rows * cols),
      gz(rows * cols), db(cols), ones(rows * cols, 1.0f);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = -5.0f + 10.0f * float((i * 104729) % 1000) / 1000.0f;
  for (std::size_t j = 0; j < cols; ++j) b[j] = 0.5f - 0.05f * float(j);
  for (std::size_t i = 0; i < a.size(); ++i) z[i] = a[i] + b[i % cols];
  fastact::bias_gelu(a.data(), b.data(), out.data(), rows, cols, fastact::GeluApprox::tanh);
  fastact::gelu(z.data(), g.data(), z.size(), fastact::GeluApprox::tanh);
  EXPECT_EQ(out, g);
  fastact::bias_gelu_backward(ones.data(), a.data(), b.data(), ga.data(), db.data(), rows, cols);
  fastact::gelu_backward(ones.data(), z.data(), gz.data(), z.size());
  EXPECT_EQ(ga, gz);
  for (std::size_t j = 0; j < cols; ++j) {
    double s = 0;
    for (std::size_t r = 0; r < rows; ++r) s += gz[r * cols + j];
    EXPECT_NEAR(db[j], s, 1e-6 * rows);
  }
  EXPECT_THROW(fastact::bias_elu(a.data(), b.data(), out.data(), rows, cols, 1e39), fastact::Error);
}

// cross_entropy and logsumexp on raw pointers: against a double reference, every reduction, ignore_index
// and weights, the gradient in place, and bad targets refused before anything is read.
TEST(Api, CrossEntropyAndLogsumexp) {
  const std::size_t rows = 5, k = 7;
  std::vector<float> x(rows * k);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i) * 1.7) * 6.0);
  const std::int64_t target[rows] = {0, 6, -100, 3, 2};
  std::vector<double> ref(rows, 0.0), lse(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (std::size_t j = 0; j < k; ++j) m = std::max(m, double(x[r * k + j]));
    for (std::size_t j = 0; j < k; ++j) s += std::exp(double(x[r * k + j]) - m);
    lse[r] = m + std::log(s);
    if (target[r] >= 0) ref[r] = lse[r] - double(x[r * k + std::size_t(target[r])]);
  }
  std::vector<float> y(rows);
  fastact::logsumexp(x.data(), y.data(), rows, k);
  for (std::size_t r = 0; r < rows; ++r) EXPECT_NEAR(y[r], lse[r], 1e-6 * std::fabs(lse[r]));
  const double mean = fastact::cross_entropy(x.data(), target, rows, k);
  EXPECT_NEAR(mean, (ref[0] + ref[1] + ref[3] + ref[4]) / 4, 1e-6);
  fastact::CrossEntropyOptions o;
  o.reduction = fastact::Reduction::none;
  std::vector<double> per_row(rows);
  fastact::cross_entropy(x.data(), target, rows, k, o, per_row.data());
  for (std::size_t r = 0; r < rows; ++r) EXPECT_NEAR(per_row[r], ref[r], 1e-6 * (1 + ref[r]));
  const double w[k] = {1, 2, 3, 4, 5, 6, 7};
  o.reduction = fastact::Reduction::sum;
  o.weight = w;
  EXPECT_NEAR(fastact::cross_entropy(x.data(), target, rows, k, o), ref[0] * 1 + ref[1] * 7 + ref[3] * 4 + ref[4] * 3,
              1e-5);
  // the gradient of the sum, in place: softmax - onehot, zeros for the ignored row
  std::vector<float> g = x;
  const double one = 1.0;
  fastact::cross_entropy_backward(&one, g.data(), target, g.data(), rows, k, fastact::CrossEntropyOptions{nullptr, fastact::Reduction::sum});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < k; ++j) {
      double want = target[r] < 0 ? 0.0 : std::exp(double(x[r * k + j]) - lse[r]) - (std::int64_t(j) == target[r]);
      ASSERT_NEAR(g[r * k + j], want, 1e-6) << r << " " << j;
    }
  const std::int64_t bad[rows] = {0, 7, 0, 0, 0};
  EXPECT_THROW(fastact::cross_entropy(x.data(), bad, rows, k), fastact::Error);
  o = {};
  o.label_smoothing = 1.5;
  EXPECT_THROW(fastact::cross_entropy(x.data(), target, rows, k, o), fastact::Error);
}

TEST(Api, NllLossOfLogSoftmaxIsCrossEntropy) {
  const std::size_t rows = 4, k = 9;
  std::vector<double> x(rows * k), lp(rows * k), g(rows * k, 7.0);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(double(i) * 0.9) * 5.0;
  fastact::log_softmax(x.data(), lp.data(), rows, k);
  const std::int64_t target[rows] = {1, -100, 8, 0};
  EXPECT_NEAR(fastact::nll_loss(lp.data(), target, rows, k), fastact::cross_entropy(x.data(), target, rows, k), 1e-14);
  const double two = 2.0;
  fastact::CrossEntropyOptions sum;
  sum.reduction = fastact::Reduction::sum;
  fastact::nll_loss_backward(&two, target, g.data(), rows, k, sum);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < k; ++j) ASSERT_EQ(g[r * k + j], target[r] == std::int64_t(j) ? -2.0 : 0.0);
  fastact::CrossEntropyOptions smooth;
  smooth.label_smoothing = 0.1;
  EXPECT_THROW(fastact::nll_loss(lp.data(), target, rows, k, smooth), fastact::Error);
}

// The element-wise losses through the C++ API: reductions, weights (given or 1), the backward's scaling, in
// place, and the errors.
TEST(Api, ElementwiseLosses) {
  const std::size_t n = 1000;
  std::vector<float> x(n), t(n), w(n), pw(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = float(std::sin(double(i) * 1.3) * 4.0);
    t[i] = float(0.5 + 0.5 * std::cos(double(i) * 0.7));
    w[i] = float(0.5 + double(i % 3));
    pw[i] = float(1.0 + double(i % 5) * 0.25);
  }
  double mse = 0, huber = 0, bce = 0;
  std::vector<double> g_bce(n), g_scale(n);  // the gradient and its largest term (it cancels near its zeros)
  for (std::size_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - double(t[i]), a = std::fabs(d), xi = x[i], ti = t[i];
    mse += d * d;
    huber += a <= 0.5 ? 0.5 * d * d : 0.5 * (a - 0.25);
    const double sp = std::log1p(std::exp(-std::fabs(xi))), spp = std::max(xi, 0.0) + sp, spn = std::max(-xi, 0.0) + sp;
    bce += w[i] * (pw[i] * ti * spn + (1 - ti) * spp);
    g_bce[i] = w[i] * ((1 - ti) / (1 + std::exp(-xi)) - pw[i] * ti / (1 + std::exp(xi)));
    g_scale[i] = w[i] * ((1 - ti) / (1 + std::exp(-xi)) + pw[i] * ti / (1 + std::exp(xi)));
  }
  EXPECT_NEAR(fastact::mse_loss(x.data(), t.data(), n), mse / n, 1e-6 * mse / n);
  EXPECT_NEAR(fastact::huber_loss(x.data(), t.data(), n, fastact::Reduction::sum, nullptr, {}, 0.5), huber, 1e-6 * huber);
  EXPECT_NEAR(fastact::binary_cross_entropy_with_logits(x.data(), t.data(), n, fastact::Reduction::sum, nullptr,
                                                        {w.data(), pw.data()}),
              bce, 1e-6 * bce);
  // weights left out are 1: pos_weight alone
  std::vector<float> per(n), per_ones(n), ones(n, 1.0f);
  fastact::binary_cross_entropy_with_logits(x.data(), t.data(), n, fastact::Reduction::none, per.data(),
                                            {nullptr, pw.data()});
  fastact::binary_cross_entropy_with_logits(x.data(), t.data(), n, fastact::Reduction::none, per_ones.data(),
                                            {ones.data(), pw.data()});
  EXPECT_EQ(per, per_ones);
  // the gradient of the mean, scaled by grad / n, in place over the input
  std::vector<float> g = x;
  const float two = 2.0f;
  fastact::binary_cross_entropy_with_logits_backward(&two, g.data(), t.data(), g.data(), n, fastact::Reduction::mean,
                                                     {w.data(), pw.data()});
  for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(g[i], 2.0 * g_bce[i] / n, 1e-6 * 2.0 * g_scale[i] / n);
  // errors: too many weights, a bad parameter, Reduction::none without an output
  EXPECT_THROW(fastact::mse_loss(x.data(), t.data(), n, fastact::Reduction::sum, nullptr, {w.data()}), fastact::Error);
  EXPECT_THROW(fastact::huber_loss(x.data(), t.data(), n, fastact::Reduction::sum, nullptr, {}, -1.0), fastact::Error);
  EXPECT_THROW(fastact::mse_loss(x.data(), t.data(), n, fastact::Reduction::none), fastact::Error);
}

// Probability targets: a one-hot row is its class index's loss; the gradient in place over the logits.
TEST(Api, CrossEntropyProbabilityTargets) {
  const std::size_t rows = 6, k = 9;
  std::vector<float> x(rows * k), p(rows * k, 0.0f);
  std::vector<std::int64_t> t(rows);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::cos(double(i) * 0.9) * 5.0);
  for (std::size_t r = 0; r < rows; ++r) {
    t[r] = std::int64_t((r * 5) % k);
    p[r * k + std::size_t(t[r])] = 1.0f;
  }
  fastact::CrossEntropyOptions o;
  o.label_smoothing = 0.1;
  EXPECT_NEAR(fastact::cross_entropy_probs(x.data(), p.data(), rows, k, o), fastact::cross_entropy(x.data(), t.data(), rows, k, o),
              1e-6);
  std::vector<float> g1 = x, g2(x.size());
  const double one = 1.0;
  fastact::cross_entropy_probs_backward(&one, g1.data(), p.data(), g1.data(), rows, k, o);
  fastact::cross_entropy_backward(&one, x.data(), t.data(), g2.data(), rows, k, o);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(g1[i], g2[i], 1e-7);
  EXPECT_THROW(fastact::cross_entropy_probs_backward(&one, x.data(), p.data(), p.data(), rows, k, o), fastact::Error);
}
