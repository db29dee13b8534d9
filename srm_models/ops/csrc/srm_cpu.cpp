// SRM's big CPU passes as compiled loops over (n, c) rows of a contiguous (N, C, H, W) map.
//
// A row is read from memory once: its mean, its centred sum of squares and (at inference) the
// residual tail relu(x * g + identity) all run while the row sits in the L1/L2 cache. Built from
// torch ops the same work takes a reduction kernel, temporaries and several passes over memory.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

namespace {

// Rows per parallel task: about 64K elements, so that small maps do not pay a task per row.
int64_t rows_per_task(int64_t hw) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(hw, 1)); }

struct Moments {
  double mean;
  double std;  // sqrt(var + eps), var = centred sum of squares / (hw - correction)
};

// Eight doubles: one AVX-512 register, two AVX2 ones (GCC/Clang vector extensions).
using Doubles = double __attribute__((vector_size(64)));
using Floats = float __attribute__((vector_size(32)));
constexpr int64_t kWidth = 8;

inline Doubles load8(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof(v));
  return __builtin_convertvector(v, Doubles);
}

inline Doubles load8(const double* p) {
  Doubles v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Mean and sqrt(var + eps) of one row in a single read: sums of d = x - x[0] and of d * d, in
// double. Shifting by one of the row's own values bounds the cancellation in
// sum(d^2) - sum(d)^2 / n by a factor of n (no value lies further than sqrt(n - 1) standard
// deviations from the mean), so the variance keeps ~1e-11 relative accuracy for any input.
template <typename scalar_t>
inline Moments row_moments(const scalar_t* row, int64_t hw, int64_t correction, double eps) {
  const double shift = static_cast<double>(row[0]);
  Doubles k = {};
  k += shift;
  Doubles s1[4] = {}, s2[4] = {};  // four independent chains: adds need not wait on each other
  int64_t i = 0;
  for (; i + 4 * kWidth <= hw; i += 4 * kWidth) {
    for (int u = 0; u < 4; ++u) {
      const Doubles d = load8(row + i + u * kWidth) - k;
      s1[u] += d;
      s2[u] += d * d;
    }
  }
  for (; i + kWidth <= hw; i += kWidth) {
    const Doubles d = load8(row + i) - k;
    s1[0] += d;
    s2[0] += d * d;
  }
  const Doubles t1 = (s1[0] + s1[1]) + (s1[2] + s1[3]);
  const Doubles t2 = (s2[0] + s2[1]) + (s2[2] + s2[3]);
  double sum = 0, squares = 0;
  for (int64_t j = 0; j < kWidth; ++j) {
    sum += t1[j];
    squares += t2[j];
  }
  for (; i < hw; ++i) {
    const double d = static_cast<double>(row[i]) - shift;
    sum += d;
    squares += d * d;
  }
  const auto n = static_cast<double>(hw);
  const double var = std::max(squares - sum * sum / n, 0.0) / (n - static_cast<double>(correction));
  return {shift + sum / n, std::sqrt(var + eps)};
}

// relu(x * g + identity) over rows [begin, end), each with its own gate (see residual_inference_).
template <typename scalar_t>
void residual_rows(scalar_t* data, const scalar_t* skip, const scalar_t* w, const scalar_t* b,
                   int64_t rows, int64_t channels, int64_t hw, int64_t correction, double eps) {
  at::parallel_for(0, rows, rows_per_task(hw), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* row = data + r * hw;
      const scalar_t* skip_row = skip + r * hw;
      const int64_t c = r % channels;
      const Moments m = row_moments(row, hw, correction, eps);
      const double z = static_cast<double>(w[2 * c]) * m.mean +
                       static_cast<double>(w[2 * c + 1]) * m.std + static_cast<double>(b[c]);
      const auto g = static_cast<scalar_t>(1.0 / (1.0 + std::exp(-z)));
#pragma omp simd
      for (int64_t i = 0; i < hw; ++i) {
        const scalar_t v = row[i] * g + skip_row[i];
        row[i] = v < scalar_t(0) ? scalar_t(0) : v;  // NaN stays NaN, as torch.relu leaves it
      }
    }
  });
}

void check_map(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.is_contiguous(), what,
              " must be a contiguous 4-d CPU tensor, got sizes ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, what,
              " must be float32 or float64, got ", x.scalar_type());
}

// Per-(n, c) mean and sqrt(var + eps) of x (N, C, H, W), in x's dtype (float32 or float64).
std::tuple<at::Tensor, at::Tensor> style_stats(const at::Tensor& x, int64_t correction, double eps) {
  check_map(x, "style_stats: x");
  const int64_t hw = x.size(2) * x.size(3);
  TORCH_CHECK(hw > correction, "style_stats: correction must be below H*W");
  auto mean = at::empty({x.size(0), x.size(1)}, x.options());
  auto std = at::empty({x.size(0), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_style_stats", [&] {
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    scalar_t* mean_data = mean.mutable_data_ptr<scalar_t>();
    scalar_t* std_data = std.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, mean.numel(), rows_per_task(hw), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const Moments m = row_moments(data + r * hw, hw, correction, eps);
        mean_data[r] = static_cast<scalar_t>(m.mean);
        std_data[r] = static_cast<scalar_t>(m.std);
      }
    });
  });
  return {mean, std};
}

// Inference SRM on a residual branch, written over x: per row, the statistics, the folded
// gate g = sigmoid(w0 * mean + w1 * std + b) and relu(x * g + identity), in one sweep.
void residual_inference_(at::Tensor& x, const at::Tensor& identity, const at::Tensor& weight,
                         const at::Tensor& bias, int64_t correction, double eps) {
  check_map(x, "residual_inference_: x");
  check_map(identity, "residual_inference_: identity");
  TORCH_CHECK(identity.sizes() == x.sizes() && identity.scalar_type() == x.scalar_type(),
              "residual_inference_: identity must match x");
  const int64_t channels = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(hw > correction, "residual_inference_: correction must be below H*W");
  TORCH_CHECK(weight.is_contiguous() && weight.dim() == 2 && weight.size(0) == channels &&
                  weight.size(1) == 2 && bias.is_contiguous() && bias.numel() == channels &&
                  weight.scalar_type() == x.scalar_type() && bias.scalar_type() == x.scalar_type(),
              "residual_inference_: weight must be (C, 2) and bias (C,), in x's dtype");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_residual_inference", [&] {
    residual_rows(x.mutable_data_ptr<scalar_t>(), identity.const_data_ptr<scalar_t>(),
                  weight.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(),
                  x.size(0) * channels, channels, hw, correction, eps);
  });
}

}  // namespace

TORCH_LIBRARY(srm_cpu, m) {
  m.def("style_stats(Tensor x, int correction, float eps) -> (Tensor, Tensor)");
  m.def("residual_inference_(Tensor(a!) x, Tensor identity, Tensor weight, Tensor bias, "
        "int correction, float eps) -> ()");
}

TORCH_LIBRARY_IMPL(srm_cpu, CPU, m) {
  m.impl("style_stats", &style_stats);
  m.impl("residual_inference_", &residual_inference_);
}
