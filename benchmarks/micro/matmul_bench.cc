// Matmul throughput per weight dtype on the CPU backend (reference kernels for now). Reports
// weight bytes read per second (the decode ceiling is memory bandwidth) and FLOP/s.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "backend/backend.h"
#include "quant/quant.h"

namespace llmos {
namespace {

Tensor random_weight(int64_t n, int64_t k, DType dtype) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(k));
  Tensor w = Tensor::empty({n, k}, dtype);
  for (int64_t r = 0; r < n; ++r) {
    for (auto& v : row) v = normal(rng);
    quantize_row(dtype, row.data(), w.row(r), k);
  }
  return w;
}

void BM_Matmul(benchmark::State& state, DType dtype) {
  const int64_t m = state.range(0), n = 1024, k = 1024;
  auto backend = create_backend({Device::cpu(), 0});
  Tensor w = random_weight(n, k, dtype);
  Tensor x = Tensor::empty({m, k}, DType::kF32);
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < m * k; ++i) x.data_as<float>()[i] = normal(rng);
  Tensor y = Tensor::empty({m, n}, DType::kF32);
  for (auto _ : state) {
    backend->matmul(w, nullptr, x, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(w.nbytes()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(BM_Matmul, f32, DType::kF32)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Matmul, f16, DType::kF16)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Matmul, q8_0, DType::kQ8_0)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Matmul, q4_0, DType::kQ4_0)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Matmul, q4_K, DType::kQ4_K)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Matmul, q6_K, DType::kQ6_K)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace llmos

BENCHMARK_MAIN();
