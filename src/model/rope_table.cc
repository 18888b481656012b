#include "model/rope_table.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace llmos {

RopeSpec make_rope_spec(const ModelConfig& config, const Tensor& freq_factors) {
  RopeSpec spec;
  spec.rot_dim = static_cast<int>(config.rope_dim);
  spec.neox = config.rope_neox;
  const int half = spec.rot_dim / 2;
  spec.inv_freq.resize(static_cast<size_t>(half));
  if (freq_factors.defined()) {
    LLMOS_CHECK_ARG(freq_factors.dtype() == DType::kF32 && freq_factors.numel() == half,
                    "rope_freqs.weight must be f32 [", half, "], got ", freq_factors.describe());
  }
  for (int i = 0; i < half; ++i) {
    double f = std::pow(static_cast<double>(config.rope_freq_base), -2.0 * i / spec.rot_dim);
    // A rope_freqs tensor already encodes llama3-style scaling: never apply both.
    const RopeScaling scaling = freq_factors.defined() && config.rope_scaling == RopeScaling::kLlama3
                                    ? RopeScaling::kNone
                                    : config.rope_scaling;
    switch (scaling) {
      case RopeScaling::kNone: break;
      case RopeScaling::kLinear: f /= config.rope_scale_factor; break;
      case RopeScaling::kLlama3: {
        const double wavelength = 2.0 * std::numbers::pi / f;
        const double low_wavelen = config.rope_original_context / config.rope_low_freq_factor;
        const double high_wavelen = config.rope_original_context / config.rope_high_freq_factor;
        if (wavelength > low_wavelen) {
          f /= config.rope_scale_factor;
        } else if (wavelength >= high_wavelen) {
          const double smooth = (config.rope_original_context / wavelength - config.rope_low_freq_factor) /
                                (config.rope_high_freq_factor - config.rope_low_freq_factor);
          f = (1.0 - smooth) * f / config.rope_scale_factor + smooth * f;
        }
        break;
      }
    }
    if (freq_factors.defined()) {
      const float factor = freq_factors.data_as<const float>()[i];
      LLMOS_CHECK_ARG(std::isfinite(factor) && factor > 0.0f, "rope_freqs.weight[", i, "] is ", factor,
                      "; frequency factors must be finite and positive");
      f /= factor;
    }
    spec.inv_freq[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return spec;
}

}  // namespace llmos
