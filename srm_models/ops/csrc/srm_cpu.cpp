// SRM on the CPU as compiled loops over contiguous (N, C, H, W) maps, by whole channels.
//
// SRM's gate couples the N samples of a channel (BatchNorm over the batch) and nothing else, so
// each thread takes whole channels: it reads the channels' N rows from memory once, computes
// their statistics, the gate (or, backward, the gate's gradient) per channel, and makes its
// second sweep over the same rows while they are still in the L2 cache (forward one channel at
// a time; backward a block of ~64K elements of channels at a time, sample by sample). Built
// from torch ops the same work reads every map two or three times and pays for several small
// ops per chunk. The gate math mirrors ops/gate.py, in double. The maps returned are allocated on huge
// pages, and large float32 ones written with streaming stores (see HugePageAllocator and
// write_rows): on this kind of machine page faults and cache traffic set the time of the large
// early-stage maps, and the double-precision sums that of the short rows of the late stages.
#include <ATen/Dispatch.h>
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#ifdef __AVX__
#include <immintrin.h>
#endif

namespace {

// The maps these kernels return (out, dx, d_identity) are new, and as large as the input: 100 MB
// in ResNet-50's first stage at batch 32. On a VM, first touching fresh memory costs a page
// fault per 4 KiB page, more than writing the values (a copy into fresh memory took 4-6x as
// long as one into an existing buffer here); glibc hands out fresh memory for every block over
// its mmap threshold (32 MiB at most). Large maps therefore live on transparent huge pages where
// Linux offers them (madvise mode or always), and a freed map's pages are kept for the next map
// of the same length instead of being unmapped: a training step asks for the same few lengths
// every time, so after the first step no map is faulted in again (faulting and zeroing fresh
// huge pages each time made a 2-thread ResNet-50 train step 13% slower than keeping them).
// At most kKeepBytes stay kept; small maps, and other systems, use torch's allocator.
class HugePageAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kMinBytes = size_t{1} << 20;  // below: rounding up to 2 MiB wastes much
  static constexpr size_t kKeepBytes = size_t{1} << 30;

  c10::DataPtr allocate(size_t bytes) override {
#ifdef __linux__
    if (bytes >= kMinBytes) {
      const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
      void* data = take_kept(length);
      if (data == nullptr) data = map(length);
      if (data != nullptr) {
        return {data, new Mapping{data, length}, &release, c10::Device(c10::DeviceType::CPU)};
      }
    }
#endif
    return c10::GetCPUAllocator()->allocate(bytes);
  }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Mapping {
    void* data;
    size_t length;
  };

  // Freed mappings by length, and their total size (guarded by kept_mutex).
  static inline std::mutex kept_mutex;
  static inline std::unordered_multimap<size_t, void*> kept;
  static inline size_t kept_bytes = 0;

  static void* take_kept(size_t length) {
    std::lock_guard<std::mutex> lock(kept_mutex);
    auto found = kept.find(length);
    if (found == kept.end()) return nullptr;
    void* data = found->second;
    kept.erase(found);
    kept_bytes -= length;
    return data;
  }

  static void* map(size_t length) {
#ifdef __linux__
    // Map one huge page more than needed and unmap the ends, so the data starts on a 2 MiB
    // boundary (the kernel backs only aligned 2 MiB ranges with huge pages).
    void* raw = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t tail = start + length + kHugePage - (aligned + length);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + length), tail);
    void* data = reinterpret_cast<void*>(aligned);
    madvise(data, length, MADV_HUGEPAGE);  // a hint: ignored where THP is off
    return data;
#else
    (void)length;
    return nullptr;
#endif
  }

  static void release(void* context) {
    auto* mapping = static_cast<Mapping*>(context);
    {
      std::lock_guard<std::mutex> lock(kept_mutex);
      if (kept_bytes + mapping->length <= kKeepBytes) {
        kept.emplace(mapping->length, mapping->data);
        kept_bytes += mapping->length;
        delete mapping;
        return;
      }
    }
#ifdef __linux__
    munmap(mapping->data, mapping->length);
#endif
    delete mapping;
  }
};

HugePageAllocator huge_page_allocator;

// An uninitialised contiguous map shaped and typed like x, from huge_page_allocator.
at::Tensor empty_map(const at::Tensor& x) {
  return at::detail::empty_generic(x.sizes(), &huge_page_allocator,
                                   c10::DispatchKeySet(c10::DispatchKey::CPU), x.scalar_type(),
                                   c10::MemoryFormat::Contiguous);
}

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

// Sum over one row of terms(i) (eight products i..i+7, in double) and one(i) for the last
// values, in four independent chains, each at a constant index: an accumulator picked by a
// computed index (acc[(i / 8) & 1]) was kept on the stack, and every add waited on a store and
// a load (the residual backward on ResNet-50's 7x7 and 14x14 stages took 2-5% longer).
template <typename Terms, typename One>
inline double row_sum(int64_t hw, const Terms& terms, const One& one) {
  Doubles acc[4] = {};
  int64_t i = 0;
  for (; i + 4 * kWidth <= hw; i += 4 * kWidth) {
    for (int u = 0; u < 4; ++u) acc[u] += terms(i + u * kWidth);
  }
  for (; i + kWidth <= hw; i += kWidth) acc[0] += terms(i);
  const Doubles t = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  double total = 0;
  for (int64_t j = 0; j < kWidth; ++j) total += t[j];
  for (; i < hw; ++i) total += one(i);
  return total;
}

// Sum of a[i] * b[i] over one row, in double.
template <typename scalar_t>
inline double row_dot(const scalar_t* a, const scalar_t* b, int64_t hw) {
  return row_sum(hw, [&](int64_t i) { return load8(a + i) * load8(b + i); },
                 [&](int64_t i) { return static_cast<double>(a[i]) * static_cast<double>(b[i]); });
}

// Writes one row of each of K output maps, eight values at a time: lanes(i) gives the K maps'
// values i..i+7 and one(i) their value i alone. One loop for all K outputs: their inputs are
// loaded and combined once. With ``stream`` (float32 maps too large to stay in the cache) the
// stores bypass the cache: a normal store first reads the line it overwrites, so streaming
// saves a third of the traffic of a sweep, and it leaves the inputs the sweep still reads in
// L2. Streaming stores need 32-byte alignment: rows are peeled to the first output's
// boundary, so they stream only where all K rows share its alignment (maps from empty_map at
// the same offset do). The caller ends its task with finish_streaming().
template <size_t K, typename scalar_t, typename Lanes8, typename One>
inline void write_rows(const std::array<scalar_t*, K>& outs, int64_t hw, bool stream,
                       const Lanes8& lanes, const One& one) {
  const auto store_one = [&](int64_t i) {
    const auto v = one(i);
    for (size_t k = 0; k < K; ++k) outs[k][i] = v[k];
  };
  int64_t i = 0;
#ifdef __AVX__
  if constexpr (std::is_same_v<scalar_t, float>) {
    const auto offset = [&](size_t k) { return reinterpret_cast<uintptr_t>(outs[k]) % 32; };
    for (size_t k = 1; k < K; ++k) stream = stream && offset(k) == offset(0);
    if (stream) {
      for (; i < hw && reinterpret_cast<uintptr_t>(outs[0] + i) % 32 != 0; ++i) store_one(i);
      for (; i + kWidth <= hw; i += kWidth) {
        const auto v = lanes(i);
        for (size_t k = 0; k < K; ++k) _mm256_stream_ps(outs[k] + i, (__m256)v[k]);
      }
    }
  }
#endif
  for (; i + kWidth <= hw; i += kWidth) {
    const auto v = lanes(i);
    for (size_t k = 0; k < K; ++k) std::memcpy(outs[k] + i, &v[k], sizeof(v[k]));
  }
  for (; i < hw; ++i) store_one(i);
}

// write_rows for one output map.
template <typename scalar_t, typename Lanes8, typename One>
inline void write_row(scalar_t* out, int64_t hw, bool stream, const Lanes8& lanes, const One& one) {
  write_rows<1>(std::array<scalar_t*, 1>{out}, hw, stream,
                [&](int64_t i) { return std::array{lanes(i)}; },
                [&](int64_t i) { return std::array{one(i)}; });
}

// Orders a task's streaming stores before whatever reads the map next.
inline void finish_streaming(bool stream) {
#ifdef __AVX__
  if (stream) _mm_sfence();
#else
  (void)stream;
#endif
}

// Float32 maps of this size or more are written with streaming stores: far larger than the
// share of the last-level cache one core of a shared machine can count on.
constexpr int64_t kStreamBytes = int64_t{16} << 20;

bool streams(const at::Tensor& x) {
  return x.scalar_type() == at::kFloat && x.numel() * 4 >= kStreamBytes;
}

template <typename scalar_t>
inline void scale_row(scalar_t* out, const scalar_t* x, scalar_t g, int64_t hw, bool stream) {
  write_row(out, hw, stream, [&](int64_t i) { return load_same(x + i) * g; },
            [&](int64_t i) { return x[i] * g; });
}

// relu(x * g + skip); NaN stays NaN, as torch.relu leaves it.
template <typename scalar_t>
inline void scale_add_relu_row(scalar_t* out, const scalar_t* x, scalar_t g, const scalar_t* skip,
                               int64_t hw, bool stream) {
  using Same = typename Lanes<scalar_t>::type;
  write_row(
      out, hw, stream,
      [&](int64_t i) {
        const Same v = load_same(x + i) * g + load_same(skip + i);
        return v < scalar_t(0) ? Same{} : v;
      },
      [&](int64_t i) {
        const scalar_t v = x[i] * g + skip[i];
        return v < scalar_t(0) ? scalar_t(0) : v;
      });
}

// The ReLU's backward: grad where the output is positive, else 0 (as threshold_backward).
template <typename scalar_t>
inline typename Lanes<scalar_t>::type masked_lanes(const scalar_t* grad, const scalar_t* out) {
  using Same = typename Lanes<scalar_t>::type;
  return load_same(out) <= scalar_t(0) ? Same{} : load_same(grad);
}

// Sum of masked(grad) * x over one row, in double, without storing the mask.
template <typename scalar_t>
inline double masked_row_dot(const scalar_t* grad, const scalar_t* out, const scalar_t* x,
                             int64_t hw) {
  return row_sum(
      hw,
      [&](int64_t i) {
        return __builtin_convertvector(masked_lanes(grad + i, out + i), Doubles) * load8(x + i);
      },
      [&](int64_t i) {
        return out[i] <= scalar_t(0) ? 0.0 : static_cast<double>(grad[i]) * static_cast<double>(x[i]);
      });
}

// dx = grad * g + a + b * (x - mean).
template <typename scalar_t>
inline void input_grad_row(scalar_t* dx, const scalar_t* grad, const scalar_t* x, scalar_t g,
                           scalar_t mean, scalar_t a, scalar_t b, int64_t hw, bool stream) {
  write_row(dx, hw, stream,
            [&](int64_t i) { return load_same(grad + i) * g + a + b * (load_same(x + i) - mean); },
            [&](int64_t i) { return grad[i] * g + a + b * (x[i] - mean); });
}

// The residual form's two input gradients: d_identity = masked(grad) and
// dx = masked(grad) * g + a + b * (x - mean), in one loop over grad, out and x (two loops, one
// per output, made the backward 3-11% slower on ResNet-50's stages 2-4).
template <typename scalar_t>
inline void residual_grads_row(scalar_t* d_identity, scalar_t* dx, const scalar_t* grad,
                               const scalar_t* out, const scalar_t* x, scalar_t g, scalar_t mean,
                               scalar_t a, scalar_t b, int64_t hw, bool stream) {
  write_rows<2>(
      std::array<scalar_t*, 2>{d_identity, dx}, hw, stream,
      [&](int64_t i) {
        const auto masked = masked_lanes(grad + i, out + i);
        return std::array{masked, masked * g + a + b * (load_same(x + i) - mean)};
      },
      [&](int64_t i) {
        const scalar_t masked = out[i] <= scalar_t(0) ? scalar_t(0) : grad[i];
        return std::array{masked, masked * g + a + b * (x[i] - mean)};
      });
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
  auto out = empty_map(x);
  auto mean = at::empty({n, channels}, x.options());
  auto std = at::empty({n, channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_cpu_forward", [&] {
    const auto gate = gate_of<scalar_t>(x, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps);
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* skip = identity ? identity->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* od = out.mutable_data_ptr<scalar_t>();
    scalar_t* mean_d = mean.mutable_data_ptr<scalar_t>();
    scalar_t* std_d = std.mutable_data_ptr<scalar_t>();
    const bool stream = streams(x);
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
            scale_add_relu_row(od + at, xd + at, g, skip + at, hw, stream);
          } else {
            scale_row(od + at, xd + at, g, hw, stream);
          }
        }
      }
      finish_streaming(stream);
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
  auto dx = empty_map(x);
  auto d_identity = out ? empty_map(x) : empty;
  auto d_weight = at::empty({channels, 2}, x.options());
  auto d_bias = bias ? at::empty({channels}, x.options()) : empty;
  auto d_bn_weight = batch_stats && bn_weight ? at::empty({channels}, x.options()) : empty;
  auto d_bn_bias = batch_stats && bn_bias ? at::empty({channels}, x.options()) : empty;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srm_cpu_backward", [&] {
    const auto gate = gate_of<scalar_t>(x, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps);
    const scalar_t* xd = x.const_data_ptr<scalar_t>();
    const scalar_t* gd = grad_out.const_data_ptr<scalar_t>();
    const scalar_t* od = out ? out->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* d_skip = out ? d_identity.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dxd = dx.mutable_data_ptr<scalar_t>();
    const scalar_t* mean_d = mean.const_data_ptr<scalar_t>();
    const scalar_t* std_d = std.const_data_ptr<scalar_t>();
    scalar_t* dw = d_weight.mutable_data_ptr<scalar_t>();
    scalar_t* db = bias ? d_bias.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dgamma = d_bn_weight.numel() ? d_bn_weight.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dbeta = d_bn_bias.numel() ? d_bn_bias.mutable_data_ptr<scalar_t>() : nullptr;
    const double spread = double(hw - correction);
    const bool stream = streams(x);
    const int64_t block = per_task(n * hw);
    at::parallel_for(0, channels, block, [&](int64_t begin, int64_t end) {
      // Per (channel of the block, sample): statistics, then dL/dg, then the gate's gradient.
      const size_t size = size_t(std::min(block, end - begin) * n);
      std::vector<double> m(size), s(size), z(n), g(size), dz(size);
      for (int64_t c0 = begin; c0 < end; c0 += block) {
        const int64_t c1 = std::min(end, c0 + block);
        // sweep 1, sample by sample (a sample's rows of the block are adjacent in memory, so
        // the reads stream; channel by channel they hop between n far-apart rows, which the
        // prefetcher cannot follow when rows are short): dL/dg = sum(grad * x), grad masked
        // by the ReLU in the residual form
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t r = i * channels + c, at = r * hw, k = (c - c0) * n + i;
            m[k] = double(mean_d[r]);
            s[k] = double(std_d[r]);
            dz[k] = od ? masked_row_dot(gd + at, od + at, xd + at, hw) : row_dot(gd + at, xd + at, hw);
          }
        }
        for (int64_t c = c0; c < c1; ++c) {
          double* const mc = m.data() + (c - c0) * n;
          double* const sc = s.data() + (c - c0) * n;
          double* const gc = g.data() + (c - c0) * n;
          double* const dzc = dz.data() + (c - c0) * n;
          // the gate's gradient for this channel: sigmoid, BN over the batch, CFC
          const double rstd = gate.logits(c, mc, sc, n, z.data());
          const double gamma = gate.gamma(c);
          double sum_dl = 0, sum_dl_z = 0;
          for (int64_t i = 0; i < n; ++i) {
            gc[i] = sigmoid(z[i] * gamma + gate.beta(c));
            const double dl = dzc[i] * gc[i] * (1.0 - gc[i]);
            sum_dl += dl;
            sum_dl_z += dl * z[i];
            dzc[i] = dl;
          }
          if (batch_stats) {
            if (dgamma) dgamma[c] = static_cast<scalar_t>(sum_dl_z);
            if (dbeta) dbeta[c] = static_cast<scalar_t>(sum_dl);
            const double mean_dzh = gamma * sum_dl / double(n), mean_dzh_z = gamma * sum_dl_z / double(n);
            for (int64_t i = 0; i < n; ++i) {
              dzc[i] = rstd * (gamma * dzc[i] - mean_dzh - z[i] * mean_dzh_z);
            }
          }
          double dw0 = 0, dw1 = 0, dbias = 0;
          for (int64_t i = 0; i < n; ++i) {
            dw0 += dzc[i] * mc[i];
            dw1 += dzc[i] * sc[i];
            dbias += dzc[i];
          }
          dw[2 * c] = static_cast<scalar_t>(dw0);
          dw[2 * c + 1] = static_cast<scalar_t>(dw1);
          if (db) db[c] = static_cast<scalar_t>(dbias);
        }
        // sweep 2, sample by sample over the block's rows (still in cache): dx = grad * g + a +
        // b * (x - mean), grad masked by the ReLU in the residual form (and then also the
        // identity's gradient)
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t at = (i * channels + c) * hw, k = (c - c0) * n + i;
            const double w0 = double(gate.weight[2 * c]), w1 = double(gate.weight[2 * c + 1]);
            const auto a = static_cast<scalar_t>(dz[k] * w0 / double(hw));
            const auto b = static_cast<scalar_t>(dz[k] * w1 / (s[k] * spread));
            const auto gi = static_cast<scalar_t>(g[k]);
            const auto mi = static_cast<scalar_t>(m[k]);
            if (od) {
              residual_grads_row(d_skip + at, dxd + at, gd + at, od + at, xd + at, gi, mi, a, b, hw,
                                 stream);
            } else {
              input_grad_row(dxd + at, gd + at, xd + at, gi, mi, a, b, hw, stream);
            }
          }
        }
      }
      finish_streaming(stream);
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
                           skip + r * hw, hw, /*stream=*/false);
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
