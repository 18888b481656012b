// The per-tensor type rules of llama.cpp's quantizer (src/llama-quant.cpp: tensor_allows_
// quantization, llama_tensor_get_type_impl, tensor_type_fallback), restricted to the file types
// llmos writes. Learned from that code, not copied; docs/formats.md states each rule.
#include "quant/quant_mix.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <numeric>

#include "core/error.h"

namespace llmos {
namespace {

// LLAMA_FTYPE values (llama.h).
constexpr uint32_t kFtypeF32 = 0;
constexpr uint32_t kFtypeF16 = 1;
constexpr uint32_t kFtypeQ4_0 = 2;
constexpr uint32_t kFtypeQ4_1 = 3;
constexpr uint32_t kFtypeQ8_0 = 7;
constexpr uint32_t kFtypeQ5_0 = 8;
constexpr uint32_t kFtypeQ5_1 = 9;
constexpr uint32_t kFtypeQ4_K_S = 14;
constexpr uint32_t kFtypeQ4_K_M = 15;
constexpr uint32_t kFtypeQ5_K_S = 16;
constexpr uint32_t kFtypeQ5_K_M = 17;
constexpr uint32_t kFtypeQ6_K = 18;
constexpr uint32_t kFtypeBF16 = 32;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != s.npos; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The layer number of "blk.N.*", or -1.
int64_t layer_of(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  const char* begin = name.data() + kPrefix.size();
  const char* end = name.data() + name.size();
  int64_t layer = -1;
  const auto [ptr, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || ptr == begin || ptr == end || *ptr != '.') return -1;
  return layer;
}

enum class Category {
  kTokenEmbd, kAttnQ, kAttnV, kAttnK, kAttnOutput, kFfnUp, kFfnGate, kFfnDown, kOutput, kOther
};

// Broad tensor roles by name, checked in the same order as llama.cpp so overlapping names land
// in the same category. Fused qkv and MLA kv_b projections count as attn_v (as there).
Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
    return Category::kTokenEmbd;
  }
  if (contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight") ||
      contains(name, "attn_v.weight")) {
    return Category::kAttnV;
  }
  if (contains(name, "attn_k.weight")) return Category::kAttnK;
  if (contains(name, "attn_q.weight")) return Category::kAttnQ;
  if (contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(name, "ffn_up")) return Category::kFfnUp;
  if (contains(name, "ffn_gate")) return Category::kFfnGate;
  if (contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// Only weight matrices are quantized: at least 2 dimensions larger than 1 (ggml counts dims up
// to the last one above 1), a name ending in "weight", and none of the small or precision-
// critical tensors llama.cpp leaves alone (norms, MoE routers, position/type embeddings, ...).
bool allows_quantization(const QuantTensorIn& t) {
  bool matrix = false;
  for (size_t d = 0; d + 1 < t.shape.size(); ++d) matrix |= t.shape[d] > 1;
  if (!matrix || !ends_with(t.name, "weight")) return false;
  static constexpr std::string_view kKeep[] = {
      "_norm.weight",     "ffn_gate_inp.weight", "position_embd.weight", "token_types.weight",
      "ssm_conv1d",       "attn_rel_b.weight",   "altup",                "laurel",
      "per_layer_model_proj", "shortconv.conv.weight", "time_mix_"};
  for (std::string_view k : kKeep) {
    if (contains(t.name, k)) return false;
  }
  return true;
}

// When a row is not a whole number of the chosen type's blocks: the 256-element K types fall
// back to a 32-element type of similar size, and to f16 when not even that fits.
DType fallback(const QuantTensorIn& t, DType type, QuantTensorPlan& plan) {
  const int64_t cols = t.shape.back();
  if (cols % dtype_block_size(type) == 0) return type;
  DType to;
  switch (type) {
    case DType::kQ2_K:
    case DType::kQ3_K: to = DType::kQ4_0; break;
    case DType::kQ4_K: to = DType::kQ5_0; break;
    case DType::kQ5_K: to = DType::kQ5_1; break;
    case DType::kQ6_K: to = DType::kQ8_0; break;
    default:
      throw_error(StatusCode::kUnsupported, "tensor '", t.name, "': row length ", cols,
                  " is not a multiple of the ", dtype_name(type), " block size ",
                  dtype_block_size(type), " and ", dtype_name(type),
                  " has no fallback type (choose a K or float type)");
  }
  if (cols % dtype_block_size(to) != 0) to = DType::kF16;
  plan.fell_back = true;
  plan.note = (plan.note.empty() ? "" : plan.note + "; ") + "row length " + std::to_string(cols) + " is not a multiple of " +
              std::to_string(dtype_block_size(type)) + " (" + std::string(dtype_name(type)) +
              "): falling back to " + std::string(dtype_name(to));
  return to;
}

// Counters llama.cpp keeps while it walks the tensors.
struct MixState {
  const QuantModelInfo& model;
  uint32_t ftype;
  bool tied_embeddings = true;
  int64_t n_attn_v = 0;
  int64_t i_attn_v = 0;
  int64_t n_ffn_down = 0;
  int64_t i_ffn_down = 0;
};

// MoE files interleave experts, so the layer comes from the name there; otherwise it is the
// running count (the same thing in llama.cpp's layer-sorted walk).
int64_t layer_for(const MixState& s, int64_t counter, int64_t n_layers, const std::string& name) {
  if (s.model.num_experts <= 1) return counter;
  const int64_t layer = layer_of(name);
  if (layer < 0 || layer >= n_layers) {
    throw_error(StatusCode::kFormat, "tensor '", name, "': cannot tell its layer (need blk.N. with N below ",
                n_layers, ")");
  }
  return layer;
}

DType mixture_type(MixState& s, const QuantTensorIn& t, Category cat, DType type) {
  const uint32_t ft = s.ftype;
  const bool falcon = s.model.architecture == "falcon";
  const bool k_m = ft == kFtypeQ4_K_M || ft == kFtypeQ5_K_M;
  const int64_t n_expert = s.model.num_experts;
  if (cat == Category::kOutput || (s.tied_embeddings && cat == Category::kTokenEmbd)) {
    // The output projection (or the embeddings that double as it) is the most sensitive matrix.
    if (falcon || t.shape.back() % dtype_block_size(type) != 0) return DType::kQ8_0;
    return type == DType::kQ8_0 ? type : DType::kQ6_K;
  }
  switch (cat) {
    case Category::kAttnV: {
      if (k_m && quant_use_more_bits(s.i_attn_v, s.n_attn_v)) {
        type = DType::kQ6_K;
      } else if (ft == kFtypeQ4_K_S && s.i_attn_v < 4) {
        type = DType::kQ5_K;
      }
      // Llama 2 70B: 8 query heads share each V head, so V is small and worth more bits.
      const bool llama_70b = s.model.architecture == "llama" && s.model.num_layers == 80 &&
                             s.model.num_kv_heads != 0 && s.model.num_heads != s.model.num_kv_heads;
      if (llama_70b && (type == DType::kQ3_K || type == DType::kQ4_K)) type = DType::kQ5_K;
      if (n_expert == 8) type = DType::kQ8_0;
      ++s.i_attn_v;
      return type;
    }
    case Category::kAttnK:
      return n_expert == 8 ? DType::kQ8_0 : type;
    case Category::kFfnDown: {
      const int64_t n = s.n_ffn_down;
      const int64_t i = layer_for(s, s.i_ffn_down, n, t.name);
      if (ft == kFtypeQ4_K_M) {
        if (falcon) {
          type = i < n / 16 ? DType::kQ6_K : quant_use_more_bits(i, n) ? DType::kQ5_K : DType::kQ4_K;
        } else if (quant_use_more_bits(i, n)) {
          type = DType::kQ6_K;
        }
      } else if (ft == kFtypeQ5_K_M && quant_use_more_bits(i, n)) {
        type = DType::kQ6_K;
      } else if (ft == kFtypeQ4_K_S && !falcon && i < n / 8) {
        type = DType::kQ5_K;
      }
      ++s.i_ffn_down;
      return type;
    }
    case Category::kAttnOutput:
      if (!falcon && n_expert == 8 && (ft == kFtypeQ4_K_S || ft == kFtypeQ4_K_M)) {
        return DType::kQ5_K;
      }
      return type;
    default:
      return type;
  }
}

std::string note_for(DType base, DType chosen, Category cat) {
  if (chosen == base) return "";
  const char* why = cat == Category::kOutput || cat == Category::kTokenEmbd ? "output projection"
                    : cat == Category::kAttnV                              ? "attn_v mix rule"
                    : cat == Category::kFfnDown                            ? "ffn_down mix rule"
                                                                           : "mix rule";
  return std::string(why) + ": " + std::string(dtype_name(chosen));
}

}  // namespace

bool quant_use_more_bits(int64_t layer, int64_t num_layers) {
  return layer < num_layers / 8 || layer >= 7 * num_layers / 8 || (layer - num_layers / 8) % 3 == 2;
}

const std::vector<QuantFileType>& quant_file_types() {
  static const std::vector<QuantFileType> kTypes = {
      {"F32", kFtypeF32, DType::kF32, "32-bit float (no quantization)"},
      {"F16", kFtypeF16, DType::kF16, "16-bit float"},
      {"BF16", kFtypeBF16, DType::kBF16, "bfloat16"},
      {"Q8_0", kFtypeQ8_0, DType::kQ8_0, "8.5 bits/weight"},
      {"Q6_K", kFtypeQ6_K, DType::kQ6_K, "6.56 bits/weight"},
      {"Q5_K_M", kFtypeQ5_K_M, DType::kQ5_K, "q5_K; q6_K for output and some attn_v/ffn_down"},
      {"Q5_K_S", kFtypeQ5_K_S, DType::kQ5_K, "q5_K; q6_K for output"},
      {"Q5_1", kFtypeQ5_1, DType::kQ5_1, "6 bits/weight"},
      {"Q5_0", kFtypeQ5_0, DType::kQ5_0, "5.5 bits/weight"},
      {"Q4_K_M", kFtypeQ4_K_M, DType::kQ4_K, "q4_K; q6_K for output and some attn_v/ffn_down"},
      {"Q4_K_S", kFtypeQ4_K_S, DType::kQ4_K, "q4_K; q5_K for early attn_v/ffn_down"},
      {"Q4_1", kFtypeQ4_1, DType::kQ4_1, "5 bits/weight"},
      {"Q4_0", kFtypeQ4_0, DType::kQ4_0, "4.5 bits/weight"},
  };
  return kTypes;
}

const QuantFileType* find_quant_file_type(std::string_view name) {
  // llama-quantize's aliases.
  if (iequals(name, "Q4_K")) name = "Q4_K_M";
  if (iequals(name, "Q5_K")) name = "Q5_K_M";
  for (const auto& t : quant_file_types()) {
    if (iequals(name, t.name)) return &t;
  }
  uint32_t number = 0;
  const auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
  if (ec == std::errc() && ptr == name.data() + name.size() && !name.empty()) {
    for (const auto& t : quant_file_types()) {
      if (t.ftype == number) return &t;
    }
  }
  return nullptr;
}

std::string quant_file_type_list() {
  std::string out;
  for (const auto& t : quant_file_types()) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out + " (Q4_K and Q5_K are aliases of Q4_K_M and Q5_K_M)";
}

std::vector<QuantTensorPlan> plan_quantization(const std::vector<QuantTensorIn>& tensors,
                                               const QuantModelInfo& model,
                                               const QuantFileType& file_type, bool pure) {
  MixState s{model, file_type.ftype};
  s.n_ffn_down = model.num_layers;
  std::vector<Category> cats(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    LLMOS_CHECK_ARG(!tensors[i].shape.empty(), "plan_quantization: tensor '", tensors[i].name,
                    "' has no shape");
    cats[i] = category_of(tensors[i].name);
    if (cats[i] == Category::kAttnV) ++s.n_attn_v;
    if (cats[i] == Category::kOutput) s.tied_embeddings = false;
  }
  // llama.cpp walks tensors sorted by layer, then name; the attn_v / ffn_down counters depend
  // on that order, so the rules run in it whatever the order of the file.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t la = layer_of(tensors[a].name);
    const int64_t lb = layer_of(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });

  std::vector<QuantTensorPlan> plans(tensors.size());
  const DType base = file_type.base;
  for (size_t idx : order) {
    const QuantTensorIn& t = tensors[idx];
    QuantTensorPlan& plan = plans[idx];
    plan.quantizable = allows_quantization(t);
    if (!plan.quantizable) {
      plan.type = t.dtype;
      continue;
    }
    DType type = base;
    // Float targets take every weight matrix as is; the mixes and fallbacks are for block types.
    if (dtype_is_quantized(base)) {
      if (!pure) {
        type = mixture_type(s, t, cats[idx], type);
        plan.note = note_for(base, type, cats[idx]);
      }
      type = fallback(t, type, plan);
    }
    plan.type = type;
    if (type != t.dtype && (t.dtype == DType::kI8 || t.dtype == DType::kI16 || t.dtype == DType::kI32)) {
      throw_error(StatusCode::kUnsupported, "tensor '", t.name, "' has integer type ",
                  dtype_name(t.dtype), ", which cannot be converted to ", dtype_name(type));
    }
  }
  return plans;
}

}  // namespace llmos
