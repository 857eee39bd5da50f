// One training step of a two-layer classifier in plain C++ with fastact: dense -> bias + GELU (one pass)
// -> dense -> cross-entropy with label smoothing (the softmax never stored), then the backward, the
// logits' gradient written over the logits. Checks the gradient against a finite difference of the loss
// and exits non-zero if they disagree, so CI can run it.
#include <fastact/fastact.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

namespace {

// y[r][o] = sum_i x[r][i] * w[o][i]  (w: out x in, as PyTorch's Linear)
void dense(const std::vector<float>& x, const std::vector<float>& w, std::vector<float>& y, std::size_t rows,
           std::size_t in, std::size_t out) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t o = 0; o < out; ++o) {
      double s = 0;
      for (std::size_t i = 0; i < in; ++i) s += double(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = float(s);
    }
}

struct Net {
  std::size_t rows, in, hidden, classes;
  std::vector<float> w1, b1, w2;
  fastact::CrossEntropyOptions ce;

  // The loss, and (when dw1 is given) the gradient of the first layer's weights.
  double step(const std::vector<float>& x, const std::vector<std::int64_t>& target, std::vector<float>* dw1) const {
    std::vector<float> h(rows * hidden), a(rows * hidden), logits(rows * classes);
    dense(x, w1, h, rows, in, hidden);
    fastact::bias_gelu(h.data(), b1.data(), a.data(), rows, hidden);  // gelu(h + b1)
    dense(a, w2, logits, rows, hidden, classes);
    double loss = fastact::cross_entropy(logits.data(), target.data(), rows, classes, ce);
    if (dw1 == nullptr) return loss;
    double one = 1.0;
    fastact::cross_entropy_backward(&one, logits.data(), target.data(), logits.data(), rows, classes, ce);
    std::vector<float> da(rows * hidden, 0.0f), dh(rows * hidden), db1(hidden);
    for (std::size_t r = 0; r < rows; ++r)  // da = dlogits @ w2
      for (std::size_t c = 0; c < classes; ++c)
        for (std::size_t j = 0; j < hidden; ++j) da[r * hidden + j] += logits[r * classes + c] * w2[c * hidden + j];
    fastact::bias_gelu_backward(da.data(), h.data(), b1.data(), dh.data(), db1.data(), rows, hidden);
    dw1->assign(hidden * in, 0.0f);
    for (std::size_t r = 0; r < rows; ++r)  // dw1 = dh^T @ x
      for (std::size_t j = 0; j < hidden; ++j)
        for (std::size_t i = 0; i < in; ++i) (*dw1)[j * in + i] += dh[r * hidden + j] * x[r * in + i];
    return loss;
  }
};

}  // namespace

int main() {
  const std::size_t rows = 32, in = 16, hidden = 24, classes = 5;
  std::mt19937 gen(0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * in);
  for (auto& v : x) v = normal(gen);
  std::vector<std::int64_t> target(rows);
  for (std::size_t r = 0; r < rows; ++r) target[r] = std::int64_t(r % classes);
  target[3] = -100;  // ignored, as PyTorch's ignore_index

  Net net{rows, in, hidden, classes, std::vector<float>(hidden * in), std::vector<float>(hidden, 0.1f),
          std::vector<float>(classes * hidden), {}};
  for (auto& v : net.w1) v = normal(gen) / std::sqrt(float(in));
  for (auto& v : net.w2) v = normal(gen) / std::sqrt(float(hidden));
  net.ce.label_smoothing = 0.1;

  std::vector<float> dw1;
  double loss = net.step(x, target, &dw1);

  // Check one weight's gradient against a central difference of the loss (in float64 steps of the weight).
  const std::size_t k = 5 * in + 3;
  const float eps = 1e-2f, w = net.w1[k];
  net.w1[k] = w + eps;
  double up = net.step(x, target, nullptr);
  net.w1[k] = w - eps;
  double down = net.step(x, target, nullptr);
  net.w1[k] = w;
  double numeric = (up - down) / (2.0 * eps);
  double rel = std::fabs(numeric - dw1[k]) / std::fmax(std::fabs(numeric), 1e-6);

  std::printf("fastact %s on %s: loss %.6f; dL/dw1[%zu] = %.6f (central difference %.6f, relative difference %.1e)\n",
              fastact::version(), fastact::current_isa().c_str(), loss, k, dw1[k], numeric, rel);
  return (std::isfinite(loss) && rel < 1e-2) ? 0 : 1;
}
