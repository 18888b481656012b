// Hand-written splitters for the most used pre-tokenizer patterns. llama.cpp runs its own
// hand-written code instead of std::regex for the GPT-2 and Llama-3 patterns; these follow
// the same rules and give the same words as the regex (tests compare them with Regex on
// random text). The Llama-3 splitter also serves Qwen2's pattern, which differs only in
// taking \p{N} one digit at a time instead of up to three.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace llmos {

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)  (and \s+)
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama 3 as written in tokenizer.json (llama.cpp's std::regex cannot parse (?i:...)) ...
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// ... and as llama.cpp lists it, with the case-insensitive group spelled out.
inline constexpr std::string_view kLlama3AdaptedPattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Splits the chunk [s.begin, s.end) and appends the end of each word to `ends`.
using FastSplitter = void (*)(const RegexSubject& s, std::vector<uint32_t>& ends);

void split_gpt2(const RegexSubject& s, std::vector<uint32_t>& ends);
void split_llama3(const RegexSubject& s, std::vector<uint32_t>& ends);
void split_qwen2(const RegexSubject& s, std::vector<uint32_t>& ends);

// The hand-written splitter for exactly this pattern text, or nullptr.
FastSplitter fast_splitter_for(std::string_view pattern);

}  // namespace llmos
