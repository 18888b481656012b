// fused_matmul on the CUDA backend (CudaBackend::fused_matmul_impl: one RMSNorm + quantization
// pass shared by every output's int8 GEMV, norm_quant_cuda.h) against
//  - the unfused CUDA ops (rms_norm, matmul per output, swiglu / add): h bit for bit, the
//    outputs within 1e-5 of their magnitude (sum of |w h| plus |bias|);
//  - the same op on the reference CPU backend (no activation quantization): h within 1e-5
//    relative, the outputs within the error bound of quantizing the activations to int8 blocks
//    (|w| * amax / 254 per element, propagated through SwiGLU) plus 1e-5 of their magnitude.
// Shapes: Q/K/V-like three outputs with biases, gate/up with SwiGLU, one output added into a
// residual (with and without the norm), for q4_0, q8_0, q4_K, q6_K weights; mixes of formats
// that must fall back to the unfused path (q4_0 + q4_K, q8_0 + f32) and a prefill-sized m.
// The GPU cases skip, saying why, on a machine without a CUDA device.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "core/half.h"
#include "core/tensor.h"
#include "quant/quant.h"
#include "cuda_test_support.h"

namespace llmos {
namespace {

struct OutSpec {
  DType dtype;
  int64_t n;
  bool bias;
};

struct HostOut {
  Tensor w, bias;
  std::vector<float> deq;  // dequantized weight [n][k]
};

Tensor random_f32(std::vector<int64_t> shape, float scale, std::mt19937& rng) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  std::normal_distribution<float> normal(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng);
  return t;
}

HostOut make_output(const OutSpec& s, int64_t k, std::mt19937& rng) {
  HostOut o;
  const Tensor src = random_f32({s.n, k}, 0.05f, rng);
  o.w = Tensor::empty({s.n, k}, s.dtype);
  o.deq.resize(static_cast<size_t>(s.n * k));
  for (int64_t j = 0; j < s.n; ++j) {
    auto* row = static_cast<uint8_t*>(o.w.data()) + j * o.w.stride_bytes(0);
    if (s.dtype == DType::kF32) {
      std::memcpy(row, src.data_as<float>() + j * k, static_cast<size_t>(k) * 4);
    } else {
      quantize_row(s.dtype, src.data_as<float>() + j * k, row, k);
    }
    dequantize_row(s.dtype, row, o.deq.data() + j * k, k);
  }
  if (s.bias) o.bias = random_f32({s.n}, 0.5f, rng);
  return o;
}

// Activation block size the GPU quantizes with for this weight (0: not quantized).
int64_t act_block(DType dt) {
  switch (dt) {
    case DType::kQ4_0:
    case DType::kQ8_0: return 32;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return 256;
    default: return 0;
  }
}

// amax of the activation block (of `blk` values) each element of h [m, k] falls in.
std::vector<double> block_amax(const float* h, int64_t m, int64_t k, int64_t blk) {
  std::vector<double> out(static_cast<size_t>(m * k), 0.0);
  if (blk == 0) return out;
  for (int64_t b0 = 0; b0 < m * k; b0 += blk) {
    double amax = 0.0;
    for (int64_t t = b0; t < b0 + blk; ++t) amax = std::max(amax, std::fabs(static_cast<double>(h[t])));
    for (int64_t t = b0; t < b0 + blk; ++t) out[static_cast<size_t>(t)] = amax;
  }
  return out;
}

// Per output element: sum |w h| (+ |bias|), and the bound on the error of quantizing h to
// int8 blocks: sum |w| * amax(block of h) / 254 (half a step of d = amax / 127).
void bounds(const HostOut& o, const OutSpec& s, const float* h, const std::vector<double>& amax, int64_t k,
            int64_t i, int64_t j, double* mag, double* qerr) {
  const bool quantized = act_block(s.dtype) > 0;
  double m = s.bias ? std::fabs(o.bias.data_as<float>()[j]) : 0.0, q = 0.0;
  for (int64_t e = 0; e < k; ++e) {
    const double w = std::fabs(o.deq[static_cast<size_t>(j * k + e)]);
    m += w * std::fabs(h[i * k + e]);
    if (quantized) q += w * amax[static_cast<size_t>(i * k + e)] / 254.0;
  }
  *mag = m;
  *qerr = q * 1.01;
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

struct Case {
  std::string name;
  std::vector<OutSpec> outs;
  MatmulEpilogue epilogue;
  bool norm;
  int64_t k;
};

void run_case(Backend& gpu, Backend& ref, const Case& c, int64_t m, std::mt19937& rng) {
  const int64_t k = c.k;
  const std::string what = c.name + " m=" + std::to_string(m);
  const Tensor x = random_f32({m, k}, 1.0f, rng);
  const Tensor nw = random_f32({k}, 1.0f, rng);
  std::vector<HostOut> host;
  for (const OutSpec& s : c.outs) host.push_back(make_output(s, k, rng));
  const int64_t n0 = c.outs[0].n;
  const Tensor residual = random_f32({m, n0}, 1.0f, rng);
  const float eps = 1e-5f;

  // The op on a backend: h (or x), the outputs and the residual afterwards.
  struct Result {
    Tensor h;
    std::vector<Tensor> y;
    Tensor residual;
  };
  auto run_fused = [&](Backend& be) {
    std::vector<Tensor> w, b, y;
    for (size_t o = 0; o < host.size(); ++o) {
      w.push_back(be.upload(host[o].w));
      b.push_back(c.outs[o].bias ? be.upload(host[o].bias) : Tensor());
      y.push_back(be.alloc({m, c.outs[o].n}, DType::kF32));
    }
    std::vector<MatmulOutput> outs;
    for (size_t o = 0; o < host.size(); ++o) outs.push_back({&w[o], c.outs[o].bias ? &b[o] : nullptr, &y[o]});
    const Tensor xd = be.upload(x), nwd = be.upload(nw);
    Tensor h = be.alloc({m, k}, DType::kF32);
    Tensor res = be.upload(residual.clone());  // the CPU backend's upload is no copy
    FusedMatmul op;
    op.x = &xd;
    op.norm_weight = c.norm ? &nwd : nullptr;
    op.norm_eps = eps;
    op.h = c.norm ? &h : nullptr;
    op.outputs = outs;
    op.epilogue = c.epilogue;
    op.residual = c.epilogue == MatmulEpilogue::kAddTo ? &res : nullptr;
    be.fused_matmul(op);
    Result r;
    r.h = c.norm ? be.download(h).clone() : x.clone();
    for (Tensor& t : y) r.y.push_back(be.download(t).clone());
    r.residual = be.download(res).clone();
    return r;
  };
  // The unfused CUDA ops, keeping the pre-epilogue outputs too.
  auto run_unfused = [&](Backend& be, std::vector<Tensor>* pre) {
    const Tensor xd = be.upload(x), nwd = be.upload(nw);
    Tensor h = be.alloc({m, k}, DType::kF32);
    if (c.norm) be.rms_norm(xd, nwd, eps, h);
    const Tensor& input = c.norm ? h : xd;
    std::vector<Tensor> y;
    for (size_t o = 0; o < host.size(); ++o) {
      const Tensor w = be.upload(host[o].w);
      const Tensor b = c.outs[o].bias ? be.upload(host[o].bias) : Tensor();
      y.push_back(be.alloc({m, c.outs[o].n}, DType::kF32));
      be.matmul(w, c.outs[o].bias ? &b : nullptr, input, y.back());
      pre->push_back(be.download(y.back()).clone());
    }
    Tensor res = be.upload(residual.clone());
    if (c.epilogue == MatmulEpilogue::kSwiglu) be.swiglu(y[0], y[1], y[0]);
    if (c.epilogue == MatmulEpilogue::kAddTo) be.add(res, y[0]);
    Result r;
    r.h = c.norm ? be.download(h).clone() : x.clone();
    for (Tensor& t : y) r.y.push_back(be.download(t).clone());
    r.residual = be.download(res).clone();
    return r;
  };

  const Result fused = run_fused(gpu);
  std::vector<Tensor> pre_gpu, pre_ref;
  const Result unfused = run_unfused(gpu, &pre_gpu);
  const Result want = run_fused(ref);
  (void)run_unfused(ref, &pre_ref);

  const float* hf = fused.h.data_as<float>();
  std::vector<std::vector<double>> amax;  // per output: its activation blocks' amax
  for (const OutSpec& s : c.outs) amax.push_back(block_amax(hf, m, k, act_block(s.dtype)));
  const float* hu = unfused.h.data_as<float>();
  const float* hr = want.h.data_as<float>();
  for (int64_t e = 0; e < m * k; ++e) {
    ASSERT_EQ(f32_to_bits(hf[e]), f32_to_bits(hu[e])) << what << ": h[" << e << "] fused " << hf[e] << " vs unfused " << hu[e];
    ASSERT_LE(std::fabs(hf[e] - hr[e]), 1e-5 * std::fabs(hr[e]) + 1e-30) << what << ": h[" << e << "] vs reference";
  }
  // Which outputs the epilogue leaves defined: SwiGLU's up and AddTo's y are scratch.
  const size_t checked = c.epilogue == MatmulEpilogue::kNone ? host.size() : 0;
  for (size_t o = 0; o < checked; ++o) {
    const int64_t n = c.outs[o].n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double mag = 0, qerr = 0;
        bounds(host[o], c.outs[o], hf, amax[o], k, i, j, &mag, &qerr);
        const float f = fused.y[o].data_as<float>()[i * n + j];
        const float u = unfused.y[o].data_as<float>()[i * n + j];
        const float r = want.y[o].data_as<float>()[i * n + j];
        ASSERT_LE(std::fabs(static_cast<double>(f) - u), 1e-5 * mag) << what << " output " << o << " [" << i << "][" << j << "]";
        ASSERT_LE(std::fabs(static_cast<double>(f) - r), qerr + 1e-5 * mag)
            << what << " output " << o << " [" << i << "][" << j << "]: " << f << " vs reference " << r;
      }
    }
  }
  if (c.epilogue == MatmulEpilogue::kSwiglu) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n0; ++j) {
        double mg = 0, qg = 0, mu = 0, qu = 0;
        bounds(host[0], c.outs[0], hf, amax[0], k, i, j, &mg, &qg);
        bounds(host[1], c.outs[1], hf, amax[1], k, i, j, &mu, &qu);
        const double g = pre_ref[0].data_as<float>()[i * n0 + j], up = pre_ref[1].data_as<float>()[i * n0 + j];
        const double gu = pre_gpu[0].data_as<float>()[i * n0 + j], uu = pre_gpu[1].data_as<float>()[i * n0 + j];
        const float f = fused.y[0].data_as<float>()[i * n0 + j];
        const float u = unfused.y[0].data_as<float>()[i * n0 + j];
        const float r = want.y[0].data_as<float>()[i * n0 + j];
        // silu' is within [-0.1, 1.1]: the output moves by at most 1.1 |up| dg + |silu(g)| du + ...
        const double tol_u = 1e-5 * (1.1 * std::fabs(uu) * mg + std::fabs(silu(gu)) * mu) + 1e-6 * std::fabs(u) + 1e-30;
        ASSERT_LE(std::fabs(static_cast<double>(f) - u), tol_u) << what << " swiglu [" << i << "][" << j << "]";
        const double dg = qg + 1e-5 * mg, du = qu + 1e-5 * mu;
        const double tol_r = 1.1 * (std::fabs(up) + du) * dg + (std::fabs(silu(g)) + 1.1 * dg) * du + 1e-5 * std::fabs(r) + 1e-30;
        ASSERT_LE(std::fabs(static_cast<double>(f) - r), tol_r)
            << what << " swiglu [" << i << "][" << j << "]: " << f << " vs reference " << r;
      }
    }
  }
  if (c.epilogue == MatmulEpilogue::kAddTo) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n0; ++j) {
        double mag = 0, qerr = 0;
        bounds(host[0], c.outs[0], hf, amax[0], k, i, j, &mag, &qerr);
        const float f = fused.residual.data_as<float>()[i * n0 + j];
        const float u = unfused.residual.data_as<float>()[i * n0 + j];
        const float r = want.residual.data_as<float>()[i * n0 + j];
        const double slack = 1e-6 * std::fabs(r) + 1e-30;  // the add's own rounding
        ASSERT_LE(std::fabs(static_cast<double>(f) - u), 1e-5 * mag + slack) << what << " residual [" << i << "][" << j << "]";
        ASSERT_LE(std::fabs(static_cast<double>(f) - r), qerr + 1e-5 * mag + slack)
            << what << " residual [" << i << "][" << j << "]: " << f << " vs reference " << r;
      }
    }
  }
}

std::vector<Case> cases_for(DType dt) {
  const std::string name(dtype_name(dt));
  return {
      {name + " qkv", {{dt, 512, true}, {dt, 128, true}, {dt, 128, true}}, MatmulEpilogue::kNone, true, 512},
      {name + " gate/up swiglu", {{dt, 768, false}, {dt, 768, false}}, MatmulEpilogue::kSwiglu, true, 512},
      {name + " down + residual", {{dt, 512, false}}, MatmulEpilogue::kAddTo, false, 768},
      {name + " wo + residual, normed", {{dt, 256, true}}, MatmulEpilogue::kAddTo, true, 512},
  };
}

class CudaFusedMatmul : public ::testing::Test {
 protected:
  void run(const std::vector<Case>& cases, std::initializer_list<int64_t> ms) {
    std::unique_ptr<Backend> gpu = create_backend({Device::cuda(0)});
    std::unique_ptr<Backend> ref = create_backend({Device::cpu(), 2, true});
    std::mt19937 rng(17);
    for (const Case& c : cases) {
      for (int64_t m : ms) {
        run_case(*gpu, *ref, c, m, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
};

TEST_F(CudaFusedMatmul, Q4_0MatchesTheUnfusedOpsAndTheReference) {
  REQUIRE_CUDA_DEVICE();
  run(cases_for(DType::kQ4_0), {1, 3, 8});
}

TEST_F(CudaFusedMatmul, Q8_0MatchesTheUnfusedOpsAndTheReference) {
  REQUIRE_CUDA_DEVICE();
  run(cases_for(DType::kQ8_0), {1, 3, 8});
}

TEST_F(CudaFusedMatmul, Q4_KMatchesTheUnfusedOpsAndTheReference) {
  REQUIRE_CUDA_DEVICE();
  run(cases_for(DType::kQ4_K), {1, 3, 8});
}

TEST_F(CudaFusedMatmul, Q6_KMatchesTheUnfusedOpsAndTheReference) {
  REQUIRE_CUDA_DEVICE();
  run(cases_for(DType::kQ6_K), {1, 3, 8});
}

TEST_F(CudaFusedMatmul, MixedFormatsAndPrefillRowsFallBackToTheUnfusedOps) {
  REQUIRE_CUDA_DEVICE();
  const std::vector<Case> mixed = {
      {"q4_0 + q4_K", {{DType::kQ4_0, 256, true}, {DType::kQ4_K, 256, false}}, MatmulEpilogue::kNone, true, 512},
      {"q8_0 + f32 swiglu", {{DType::kQ8_0, 256, false}, {DType::kF32, 256, false}}, MatmulEpilogue::kSwiglu, true, 512},
  };
  run(mixed, {1, 8});
  if (HasFatalFailure()) return;
  run(cases_for(DType::kQ4_K), {12});  // more rows than the GEMVs take: the cuBLAS path
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaFusedMatmul, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
