// SRM's big CPU passes as compiled loops over the (n, c) rows of contiguous (N, C, H, W) maps.
//
// Each pass reads a row from memory once and does all of its work while the row sits in the
// L1/L2 cache: at inference the statistics, the gate and relu(x * g + identity) together.
// Built from torch ops the same work takes reduction kernels, temporaries and several small
// ops per chunk. The per-row scalars (gate, mean, coefficients) come in x's dtype.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
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

// Eight values of a row in their own type (for masks and stores), and as doubles (for sums).
template <typename scalar_t>
struct Lanes;
template <>
struct Lanes<float> {
  using type = Floats;
};
template <>
struct Lanes<double> {
  using type = Doubles;
};

template <typename scalar_t>
inline typename Lanes<scalar_t>::type load_same(const scalar_t* p) {
  typename Lanes<scalar_t>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

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

// Sum of a[i] * b[i] over one row, in double, four independent chains.
template <typename scalar_t>
inline double row_dot(const scalar_t* a, const scalar_t* b, int64_t hw) {
  Doubles acc[4] = {};
  int64_t i = 0;
  for (; i + 4 * kWidth <= hw; i += 4 * kWidth) {
    for (int u = 0; u < 4; ++u) acc[u] += load8(a + i + u * kWidth) * load8(b + i + u * kWidth);
  }
  for (; i + kWidth <= hw; i += kWidth) acc[0] += load8(a + i) * load8(b + i);
  const Doubles t = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  double total = 0;
  for (int64_t j = 0; j < kWidth; ++j) total += t[j];
  for (; i < hw; ++i) total += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return total;
}

// fn(row) for every row of the map, rows split across torch's intra-op threads.
template <typename F>
void for_each_row(int64_t rows, int64_t hw, const F& fn) {
  at::parallel_for(0, rows, rows_per_task(hw), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) fn(r);
  });
}

void check_map(const at::Tensor& t, const at::Tensor& x, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 4 && t.is_contiguous(), what,
              " must be a contiguous 4-d CPU tensor, got sizes ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, what,
              " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == x.sizes() && t.scalar_type() == x.scalar_type(), what,
              " must match x's sizes and dtype");
}

void check_per_row(const at::Tensor& t, const at::Tensor& x, const char* what) {
  TORCH_CHECK(t.is_contiguous() && t.dim() == 2 && t.size(0) == x.size(0) &&
                  t.size(1) == x.size(1) && t.scalar_type() == x.scalar_type(),
              what, " must be a contiguous (N, C) tensor in x's dtype");
}

int64_t spatial(const at::Tensor& x) { return x.size(2) * x.size(3); }

// Per-(n, c) mean and sqrt(var + eps) of x.
std::tuple<at::Tensor, at::Tensor> style_stats(const at::Tensor& x, int64_t correction, double eps) {
  check_map(x, x, "style_stats: x");
  const int64_t hw = spatial(x);
  TORCH_CHECK(hw > correction, "style_stats: correction must be below H*W");
  auto mean = at::empty({x.size(0), x.size(1)}, x.options());
  auto std = at::empty({x.size(0), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_style_stats", [&] {
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    scalar_t* mean_data = mean.mutable_data_ptr<scalar_t>();
    scalar_t* std_data = std.mutable_data_ptr<scalar_t>();
    for_each_row(mean.numel(), hw, [&](int64_t r) {
      const Moments m = row_moments(data + r * hw, hw, correction, eps);
      mean_data[r] = static_cast<scalar_t>(m.mean);
      std_data[r] = static_cast<scalar_t>(m.std);
    });
  });
  return {mean, std};
}

template <typename scalar_t>
inline void scale_row(scalar_t* out, const scalar_t* x, scalar_t g, int64_t hw) {
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) out[i] = x[i] * g;
}

template <typename scalar_t>
inline void scale_add_relu_row(scalar_t* out, const scalar_t* x, scalar_t g, const scalar_t* skip,
                               int64_t hw) {
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) {
    const scalar_t v = x[i] * g + skip[i];
    out[i] = v < scalar_t(0) ? scalar_t(0) : v;  // NaN stays NaN, as torch.relu leaves it
  }
}

// x * g, or relu(x * g + identity) for a residual block, as a new tensor (training keeps x).
at::Tensor recalibrate(const at::Tensor& x, const at::Tensor& gate,
                       const std::optional<at::Tensor>& identity) {
  check_map(x, x, "recalibrate: x");
  check_per_row(gate, x, "recalibrate: gate");
  if (identity) check_map(*identity, x, "recalibrate: identity");
  auto out = at::empty_like(x);
  const int64_t hw = spatial(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_recalibrate", [&] {
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* gd = gate.const_data_ptr<scalar_t>();
    const scalar_t* skip = identity ? identity->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* od = out.mutable_data_ptr<scalar_t>();
    for_each_row(gate.numel(), hw, [&](int64_t r) {
      if (skip) {
        scale_add_relu_row(od + r * hw, xd + r * hw, gd[r], skip + r * hw, hw);
      } else {
        scale_row(od + r * hw, xd + r * hw, gd[r], hw);
      }
    });
  });
  return out;
}

// masked = (out <= 0 ? 0 : grad), as threshold_backward; returns sum(masked * x) in double.
// One loop: each block of eight is masked, stored and multiplied while in registers.
template <typename scalar_t>
inline double masked_row_dot(scalar_t* masked, const scalar_t* grad, const scalar_t* out,
                             const scalar_t* x, int64_t hw) {
  using Same = typename Lanes<scalar_t>::type;
  Doubles acc[2] = {};
  int64_t i = 0;
  for (; i + kWidth <= hw; i += kWidth) {
    const Same m = load_same(out + i) <= scalar_t(0) ? Same{} : load_same(grad + i);
    std::memcpy(masked + i, &m, sizeof(m));
    acc[(i / kWidth) & 1] += __builtin_convertvector(m, Doubles) * load8(x + i);
  }
  const Doubles t = acc[0] + acc[1];
  double total = 0;
  for (int64_t j = 0; j < kWidth; ++j) total += t[j];
  for (; i < hw; ++i) {
    masked[i] = out[i] <= scalar_t(0) ? scalar_t(0) : grad[i];
    total += static_cast<double>(masked[i]) * static_cast<double>(x[i]);
  }
  return total;
}

// dL/dg = sum_hw(grad * x) per row; with ``out`` (residual form) grad is first masked by the
// ReLU (out <= 0 -> 0, as threshold_backward), and the masked gradient (the identity's
// gradient) is returned too; without it the second result is empty.
std::tuple<at::Tensor, at::Tensor> gate_grad(const at::Tensor& grad, const at::Tensor& x,
                                             const std::optional<at::Tensor>& out) {
  check_map(x, x, "gate_grad: x");
  check_map(grad, x, "gate_grad: grad");
  if (out) check_map(*out, x, "gate_grad: out");
  auto grad_gate = at::empty({x.size(0), x.size(1)}, x.options());
  auto masked = out ? at::empty_like(x) : at::empty({0}, x.options());
  const int64_t hw = spatial(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_gate_grad", [&] {
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* gd = grad.const_data_ptr<scalar_t>();
    const scalar_t* od = out ? out->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* md = out ? masked.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dg = grad_gate.mutable_data_ptr<scalar_t>();
    for_each_row(grad_gate.numel(), hw, [&](int64_t r) {
      const int64_t at = r * hw;
      const double dot = od ? masked_row_dot(md + at, gd + at, od + at, xd + at, hw)
                            : row_dot(gd + at, xd + at, hw);
      dg[r] = static_cast<scalar_t>(dot);
    });
  });
  return {grad_gate, masked};
}

template <typename scalar_t>
inline void input_grad_row(scalar_t* dx, const scalar_t* grad, const scalar_t* x, scalar_t g,
                           scalar_t mean, scalar_t a, scalar_t b, int64_t hw) {
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) dx[i] = grad[i] * g + a + b * (x[i] - mean);
}

// dL/dx = grad * g + a + b * (x - mean), with per-row g, a, b and mean.
at::Tensor input_grad(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& gate,
                      const at::Tensor& mean, const at::Tensor& a, const at::Tensor& b) {
  check_map(x, x, "input_grad: x");
  check_map(grad, x, "input_grad: grad");
  check_per_row(gate, x, "input_grad: gate");
  check_per_row(mean, x, "input_grad: mean");
  check_per_row(a, x, "input_grad: a");
  check_per_row(b, x, "input_grad: b");
  auto dx = at::empty_like(x);
  const int64_t hw = spatial(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_input_grad", [&] {
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* gd = grad.const_data_ptr<scalar_t>();
    const scalar_t *gate_d = gate.const_data_ptr<scalar_t>(), *mean_d = mean.const_data_ptr<scalar_t>();
    const scalar_t *a_d = a.const_data_ptr<scalar_t>(), *b_d = b.const_data_ptr<scalar_t>();
    scalar_t* out = dx.mutable_data_ptr<scalar_t>();
    for_each_row(gate.numel(), hw, [&](int64_t r) {
      input_grad_row(out + r * hw, gd + r * hw, xd + r * hw, gate_d[r], mean_d[r], a_d[r], b_d[r], hw);
    });
  });
  return dx;
}

// Inference SRM on a residual branch, written over x: per row, the statistics, the folded
// gate g = sigmoid(w0 * mean + w1 * std + b) and relu(x * g + identity), in one read of x.
void residual_inference_(at::Tensor& x, const at::Tensor& identity, const at::Tensor& weight,
                         const at::Tensor& bias, int64_t correction, double eps) {
  check_map(x, x, "residual_inference_: x");
  check_map(identity, x, "residual_inference_: identity");
  const int64_t channels = x.size(1), hw = spatial(x);
  TORCH_CHECK(hw > correction, "residual_inference_: correction must be below H*W");
  TORCH_CHECK(weight.is_contiguous() && weight.dim() == 2 && weight.size(0) == channels &&
                  weight.size(1) == 2 && bias.is_contiguous() && bias.numel() == channels &&
                  weight.scalar_type() == x.scalar_type() && bias.scalar_type() == x.scalar_type(),
              "residual_inference_: weight must be (C, 2) and bias (C,), in x's dtype");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_residual_inference", [&] {
    scalar_t* data = x.mutable_data_ptr<scalar_t>();
    const scalar_t* skip = identity.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    const scalar_t* b = bias.const_data_ptr<scalar_t>();
    for_each_row(x.size(0) * channels, hw, [&](int64_t r) {
      scalar_t* row = data + r * hw;
      const int64_t c = r % channels;
      const Moments m = row_moments(row, hw, correction, eps);
      const double z = static_cast<double>(w[2 * c]) * m.mean +
                       static_cast<double>(w[2 * c + 1]) * m.std + static_cast<double>(b[c]);
      const auto g = static_cast<scalar_t>(1.0 / (1.0 + std::exp(-z)));
      scale_add_relu_row(row, row, g, skip + r * hw, hw);
    });
  });
}

}  // namespace

TORCH_LIBRARY(srm_cpu, m) {
  m.def("style_stats(Tensor x, int correction, float eps) -> (Tensor, Tensor)");
  m.def("recalibrate(Tensor x, Tensor gate, Tensor? identity) -> Tensor");
  m.def("gate_grad(Tensor grad, Tensor x, Tensor? out) -> (Tensor, Tensor)");
  m.def("input_grad(Tensor grad, Tensor x, Tensor gate, Tensor mean, Tensor a, Tensor b) -> Tensor");
  m.def("residual_inference_(Tensor(a!) x, Tensor identity, Tensor weight, Tensor bias, "
        "int correction, float eps) -> ()");
}

TORCH_LIBRARY_IMPL(srm_cpu, CPU, m) {
  m.impl("style_stats", &style_stats);
  m.impl("recalibrate", &recalibrate);
  m.impl("gate_grad", &gate_grad);
  m.impl("input_grad", &input_grad);
  m.impl("residual_inference_", &residual_inference_);
}
