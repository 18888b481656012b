// Per-dimension rotary frequencies for a model, with its frequency scaling folded in.
#pragma once

#include "backend/backend.h"
#include "core/tensor.h"
#include "model/model_config.h"

namespace llmos {

// inv_freq[i] = freq_base^(-2i / rope_dim), then:
//  - linear scaling divides every frequency by the factor;
//  - llama3 scaling divides low frequencies (long wavelengths) by the factor, keeps high ones,
//    and blends smoothly in between (rope.scaling.low/high_freq_factor);
//  - a rope_freqs.weight tensor (per-pair factors, as Llama 3.1 files carry) divides each
//    frequency by its factor (pass an undefined tensor when absent); it replaces the llama3
//    formula, which it already encodes.
RopeSpec make_rope_spec(const ModelConfig& config, const Tensor& freq_factors);

}  // namespace llmos
