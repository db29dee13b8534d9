// SRM on the CPU as compiled loops over contiguous (N, C, H, W) maps, one channel at a time.
//
// SRM's gate couples the N samples of a channel (BatchNorm over the batch) and nothing else, so
// each thread takes whole channels: it reads the channel's N rows from memory once, computes
// their statistics, the gate (or, backward, the gate's gradient) for the channel, and makes
// its second sweep over the same rows while they are still in the L2 cache. Built from torch
// ops the same work reads every map two or three times and pays for several small ops per
// chunk. The gate math mirrors ops/gate.py, in double.
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
#include <vector>

namespace {

// Channels (or rows) per parallel task: about 64K elements, so that small maps do not pay a
// task per channel.
int64_t per_task(int64_t elements) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(elements, 1));
}

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

template <typename scalar_t>
inline void input_grad_row(scalar_t* dx, const scalar_t* grad, const scalar_t* x, scalar_t g,
                           scalar_t mean, scalar_t a, scalar_t b, int64_t hw) {
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) dx[i] = grad[i] * g + a + b * (x[i] - mean);
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

void check_map(const at::Tensor& t, const at::Tensor& x, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 4 && t.is_contiguous(), what,
              " must be a contiguous 4-d CPU tensor, got sizes ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, what,
              " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == x.sizes() && t.scalar_type() == x.scalar_type(), what,
              " must match x's sizes and dtype");
}

// A per-channel parameter: contiguous, in x's dtype, ``per_channel`` values per channel.
const void* param(const std::optional<at::Tensor>& t, const at::Tensor& x, int64_t per_channel,
                  const char* what) {
  if (!t) return nullptr;
  TORCH_CHECK(t->is_contiguous() && t->numel() == x.size(1) * per_channel &&
                  t->scalar_type() == x.scalar_type(),
              what, " must be contiguous, in x's dtype, with ", per_channel, " value(s) per channel");
  return t->const_data_ptr();
}

template <typename scalar_t>
struct Gate {  // the per-channel parameters of eqs. (4)-(8); nullptr where absent
  const scalar_t *weight, *bias, *bn_weight, *bn_bias;
  bool batch_stats;
  double bn_eps;

  // Logits z_n = w . (mean_n, std_n) (+ b), then (batch statistics) normalised over n.
  // Fills z with the pre-affine values (z_hat under batch statistics) and returns 1/sigma.
  double logits(int64_t c, const double* mean, const double* std, int64_t n, double* z) const {
    for (int64_t i = 0; i < n; ++i) {
      z[i] = double(weight[2 * c]) * mean[i] + double(weight[2 * c + 1]) * std[i] +
             (bias ? double(bias[c]) : 0.0);
    }
    if (!batch_stats) return 1.0;
    double mu = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mu += z[i];
    mu /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (z[i] - mu) * (z[i] - mu);
    const double rstd = 1.0 / std::sqrt(var / double(n) + bn_eps);
    for (int64_t i = 0; i < n; ++i) z[i] = (z[i] - mu) * rstd;
    return rstd;
  }

  double gamma(int64_t c) const { return batch_stats && bn_weight ? double(bn_weight[c]) : 1.0; }
  double beta(int64_t c) const { return batch_stats && bn_bias ? double(bn_bias[c]) : 0.0; }
};

template <typename scalar_t>
Gate<scalar_t> gate_of(const at::Tensor& x, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias,
                       const std::optional<at::Tensor>& bn_weight,
                       const std::optional<at::Tensor>& bn_bias, bool batch_stats, double bn_eps) {
  return {static_cast<const scalar_t*>(param(weight, x, 2, "weight")),
          static_cast<const scalar_t*>(param(bias, x, 1, "bias")),
          static_cast<const scalar_t*>(param(bn_weight, x, 1, "bn_weight")),
          static_cast<const scalar_t*>(param(bn_bias, x, 1, "bn_bias")), batch_stats, bn_eps};
}

// Forward: (x * g or relu(x * g + identity), mean, std), statistics and gate per (n, c).
std::tuple<at::Tensor, at::Tensor, at::Tensor> srm_forward(
    const at::Tensor& x, const std::optional<at::Tensor>& identity, const at::Tensor& weight,
    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& bn_weight,
    const std::optional<at::Tensor>& bn_bias, bool batch_stats, double bn_eps,
    int64_t correction, double eps) {
  check_map(x, x, "srm_forward: x");
  if (identity) check_map(*identity, x, "srm_forward: identity");
  const int64_t n = x.size(0), channels = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(hw > correction, "srm_forward: correction must be below H*W");
  TORCH_CHECK(!batch_stats || n > 1, "srm_forward: batch statistics need at least 2 samples");
  auto out = at::empty_like(x);
  auto mean = at::empty({n, channels}, x.options());
  auto std = at::empty({n, channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_cpu_forward", [&] {
    const auto gate = gate_of<scalar_t>(x, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps);
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* skip = identity ? identity->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* od = out.mutable_data_ptr<scalar_t>();
    scalar_t* mean_d = mean.mutable_data_ptr<scalar_t>();
    scalar_t* std_d = std.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, channels, per_task(n * hw), [&](int64_t begin, int64_t end) {
      std::vector<double> m(n), s(n), z(n);
      for (int64_t c = begin; c < end; ++c) {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t r = i * channels + c;
          const Moments moments = row_moments(xd + r * hw, hw, correction, eps);
          mean_d[r] = static_cast<scalar_t>(moments.mean);
          std_d[r] = static_cast<scalar_t>(moments.std);
          m[i] = double(mean_d[r]);  // the gate sees the stored statistics, as backward will
          s[i] = double(std_d[r]);
        }
        gate.logits(c, m.data(), s.data(), n, z.data());
        for (int64_t i = 0; i < n; ++i) {
          const int64_t at = (i * channels + c) * hw;
          const auto g = static_cast<scalar_t>(sigmoid(z[i] * gate.gamma(c) + gate.beta(c)));
          if (skip) {
            scale_add_relu_row(od + at, xd + at, g, skip + at, hw);
          } else {
            scale_row(od + at, xd + at, g, hw);
          }
        }
      }
    });
  });
  return {out, mean, std};
}

// Backward: the closed-form gradients of srm_forward (see ops/fused.py's srm_backward):
// (dx, d_identity, d_weight, d_bias, d_bn_weight, d_bn_bias), absent ones empty.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> srm_backward(
    const at::Tensor& grad_out, const at::Tensor& x, const std::optional<at::Tensor>& out,
    const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& bn_weight, const std::optional<at::Tensor>& bn_bias,
    const at::Tensor& mean, const at::Tensor& std, bool batch_stats, double bn_eps,
    int64_t correction, double eps) {
  check_map(x, x, "srm_backward: x");
  check_map(grad_out, x, "srm_backward: grad_out");
  if (out) check_map(*out, x, "srm_backward: out");
  const int64_t n = x.size(0), channels = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(mean.is_contiguous() && std.is_contiguous() && mean.numel() == n * channels &&
                  std.numel() == n * channels && mean.scalar_type() == x.scalar_type() &&
                  std.scalar_type() == x.scalar_type(),
              "srm_backward: mean and std must be contiguous (N, C) in x's dtype");
  auto empty = at::empty({0}, x.options());
  auto dx = at::empty_like(x);
  auto d_identity = out ? at::empty_like(x) : empty;
  auto d_weight = at::empty({channels, 2}, x.options());
  auto d_bias = bias ? at::empty({channels}, x.options()) : empty;
  auto d_bn_weight = batch_stats && bn_weight ? at::empty({channels}, x.options()) : empty;
  auto d_bn_bias = batch_stats && bn_bias ? at::empty({channels}, x.options()) : empty;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_cpu_backward", [&] {
    const auto gate = gate_of<scalar_t>(x, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps);
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* gd = grad_out.const_data_ptr<scalar_t>();
    const scalar_t* od = out ? out->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* masked = out ? d_identity.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dxd = dx.mutable_data_ptr<scalar_t>();
    const scalar_t* mean_d = mean.const_data_ptr<scalar_t>();
    const scalar_t* std_d = std.const_data_ptr<scalar_t>();
    scalar_t* dw = d_weight.mutable_data_ptr<scalar_t>();
    scalar_t* db = bias ? d_bias.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dgamma = d_bn_weight.numel() ? d_bn_weight.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dbeta = d_bn_bias.numel() ? d_bn_bias.mutable_data_ptr<scalar_t>() : nullptr;
    const double spread = double(hw - correction);
    at::parallel_for(0, channels, per_task(n * hw), [&](int64_t begin, int64_t end) {
      std::vector<double> m(n), s(n), z(n), g(n), dz(n);
      for (int64_t c = begin; c < end; ++c) {
        // sweep 1: dL/dg_n = sum(grad * x), grad masked by the ReLU in the residual form
        for (int64_t i = 0; i < n; ++i) {
          const int64_t r = i * channels + c, at = r * hw;
          m[i] = double(mean_d[r]);
          s[i] = double(std_d[r]);
          dz[i] = masked ? masked_row_dot(masked + at, gd + at, od + at, xd + at, hw)
                         : row_dot(gd + at, xd + at, hw);
        }
        // the gate's gradient for this channel: sigmoid, BN over the batch, CFC
        const double rstd = gate.logits(c, m.data(), s.data(), n, z.data());
        const double gamma = gate.gamma(c);
        double sum_dl = 0, sum_dl_z = 0;
        for (int64_t i = 0; i < n; ++i) {
          g[i] = sigmoid(z[i] * gamma + gate.beta(c));
          const double dl = dz[i] * g[i] * (1.0 - g[i]);
          sum_dl += dl;
          sum_dl_z += dl * z[i];
          dz[i] = dl;
        }
        if (batch_stats) {
          if (dgamma) dgamma[c] = static_cast<scalar_t>(sum_dl_z);
          if (dbeta) dbeta[c] = static_cast<scalar_t>(sum_dl);
          const double mean_dzh = gamma * sum_dl / double(n), mean_dzh_z = gamma * sum_dl_z / double(n);
          for (int64_t i = 0; i < n; ++i) dz[i] = rstd * (gamma * dz[i] - mean_dzh - z[i] * mean_dzh_z);
        }
        double dw0 = 0, dw1 = 0, dbias = 0;
        for (int64_t i = 0; i < n; ++i) {
          dw0 += dz[i] * m[i];
          dw1 += dz[i] * s[i];
          dbias += dz[i];
        }
        dw[2 * c] = static_cast<scalar_t>(dw0);
        dw[2 * c + 1] = static_cast<scalar_t>(dw1);
        if (db) db[c] = static_cast<scalar_t>(dbias);
        // sweep 2, over rows still in cache: dx = grad * g + a + b * (x - mean)
        const double w0 = double(gate.weight[2 * c]), w1 = double(gate.weight[2 * c + 1]);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t at = (i * channels + c) * hw;
          const auto a = static_cast<scalar_t>(dz[i] * w0 / double(hw));
          const auto b = static_cast<scalar_t>(dz[i] * w1 / (s[i] * spread));
          input_grad_row(dxd + at, masked ? masked + at : gd + at, xd + at,
                         static_cast<scalar_t>(g[i]), static_cast<scalar_t>(m[i]), a, b, hw);
        }
      }
    });
  });
  return {dx, d_identity, d_weight, d_bias, d_bn_weight, d_bn_bias};
}

// Inference SRM on a residual branch, written over x: per row, the statistics, the folded
// gate g = sigmoid(w0 * mean + w1 * std + b) and relu(x * g + identity), in one read of x.
void residual_inference_(at::Tensor& x, const at::Tensor& identity, const at::Tensor& weight,
                         const at::Tensor& bias, int64_t correction, double eps) {
  check_map(x, x, "residual_inference_: x");
  check_map(identity, x, "residual_inference_: identity");
  const int64_t channels = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(hw > correction, "residual_inference_: correction must be below H*W");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_cpu_residual_inference", [&] {
    const auto gate = gate_of<scalar_t>(x, weight, bias, std::nullopt, std::nullopt, false, 0.0);
    scalar_t* data = x.mutable_data_ptr<scalar_t>();
    const scalar_t* skip = identity.const_data_ptr<scalar_t>();
    at::parallel_for(0, x.size(0) * channels, per_task(hw), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const Moments m = row_moments(data + r * hw, hw, correction, eps);
        double z;
        gate.logits(r % channels, &m.mean, &m.std, 1, &z);
        scale_add_relu_row(data + r * hw, data + r * hw, static_cast<scalar_t>(sigmoid(z)),
                           skip + r * hw, hw);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY(srm_cpu, m) {
  m.def("srm_forward(Tensor x, Tensor? identity, Tensor weight, Tensor? bias, Tensor? bn_weight, "
        "Tensor? bn_bias, bool batch_stats, float bn_eps, int correction, float eps) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("srm_backward(Tensor grad_out, Tensor x, Tensor? out, Tensor weight, Tensor? bias, "
        "Tensor? bn_weight, Tensor? bn_bias, Tensor mean, Tensor std, bool batch_stats, "
        "float bn_eps, int correction, float eps) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("residual_inference_(Tensor(a!) x, Tensor identity, Tensor weight, Tensor bias, "
        "int correction, float eps) -> ()");
}

TORCH_LIBRARY_IMPL(srm_cpu, CPU, m) {
  m.impl("srm_forward", &srm_forward);
  m.impl("srm_backward", &srm_backward);
  m.impl("residual_inference_", &residual_inference_);
}
