#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

// The regex lists llama.cpp's BPE tokenizer uses for each pre-tokenizer type
// (llm_tokenizer_bpe), and the tokenizer.ggml.pre values that select each type.
// Non-ASCII characters are written as \u escapes; "[\r\n]" holds the control characters
// themselves, as it does there.

constexpr std::string_view kDefault[] = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    kGpt2Pattern,
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

constexpr std::string_view kFalcon[] = {
    R"([\p{P}\$\+<=>\^~\|`]+)",
    kGpt2Pattern,
    R"([0-9][0-9][0-9])",
};

constexpr std::string_view kGpt2[] = {kGpt2Pattern};

constexpr std::string_view kStarcoder[] = {R"(\p{N})", kGpt2Pattern};

constexpr std::string_view kLlama3[] = {kLlama3AdaptedPattern};

constexpr std::string_view kQwen2[] = {kQwen2Pattern};

constexpr std::string_view kQwen35[] = {
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

constexpr std::string_view kSeedCoder[] = {
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

constexpr std::string_view kBailingMoe[] = {
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)",
};

// Cased letters of many scripts, Latin/Greek/Cyrillic/... (from DeepSeek's tokenizer.json).
constexpr std::string_view kDeepseekLlm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
    "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
    "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5"
    "\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59"
    "\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC"
    "\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107"
    "\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE"
    "\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E"
    "\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A"
    "\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB"
    "\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF"
    "\U0001E900-\U0001E943]+",
    "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
    "\\s+$",
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
    "\\p{N}+",
};

constexpr std::string_view kDeepseekCoder[] = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
    "\\p{N}",
};

constexpr std::string_view kDeepseekV3[] = {
    "\\p{N}{1,3}",
    "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

constexpr std::string_view kPoro[] = {
    " ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+",
};

constexpr std::string_view kViking[] = {
    " ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+",
    "\\p{N}",
};

constexpr std::string_view kTekken[] = {
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

constexpr std::string_view kGpt4o[] = {
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

struct Spec {
  std::vector<std::string_view> names;
  const std::string_view* patterns;
  size_t num_patterns;
  bool ignore_merges;
  bool add_bos;
};

template <size_t N>
Spec spec(std::vector<std::string_view> names, const std::string_view (&p)[N],
          bool ignore_merges = false, bool add_bos = false) {
  return {std::move(names), p, N, ignore_merges, add_bos};
}

const std::vector<Spec>& specs() {
  static const std::vector<Spec> table = {
      spec({"default"}, kDefault),
      spec({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
            "lfm2"},
           kLlama3, /*ignore_merges=*/true, /*add_bos=*/true),
      spec({"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, kLlama3),
      spec({"deepseek-llm"}, kDeepseekLlm),
      spec({"deepseek-coder"}, kDeepseekCoder),
      spec({"deepseek-v3"}, kDeepseekV3),
      spec({"falcon"}, kFalcon),
      spec({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
           kStarcoder),
      spec({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "a.x-4.0", "mellum", "exaone4",
            "mpt", "olmo", "jais", "trillion", "granite-docling"},
           kGpt2),
      spec({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
            "solar-open", "grok-2"},
           kQwen2),
      spec({"qwen35"}, kQwen35),
      spec({"seed-coder"}, kSeedCoder),
      spec({"bailingmoe", "bailingmoe2", "llada-moe"}, kBailingMoe),
      spec({"poro-chat", "bloom", "gpt3-finnish"}, kPoro),
      spec({"viking"}, kViking),
      spec({"tekken"}, kTekken, /*ignore_merges=*/true, /*add_bos=*/true),
      spec({"gpt-4o", "llama4", "minimax-m2"}, kGpt4o),
  };
  return table;
}

const Spec* find_spec(std::string_view name) {
  if (name.empty()) name = "default";
  for (const Spec& s : specs()) {
    if (std::find(s.names.begin(), s.names.end(), name) != s.names.end()) return &s;
  }
  return nullptr;
}

}  // namespace

bool PreTokenizer::is_supported(std::string_view name) { return find_spec(name) != nullptr; }

std::vector<std::string_view> PreTokenizer::supported_names() {
  std::vector<std::string_view> names;
  for (const Spec& s : specs()) names.insert(names.end(), s.names.begin(), s.names.end());
  return names;
}

bool PreTokenizer::default_add_bos(std::string_view name) {
  const Spec* s = find_spec(name);
  return s != nullptr && s->add_bos;
}

PreTokenizer::PreTokenizer(std::string_view name) : name_(name.empty() ? "default" : name) {
  const Spec* s = find_spec(name);
  if (s == nullptr) {
    throw_error(StatusCode::kUnsupported, "pre-tokenizer '", name,
                "' (tokenizer.ggml.pre) is not supported");
  }
  ignore_merges_ = s->ignore_merges;
  for (size_t i = 0; i < s->num_patterns; ++i) {
    const std::string_view pattern = s->patterns[i];
    patterns_.emplace_back(pattern);
    Stage stage;
    stage.fast = fast_splitter_for(pattern);
    if (stage.fast == nullptr) stage.regex.emplace(pattern);
    stages_.push_back(std::move(stage));
  }
}

void PreTokenizer::split(std::string_view text, Scratch& s) const {
  s.cpts.clear();
  unicode_decode_lossy(text, s.cpts);
  const size_t n = s.cpts.size();
  s.flags.resize(n);
  const UnicodeFlagTable& table = UnicodeFlagTable::get();
  for (size_t i = 0; i < n; ++i) s.flags[i] = table(s.cpts[i]);

  s.ends.clear();
  if (n == 0) return;
  s.ends.push_back(static_cast<uint32_t>(n));
  for (const Stage& stage : stages_) {
    s.next.clear();
    size_t begin = 0;
    for (const uint32_t end : s.ends) {
      const RegexSubject subject{s.cpts.data(), s.flags.data(), begin, end};
      if (stage.fast != nullptr) {
        stage.fast(subject, s.next);
      } else {
        stage.regex->split(subject, s.next);
      }
      begin = end;
    }
    s.ends.swap(s.next);
  }
}

std::vector<std::string> PreTokenizer::split_words(std::string_view text) const {
  Scratch s;
  split(text, s);
  std::vector<std::string> words;
  size_t begin = 0;
  for (const uint32_t end : s.ends) {
    std::string word;
    for (size_t i = begin; i < end; ++i) unicode_append_utf8(word, s.cpts[i]);
    words.push_back(std::move(word));
    begin = end;
  }
  return words;
}

}  // namespace llmos
