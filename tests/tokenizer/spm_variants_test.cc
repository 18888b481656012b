// SentencePiece ("llama") vocabularies as they appear in real GGUF files: Phi-3/3.5 (control
// chat tokens with rstrip, "[PADn]" unused padding), Mistral v0.3 (771 control tokens, 32768
// tokens), Gemma 1-3 (no dummy prefix, user-defined whitespace tokens), vocabs without byte
// tokens, and the GGUF keys llama.cpp honours for SPM. Every expectation is derived by hand
// from llama.cpp's algorithm (llama-vocab.cpp); each test says which behaviour it pins.
// Ends with seeded random round trips over the llama-spm vocab in /work/shared/vocab.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/special_partition.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/utf8.h"

namespace llmos {
namespace {

using Ids = std::vector<TokenId>;
const std::string kSp = "\xE2\x96\x81";  // U+2581

std::string sp(const std::string& text) {  // spaces -> U+2581
  std::string out;
  for (const char c : text) out += c == ' ' ? kSp : std::string(1, c);
  return out;
}

struct Builder {
  Vocab vocab;
  Builder() {
    vocab.model = "llama";
    vocab.add_bos = true;
  }
  TokenId add(const std::string& text, float score = 0, TokenType type = TokenType::kNormal) {
    vocab.tokens.push_back(text);
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
    return static_cast<TokenId>(vocab.tokens.size() - 1);
  }
  TokenId control(const std::string& text) { return add(text, 0, TokenType::kControl); }
  TokenId user(const std::string& text) { return add(text, 0, TokenType::kUserDefined); }
  // <0x00>..<0xFF>; returns the id of <0x00>.
  TokenId add_bytes() {
    const TokenId first = static_cast<TokenId>(vocab.tokens.size());
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      add(name, 0, TokenType::kByte);
    }
    return first;
  }
};

std::unique_ptr<SpmTokenizer> make(const Vocab& vocab, const std::string& model_name = "") {
  SpecialTokenKeys keys;
  keys.model_name = model_name;
  return std::make_unique<SpmTokenizer>(vocab, keys);
}

// A GGUF image of `vocab` plus `extra` keys, parsed back from memory.
gguf::File to_gguf(const Vocab& vocab,
                   const std::vector<std::pair<std::string, gguf::Value>>& extra,
                   bool write_special_ids = true) {
  using gguf::Array;
  using gguf::Value;
  using gguf::ValueType;
  gguf::Writer w;
  w.set("general.architecture", Value("llama"));
  w.set("tokenizer.ggml.model", Value(vocab.model));
  Array tokens{ValueType::kString, {}};
  Array scores{ValueType::kFloat32, {}};
  Array types{ValueType::kInt32, {}};
  for (size_t i = 0; i < vocab.size(); ++i) {
    tokens.items.emplace_back(vocab.tokens[i]);
    scores.items.emplace_back(vocab.scores[i]);
    types.items.emplace_back(static_cast<int32_t>(vocab.types[i]));
  }
  w.set("tokenizer.ggml.tokens", Value(std::move(tokens)));
  w.set("tokenizer.ggml.scores", Value(std::move(scores)));
  w.set("tokenizer.ggml.token_type", Value(std::move(types)));
  if (write_special_ids) {
    const std::pair<const char*, TokenId> ids[] = {{"tokenizer.ggml.bos_token_id", vocab.bos},
                                                   {"tokenizer.ggml.eos_token_id", vocab.eos},
                                                   {"tokenizer.ggml.unknown_token_id", vocab.unk}};
    for (const auto& [key, id] : ids) {
      if (id != kNoToken) w.set(key, Value(static_cast<uint32_t>(id)));
    }
  }
  for (const auto& [key, value] : extra) w.set(key, value);
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  return gguf::File::parse(bytes, bytes->data(), bytes->size(), "variant.gguf");
}

// ---- Phi-3 / Phi-3.5 ----------------------------------------------------------------------------

// Shaped like the Phi-3 GGUFs convert_hf_to_gguf.py writes: the Llama-2 specials and byte
// tokens, normal pieces, then the added chat tokens as control tokens (special: true in
// tokenizer_config.json) and "[PADn]" unused padding up to the model's vocab size. No
// add_space_prefix key (so the SPM default, true).
struct PhiVocab {
  Builder b;
  TokenId unk, bos, eos_s, byte0, space, hi, space_hi;
  TokenId endoftext, assistant, system, end, user;
  PhiVocab() {
    unk = b.add("<unk>", 0, TokenType::kUnknown);
    bos = b.control("<s>");
    eos_s = b.control("</s>");
    byte0 = b.add_bytes();
    space = b.add(kSp, -100);
    b.add("H", -100);
    b.add("i", -100);
    hi = b.add("Hi", -1);
    space_hi = b.add(sp(" Hi"), -2);
    endoftext = b.add("<|endoftext|>", -1000, TokenType::kControl);
    assistant = b.add("<|assistant|>", -1000, TokenType::kControl);
    b.add("<|placeholder1|>", -1000, TokenType::kControl);
    system = b.add("<|system|>", -1000, TokenType::kControl);
    end = b.add("<|end|>", -1000, TokenType::kControl);
    user = b.add("<|user|>", -1000, TokenType::kControl);
    b.add("[PAD32011]", -10000, TokenType::kUnused);
    b.add("[PAD32012]", -10000, TokenType::kUnused);
    b.vocab.bos = bos;
    b.vocab.eos = endoftext;
    b.vocab.unk = unk;
  }
  TokenId nl() const { return byte0 + '\n'; }
};

// llama.cpp: for a general.name containing "phi-3"/"phi3" (lower-cased) every special token
// gets RSTRIP, so the partition drops the whitespace after it; the text run that follows a
// special token still gets the dummy prefix.
TEST(SpmPhi3, ChatTokensSwallowTheFollowingWhitespace) {
  const PhiVocab v;
  const auto tok = make(v.b.vocab, "Phi3");
  const std::string chat = "<|user|>\nHi<|end|>\n<|assistant|>";
  EXPECT_EQ(tok->encode(chat, false, true), (Ids{v.user, v.space_hi, v.end, v.assistant}));
  // With add_special, BOS (add_bos defaults to true for SPM) comes first.
  EXPECT_EQ(tok->encode(chat, true, true), (Ids{v.bos, v.user, v.space_hi, v.end, v.assistant}));
  // Any ASCII whitespace run is swallowed, but not U+3000 (llama.cpp calls isspace()).
  EXPECT_EQ(tok->encode("<|end|> \t\r\n\v\f Hi", false, true), (Ids{v.end, v.space_hi}));
  EXPECT_EQ(tok->encode("<|end|>\xE3\x80\x80Hi", false, true),
            (Ids{v.end, v.space, v.byte0 + 0xE3, v.byte0 + 0x80, v.byte0 + 0x80, v.hi}));
  // Whitespace before a token stays (RSTRIP only): " \n" -> "▁▁\n" -> ▁ ▁ <0x0A>.
  EXPECT_EQ(tok->encode("Hi \n<|end|>", false, true), (Ids{v.space_hi, v.space, v.nl(), v.end}));
}

// Without the Phi-3 name nothing is stripped: "\nHi" after <|user|> becomes "▁\nHi".
TEST(SpmPhi3, OtherModelNamesKeepTheWhitespace) {
  const PhiVocab v;
  const auto tok = make(v.b.vocab, "Llama-2-7b");
  EXPECT_EQ(tok->encode("<|user|>\nHi<|end|>\n<|assistant|>", false, true),
            (Ids{v.user, v.space, v.nl(), v.hi, v.end, v.space, v.nl(), v.assistant}));
}

// llama.cpp's exceptions: "</s>" gets RSTRIP too (even though it is also in the cache), while
// "<unk>", "<s>" and "<|endoftext|>" keep the whitespace that follows them.
TEST(SpmPhi3, RstripExceptions) {
  const PhiVocab v;
  const auto tok = make(v.b.vocab, "phi3");
  EXPECT_EQ(tok->encode("</s> Hi", false, true), (Ids{v.eos_s, v.space_hi}));
  for (const TokenId kept : {v.bos, v.unk, v.endoftext}) {
    const std::string text = v.b.vocab.tokens[kept] + " Hi";
    // " Hi" after a special token: dummy prefix + space -> "▁▁Hi" -> ▁ ▁Hi.
    EXPECT_EQ(tok->encode(text, false, true), (Ids{kept, v.space, v.space_hi})) << text;
    EXPECT_EQ(tok->token_attrs(kept) & kAttrRstrip, 0u) << text;
  }
  EXPECT_NE(tok->token_attrs(v.system) & kAttrRstrip, 0u);
  EXPECT_NE(tok->token_attrs(v.eos_s) & kAttrRstrip, 0u);
}

// The rule is a substring test on the lower-cased general.name, nothing smarter.
TEST(SpmPhi3, ModelNameRule) {
  const PhiVocab v;
  for (const std::string name : {"Phi3", "Phi-3.5-mini-instruct", "PHI3 Medium", "my-phi-3-ft"}) {
    EXPECT_NE(make(v.b.vocab, name)->token_attrs(v.user) & kAttrRstrip, 0u) << name;
  }
  for (const std::string name : {"Phi 3 Mini 4k Instruct", "phi-2", "", "Llama"}) {
    EXPECT_EQ(make(v.b.vocab, name)->token_attrs(v.user) & kAttrRstrip, 0u) << name;
  }
}

// Control tokens are plain text unless parse_special, and then nothing is stripped either.
TEST(SpmPhi3, PlainTextWithoutParseSpecial) {
  const PhiVocab v;
  const auto tok = make(v.b.vocab, "Phi3");
  const std::string chat = "<|user|>\nHi<|end|>";
  const Ids ids = tok->encode(chat, false, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), v.user), 0);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), v.end), 0);
  EXPECT_EQ(ids.front(), v.space);
  EXPECT_EQ(tok->decode(ids), chat);
}

// EOT is found by text ("<|end|>" comes before "<|endoftext|>" in llama.cpp's list); the
// end-of-generation set holds every listed text present plus eos; control tokens print as ""
// unless special.
TEST(SpmPhi3, EndOfGenerationAndPieces) {
  const PhiVocab v;
  const auto tok = make(v.b.vocab, "Phi3");
  EXPECT_EQ(tok->eot(), v.end);
  EXPECT_EQ(tok->eom(), kNoToken);
  EXPECT_EQ(tok->special_tokens().eog, (Ids{v.eos_s, v.endoftext, v.end}));
  EXPECT_TRUE(tok->is_eog(v.end));
  EXPECT_FALSE(tok->is_eog(v.user));
  EXPECT_FALSE(tok->is_eog(v.bos));
  const Ids ids = tok->encode("<|user|>\nHi<|end|>\n<|assistant|>", true, true);
  EXPECT_EQ(tok->decode(ids), "Hi");
  EXPECT_EQ(tok->decode(ids, true), "<s><|user|> Hi<|end|><|assistant|>");
  EXPECT_EQ(tok->token_to_piece(v.end), "");
  EXPECT_EQ(tok->token_to_piece(v.end, true), "<|end|>");
  // "[PADn]" padding is unused: never printed, never special.
  EXPECT_EQ(tok->token_to_piece(static_cast<TokenId>(v.b.vocab.size() - 1), true), "");
}

// The same vocab read from a GGUF file through SpmTokenizer::from_gguf: general.name drives
// the rstrip rule, tokenizer.ggml.add_bos_token = false is honoured.
TEST(SpmPhi3, FromGguf) {
  const PhiVocab v;
  const gguf::File file =
      to_gguf(v.b.vocab, {{"general.name", gguf::Value("Phi3")},
                          {"tokenizer.ggml.add_bos_token", gguf::Value(false)}});
  const auto tok = SpmTokenizer::from_gguf(file);
  EXPECT_EQ(tok->encode("<|user|>\nHi<|end|>\n<|assistant|>", true, true),
            (Ids{v.user, v.space_hi, v.end, v.assistant}));
  EXPECT_EQ(tok->eot(), v.end);
  EXPECT_TRUE(tok->vocab().add_space_prefix);
}

// ---- Mistral v0.3 -------------------------------------------------------------------------------

// Mistral-7B-Instruct-v0.3's layout: <unk> <s> </s>, [INST] [/INST] and the tool tokens, then
// [control_8]..[control_768] (all control), <0x00>..<0xFF> at 771.., normal pieces, 32768 in all.
struct MistralVocab {
  Builder b;
  TokenId inst, inst_end, tool_calls, control_8, byte0, space, space_space, hello, space_hello;
  MistralVocab() {
    b.vocab.unk = b.add("<unk>", 0, TokenType::kUnknown);
    b.vocab.bos = b.control("<s>");
    b.vocab.eos = b.control("</s>");
    inst = b.control("[INST]");
    inst_end = b.control("[/INST]");
    tool_calls = b.control("[TOOL_CALLS]");
    for (const char* t :
         {"[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"}) {
      b.control(t);
    }
    control_8 = static_cast<TokenId>(b.vocab.size());
    for (int i = 8; i <= 768; ++i) b.control("[control_" + std::to_string(i) + "]");
    byte0 = b.add_bytes();
    space = b.add(kSp, -1000);
    for (const char* c : {"H", "e", "l", "o"}) b.add(c, -1000);
    b.add("ll", -1);
    b.add("He", -2);
    b.add("Hell", -3);
    hello = b.add("Hello", -4);
    space_hello = b.add(sp(" Hello"), -4.5f);
    space_space = b.add(sp("  "), -5);
    for (int i = 0; b.vocab.size() < 32768; ++i) b.add(kSp + "zz" + std::to_string(i), -2000);
  }
};

// [INST] and friends are control tokens: matched only with parse_special. The text between
// them gets the dummy prefix, so " Hello " becomes "▁▁Hello▁"; merging by score gives
// ll, He, Hell, Hello, then ▁Hello (-4.5) before ▁▁ (-5), which is then stale: ▁ ▁Hello ▁.
TEST(SpmMistralV3, InstructionTokens) {
  const MistralVocab v;
  const auto tok = make(v.b.vocab, "Mistral-7B-Instruct-v0.3");
  ASSERT_EQ(tok->vocab().size(), 32768u);
  EXPECT_EQ(v.byte0, 771);
  EXPECT_EQ(v.b.vocab.tokens[770], "[control_768]");
  EXPECT_EQ(tok->encode("[INST] Hello [/INST]", true, true),
            (Ids{1, v.inst, v.space, v.space_hello, v.space, v.inst_end}));
  EXPECT_EQ(tok->encode("Hello", false), (Ids{v.space_hello}));
  EXPECT_EQ(tok->encode("[TOOL_CALLS][control_8]", false, true), (Ids{v.tool_calls, v.control_8}));
  // Without parse_special "[INST]" is text: "▁[INST]" -> ▁ and one byte token per character.
  const Ids plain = tok->encode("[INST]", false, false);
  EXPECT_EQ(plain, (Ids{v.space, v.byte0 + '[', v.byte0 + 'I', v.byte0 + 'N', v.byte0 + 'S',
                        v.byte0 + 'T', v.byte0 + ']'}));
  EXPECT_EQ(tok->decode(plain), "[INST]");
}

// decode: control tokens print "" unless special; the first non-empty piece loses the one
// space that the dummy prefix added. With special, "[INST]" is the first piece, so both
// spaces before "Hello" stay (as llama.cpp's detokenize does).
TEST(SpmMistralV3, Decode) {
  const MistralVocab v;
  const auto tok = make(v.b.vocab);
  const Ids ids = tok->encode("[INST] Hello [/INST]", true, true);
  EXPECT_EQ(tok->decode(ids), " Hello ");
  EXPECT_EQ(tok->decode(ids, true), "<s>[INST]  Hello [/INST]");
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(v.inst_end));
  EXPECT_EQ(tok->eot(), kNoToken);
}

// ---- Gemma 1-3 ----------------------------------------------------------------------------------

// Gemma's GGUF (tokenizer.ggml.model "llama", add_space_prefix false) has control chat tokens,
// "<unusedN>" controls, and user-defined tokens for newlines and space runs whose U+2581 the
// converter turned into real spaces ("pre-normalize user-defined spaces").
struct GemmaVocab {
  Builder b;
  TokenId pad, eos, bos, unk, sot, eot, unused0, nl, nl2, two_spaces, byte0;
  TokenId space_world, world, hello, user;
  GemmaVocab() {
    pad = b.control("<pad>");
    eos = b.control("<eos>");
    bos = b.control("<bos>");
    unk = b.add("<unk>", 0, TokenType::kUnknown);
    unused0 = b.control("<unused0>");
    sot = b.control("<start_of_turn>");
    eot = b.control("<end_of_turn>");
    nl = b.user("\n");
    nl2 = b.user("\n\n");
    two_spaces = b.user("  ");
    byte0 = b.add_bytes();
    b.add(kSp, -100);
    for (const char* c : {"H", "e", "l", "o", "w", "r", "d", "u", "s"}) b.add(c, -100);
    b.add("He", -1);
    b.add("ll", -1);
    b.add("Hell", -2);
    hello = b.add("Hello", -3);
    b.add("or", -1);
    b.add("ld", -1);
    b.add("wor", -2);
    world = b.add("world", -3);
    space_world = b.add(sp(" world"), -4);
    b.add("us", -1);
    b.add("er", -1);
    user = b.add("user", -2);
    b.vocab.pad = pad;
    b.vocab.eos = eos;
    b.vocab.bos = bos;
    b.vocab.unk = unk;
    b.vocab.add_space_prefix = false;
  }
};

// No dummy prefix anywhere (add_space_prefix false); user-defined "\n" claims newlines before
// the SPM merge; "<end_of_turn>" is found by text as EOT.
TEST(SpmGemma, ChatTurn) {
  const GemmaVocab v;
  const auto tok = make(v.b.vocab, "gemma-2-2b-it");
  EXPECT_EQ(tok->encode("<start_of_turn>user\nHello world<end_of_turn>\n", true, true),
            (Ids{v.bos, v.sot, v.user, v.nl, v.hello, v.space_world, v.eot, v.nl}));
  EXPECT_EQ(tok->eot(), v.eot);
  EXPECT_TRUE(tok->is_eog(v.eot));
  EXPECT_TRUE(tok->is_eog(v.eos));
  EXPECT_FALSE(tok->is_eog(v.sot));
  // Control "<unused0>" is also marked unused (llama.cpp's "unused" text rule).
  EXPECT_EQ(tok->token_attrs(v.unused0), kAttrControl | kAttrUnused);
}

// User-defined whitespace tokens are matched in the raw text, longest first ("\n\n" before
// "\n", "  " before the SPM merge ever sees the spaces); the run after one gets no prefix.
TEST(SpmGemma, UserDefinedWhitespace) {
  const GemmaVocab v;
  const auto tok = make(v.b.vocab);
  EXPECT_EQ(tok->encode("Hello  world", false), (Ids{v.hello, v.two_spaces, v.world}));
  EXPECT_EQ(tok->encode("Hello\n\n\nworld", false), (Ids{v.hello, v.nl2, v.nl, v.world}));
  EXPECT_EQ(tok->encode("Hello world", false), (Ids{v.hello, v.space_world}));
  // Without parse_special the chat tokens are text, but "\n" is still user-defined.
  const Ids ids = tok->encode("<start_of_turn>\n", false, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), v.nl);
  EXPECT_EQ(ids.front(), v.byte0 + '<');
  // Decoding keeps a leading space: no dummy prefix was added, so none is removed.
  EXPECT_EQ(tok->encode(" world", false), (Ids{v.space_world}));
  for (const std::string text : {" world", "Hello  world\n", "\n\nHello", "  "}) {
    EXPECT_EQ(tok->decode(tok->encode(text, true)), text) << "'" << text << "'";
  }
}

// tokenizer.ggml.eot_token_id (written for Gemma / CodeGemma) wins over the text search, and a
// token named by a key is not forced to control. The deprecated prefix_token_id overrides
// fim_pre_token_id (llama.cpp reads it last); out-of-range ids are ignored, not fatal, and
// leave the id as it was.
TEST(SpmGemma, SpecialIdsFromKeys) {
  GemmaVocab v;
  const TokenId custom = v.b.user("<turn_end>");
  const gguf::File file = to_gguf(
      v.b.vocab, {{"tokenizer.ggml.add_space_prefix", gguf::Value(false)},
                  {"tokenizer.ggml.eot_token_id", gguf::Value(static_cast<uint32_t>(custom))},
                  {"tokenizer.ggml.fim_pre_token_id", gguf::Value(static_cast<uint32_t>(v.sot))},
                  {"tokenizer.ggml.prefix_token_id", gguf::Value(static_cast<uint32_t>(v.nl))},
                  {"tokenizer.ggml.fim_suf_token_id", gguf::Value(static_cast<uint32_t>(v.eot))},
                  {"tokenizer.ggml.suffix_token_id", gguf::Value(uint32_t{999999})},
                  {"tokenizer.ggml.eom_token_id", gguf::Value(uint32_t{999999})}});
  const auto tok = SpmTokenizer::from_gguf(file);
  EXPECT_FALSE(tok->vocab().add_space_prefix);
  EXPECT_EQ(tok->eot(), custom);
  EXPECT_EQ(tok->token_attrs(custom), kAttrUserDefined);
  EXPECT_TRUE(tok->is_eog(custom));
  EXPECT_TRUE(tok->is_eog(v.eot));  // still in the end-of-generation list by its text
  EXPECT_EQ(tok->special_tokens().fim_pre, v.nl);
  EXPECT_EQ(tok->special_tokens().fim_suf, v.eot);  // the bad deprecated id changes nothing
  EXPECT_EQ(tok->eom(), kNoToken);
  EXPECT_EQ(tok->encode("Hello<turn_end>", false), (Ids{v.hello, custom}));
}

// Older Gemma conversions kept U+2581 in user-defined tokens. The partition never finds them
// in raw text (which has spaces), but SPM merges may build any vocab token, and llama.cpp
// prints user-defined tokens verbatim, so "▁▁" comes back as U+2581 U+2581, not two spaces.
TEST(SpmGemma, UnnormalizedUserDefinedSpaces) {
  Builder b;
  b.add(kSp, -10);
  b.add("a", -10);
  const TokenId b_id = b.add("b", -10);
  const TokenId space_a = b.add(sp(" a"), -1);
  const TokenId marks = b.add(kSp + kSp, -1000, TokenType::kUserDefined);
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->encode("a  b", false), (Ids{space_a, marks, b_id}));
  EXPECT_EQ(tok->decode(tok->encode("a  b", false)), "a" + kSp + kSp + "b");
}

// ---- CodeLlama --------------------------------------------------------------------------------

// CodeLlama's infill tokens "▁<PRE>", "▁<SUF>", "▁<MID>" are found by text as the FIM ids and
// become control: printed only with `special`, and then verbatim (U+2581 included); "▁<EOT>"
// is in neither llama.cpp's EOT nor its end-of-generation list.
TEST(SpmCodeLlama, InfillTokens) {
  Builder b;
  b.add("<unk>", 0, TokenType::kUnknown);
  b.control("<s>");
  b.vocab.eos = b.control("</s>");
  const TokenId pre = b.add(kSp + "<PRE>");
  const TokenId suf = b.add(kSp + "<SUF>");
  const TokenId mid = b.add(kSp + "<MID>");
  const TokenId eot = b.add(kSp + "<EOT>");
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->special_tokens().fim_pre, pre);
  EXPECT_EQ(tok->special_tokens().fim_suf, suf);
  EXPECT_EQ(tok->special_tokens().fim_mid, mid);
  EXPECT_EQ(tok->token_attrs(pre), kAttrNormal | kAttrControl);
  EXPECT_EQ(tok->token_to_piece(pre), "");
  EXPECT_EQ(tok->token_to_piece(pre, true), kSp + "<PRE>");
  EXPECT_EQ(tok->token_attrs(eot), kAttrNormal);
  EXPECT_EQ(tok->token_to_piece(eot), " <EOT>");
  EXPECT_EQ(tok->eot(), kNoToken);
  EXPECT_EQ(tok->special_tokens().eog, (Ids{2}));
}

// ---- Attribute rules by token text ------------------------------------------------------------

// llama.cpp forces every token in its end-of-generation list to control, whatever its type:
// a user-defined "<|end|>" is then no longer matched without parse_special and prints "".
TEST(SpmAttributes, EndOfGenerationTextsBecomeControl) {
  Builder b;
  const TokenId byte0 = b.add_bytes();
  const TokenId end = b.user("<|end|>");
  const TokenId im_end = b.add("<|im_end|>");  // normal type
  const TokenId tool = b.user("<tool>");
  b.add(kSp, -1);
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->token_attrs(end), kAttrUserDefined | kAttrControl);
  EXPECT_EQ(tok->token_attrs(im_end), kAttrNormal | kAttrControl);
  // Without parse_special "<|end|>" is text after a special token: "▁<|end|>", all bytes.
  const TokenId space = tok->find_token(kSp);
  EXPECT_EQ(tok->encode("<tool><|end|>", false, false),
            (Ids{tool, space, byte0 + '<', byte0 + '|', byte0 + 'e', byte0 + 'n', byte0 + 'd',
                 byte0 + '|', byte0 + '>'}));
  EXPECT_EQ(tok->encode("<tool><|end|>", false, true), (Ids{tool, end}));
  EXPECT_EQ(tok->encode("<|im_end|>", false, true), (Ids{im_end}));
  EXPECT_EQ(tok->token_to_piece(end), "");
  EXPECT_EQ(tok->token_to_piece(end, true), "<|end|>");
  EXPECT_EQ(tok->token_to_piece(tool), "<tool>");
  // Both are EOT candidates; llama.cpp's list has "<|im_end|>" before "<|end|>".
  EXPECT_EQ(tok->eot(), im_end);
  EXPECT_TRUE(tok->is_eog(end));
  EXPECT_TRUE(tok->is_eog(im_end));
}

// gpt-oss's "<|channel|>" etc. are always rendered: llama.cpp makes them user-defined only, so
// they are matched without parse_special and print without `special`. With "<|return|>" and
// "<|call|>" present, "<|end|>" no longer ends generation and becomes user-defined.
TEST(SpmAttributes, HarmonyTokens) {
  Builder b;
  const TokenId channel = b.control("<|channel|>");
  const TokenId ret = b.control("<|return|>");
  const TokenId call = b.control("<|call|>");
  const TokenId end = b.control("<|end|>");
  b.add(kSp, -1);
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->token_attrs(channel), kAttrUserDefined);
  EXPECT_EQ(tok->encode("<|channel|>", false, false), (Ids{channel}));
  EXPECT_EQ(tok->token_to_piece(channel), "<|channel|>");
  EXPECT_EQ(tok->token_attrs(end), kAttrUserDefined);
  EXPECT_FALSE(tok->is_eog(end));
  EXPECT_TRUE(tok->is_eog(ret));
  EXPECT_TRUE(tok->is_eog(call));
}

// With "<|tool_response>" ending generation, "</s>" becomes a normal token (gemma4/paddleocr
// workaround): not matched even with parse_special, printed as text, not end-of-generation.
TEST(SpmAttributes, ToolResponseDemotesEos) {
  Builder b;
  b.add_bytes();
  const TokenId eos = b.control("</s>");
  const TokenId tool_response = b.control("<|tool_response>");
  b.add(kSp, -1);
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->token_attrs(eos), kAttrNormal);
  EXPECT_FALSE(tok->is_eog(eos));
  EXPECT_TRUE(tok->is_eog(tool_response));
  EXPECT_NE(tok->encode("</s>", false, true), (Ids{eos}));
  EXPECT_EQ(tok->token_to_piece(eos), "</s>");
}

// LSTRIP: "<mask>" for the jina-v2 pre-tokenizers swallows the whitespace before it (only
// within its own raw fragment), not after it.
TEST(SpmAttributes, MaskLstrip) {
  Builder b;
  b.add_bytes();
  const TokenId mask = b.control("<mask>");
  const TokenId space = b.add(kSp, -100);
  b.add("H", -100);
  b.add("i", -100);
  b.add("Hi", -1);
  const TokenId space_hi = b.add(sp(" Hi"), -2);
  SpecialTokenKeys keys;
  keys.pre = "jina-v2-de";
  const SpmTokenizer tok(b.vocab, keys);
  EXPECT_EQ(tok.token_attrs(mask), kAttrControl | kAttrLstrip);
  EXPECT_EQ(tok.encode("Hi \t <mask> Hi", false, true), (Ids{space_hi, mask, space, space_hi}));
  const SpmTokenizer plain(b.vocab, {});
  EXPECT_EQ(plain.encode("Hi <mask>", false, true), (Ids{space_hi, space, mask}));
}

// The attribute-aware partition against a second implementation written from llama.cpp's
// tokenizer_st_partition: a linked list of fragments; each special token in turn splits every
// raw fragment at each match into left remainder (LSTRIP trims its end), token, and right
// remainder (RSTRIP trims its start), and searches on in that right remainder.
std::vector<TextFragment> reference_partition(const std::string& text, const Vocab& vocab,
                                              const std::vector<TokenAttrs>& attrs,
                                              const std::vector<TokenId>& order,
                                              bool parse_special) {
  const auto is_space = [&](size_t i) {
    return std::string(" \t\n\v\f\r").find(text[i]) != std::string::npos;
  };
  std::list<TextFragment> buffer;
  if (!text.empty()) buffer.push_back({kNoToken, 0, text.size()});
  for (const TokenId id : order) {
    if (!parse_special && (attrs[id] & (kAttrControl | kAttrUnknown)) != 0) continue;
    const std::string& needle = vocab.tokens[id];
    for (auto it = buffer.begin(); it != buffer.end();) {
      if (!it->is_text()) {
        ++it;
        continue;
      }
      size_t base = it->begin;
      size_t length = it->end - it->begin;
      std::vector<TextFragment> replacement;
      bool matched = false;
      while (true) {
        const size_t match = text.substr(0, base + length).find(needle, base);
        if (match == std::string::npos) break;
        matched = true;
        size_t left_length = match - base;
        if ((attrs[id] & kAttrLstrip) != 0) {
          while (left_length > 0 && is_space(base + left_length - 1)) --left_length;
        }
        if (left_length > 0) replacement.push_back({kNoToken, base, base + left_length});
        replacement.push_back({id, match, match + needle.size()});
        if (match + needle.size() >= base + length) {
          length = 0;
          break;
        }
        size_t right = match + needle.size();
        size_t right_length = length - ((match - base) + needle.size());
        if ((attrs[id] & kAttrRstrip) != 0) {
          while (right_length > 0 && is_space(right)) ++right, --right_length;
        }
        base = right;
        length = right_length;
      }
      if (!matched) {
        ++it;
        continue;
      }
      if (length > 0) replacement.push_back({kNoToken, base, base + length});
      it = buffer.erase(it);
      buffer.insert(it, replacement.begin(), replacement.end());
    }
  }
  return {buffer.begin(), buffer.end()};
}

TEST(SpmAttributes, PartitionMatchesReferenceOnRandomText) {
  std::mt19937 rng(20240611);
  const std::vector<std::string> alphabet = {"a", "b", " ", "\n", "<", ">", "x", "\t"};
  for (int round = 0; round < 60; ++round) {
    Builder b;
    const int n_specials = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n_specials; ++i) {
      std::string text;
      const int len = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < len; ++k) text += alphabet[rng() % alphabet.size()];
      const TokenType types[] = {TokenType::kControl, TokenType::kUserDefined, TokenType::kUnknown,
                                 TokenType::kNormal};
      b.add(text, 0, types[rng() % 4]);
    }
    const auto tok = make(b.vocab);
    std::vector<TokenAttrs> attrs = tok->special_tokens().attrs;
    for (TokenAttrs& a : attrs) a |= (rng() % 2 ? kAttrLstrip : 0) | (rng() % 2 ? kAttrRstrip : 0);
    const std::vector<TokenId>& order = tok->special_tokens().partition_order;
    for (int trial = 0; trial < 40; ++trial) {
      std::string text;
      const int len = static_cast<int>(rng() % 30);
      for (int k = 0; k < len; ++k) text += alphabet[rng() % alphabet.size()];
      for (const bool parse_special : {false, true}) {
        const auto got =
            partition_special_tokens(text, b.vocab.tokens, attrs, order, parse_special);
        const auto want = reference_partition(text, b.vocab, attrs, order, parse_special);
        ASSERT_EQ(got.size(), want.size()) << "text '" << text << "'";
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_EQ(got[i].token, want[i].token) << "text '" << text << "' fragment " << i;
          EXPECT_EQ(got[i].begin, want[i].begin) << "text '" << text << "' fragment " << i;
          EXPECT_EQ(got[i].end, want[i].end) << "text '" << text << "' fragment " << i;
        }
      }
    }
  }
}

// ---- Vocabs without byte tokens ---------------------------------------------------------------

// llama.cpp's byte_to_token: "<0xNN>" first, else a token whose text is that single raw byte.
// Where neither exists llama.cpp aborts (std::out_of_range); we emit the unknown token.
TEST(SpmNoByteTokens, RawByteTokensThenUnknown) {
  Builder b;
  const TokenId unk = b.add("<unk>", 0, TokenType::kUnknown);
  b.vocab.unk = unk;
  const TokenId space = b.add(kSp, -1);
  const TokenId a = b.add("a", -1);
  const TokenId c3 = b.add("\xC3", -1);  // raw bytes, as some converted vocabs hold them
  const TokenId a9 = b.add("\xA9", -1);
  const auto tok = make(b.vocab);
  EXPECT_EQ(tok->encode("a\xC3\xA9", false), (Ids{space, a, c3, a9}));  // é -> its raw bytes
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9", false)), "a\xC3\xA9");
  // "è" = C3 A8: A8 has no token, so the whole character is unknown.
  EXPECT_EQ(tok->encode("a\xC3\xA8", false), (Ids{space, a, unk}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA8", false)), "a");
}

// ---- GGUF keys --------------------------------------------------------------------------------

struct TinyVocab {
  Builder b;
  TokenId space, hi, space_hi;
  TinyVocab() {
    b.add("<unk>", 0, TokenType::kUnknown);
    b.control("<s>");
    b.control("</s>");
    b.add_bytes();
    space = b.add(kSp, -100);
    b.add("H", -100);
    b.add("i", -100);
    hi = b.add("Hi", -1);
    space_hi = b.add(sp(" Hi"), -2);
    b.vocab.unk = 0;
    b.vocab.bos = 1;
    b.vocab.eos = 2;
  }
};

// add_space_prefix false: no dummy prefix, and decode removes no space.
TEST(SpmGgufKeys, AddSpacePrefix) {
  const TinyVocab v;
  const auto with = SpmTokenizer::from_gguf(to_gguf(v.b.vocab, {}));
  EXPECT_EQ(with->encode("Hi", false), (Ids{v.space_hi}));
  const auto without = SpmTokenizer::from_gguf(
      to_gguf(v.b.vocab, {{"tokenizer.ggml.add_space_prefix", gguf::Value(false)}}));
  EXPECT_EQ(without->encode("Hi", false), (Ids{v.hi}));
  EXPECT_EQ(without->encode(" Hi", false), (Ids{v.space_hi}));
  EXPECT_EQ(without->decode(without->encode(" Hi", true)), " Hi");
}

// remove_extra_whitespaces is read by llama.cpp but only applied by the UGM (T5) tokenizer.
TEST(SpmGgufKeys, RemoveExtraWhitespacesIsNotApplied) {
  const TinyVocab v;
  const auto tok = SpmTokenizer::from_gguf(
      to_gguf(v.b.vocab, {{"tokenizer.ggml.remove_extra_whitespaces", gguf::Value(true)}}));
  EXPECT_EQ(tok->encode("Hi   Hi ", false),
            (Ids{v.space_hi, v.space, v.space, v.space_hi, v.space}));
  EXPECT_EQ(tok->decode(tok->encode("  Hi   Hi ", true)), "  Hi   Hi ");
}

TEST(SpmGgufKeys, AddBosAddEos) {
  const TinyVocab v;
  const auto tok = SpmTokenizer::from_gguf(
      to_gguf(v.b.vocab, {{"tokenizer.ggml.add_bos_token", gguf::Value(false)},
                          {"tokenizer.ggml.add_eos_token", gguf::Value(true)}}));
  EXPECT_EQ(tok->encode("Hi", true), (Ids{v.space_hi, 2}));
  EXPECT_EQ(tok->encode("Hi", false), (Ids{v.space_hi}));
}

// Unset bos/eos/unk take llama.cpp's SPM defaults 1/2/0 (absent key, or 0xFFFFFFFF which
// llama.cpp rejects as out of range and so keeps the default), when the vocab is big enough.
TEST(SpmGgufKeys, DefaultSpecialIds) {
  const TinyVocab v;
  const auto tok = SpmTokenizer::from_gguf(to_gguf(v.b.vocab, {}, /*write_special_ids=*/false));
  EXPECT_EQ(tok->vocab().bos, 1);
  EXPECT_EQ(tok->vocab().eos, 2);
  EXPECT_EQ(tok->vocab().unk, 0);
  EXPECT_EQ(tok->encode("Hi", true), (Ids{1, v.space_hi}));
  const auto none = SpmTokenizer::from_gguf(to_gguf(
      v.b.vocab, {{"tokenizer.ggml.bos_token_id", gguf::Value(uint32_t{0xFFFFFFFF})}}, false));
  EXPECT_EQ(none->vocab().bos, 1);

  Builder small;
  small.add(kSp, 0);
  small.add("a", 0);
  const auto tiny = SpmTokenizer::from_gguf(to_gguf(small.vocab, {}, false));
  EXPECT_EQ(tiny->vocab().bos, 1);
  EXPECT_EQ(tiny->vocab().eos, kNoToken);
  EXPECT_EQ(tiny->vocab().unk, 0);
}

TEST(SpmGgufKeys, WrongModelOrKeyTypesAreErrors) {
  const TinyVocab v;
  try {
    Vocab bpe = v.b.vocab;
    bpe.model = "gpt2";
    SpmTokenizer::from_gguf(to_gguf(bpe, {}));
    ADD_FAILURE() << "expected an error for a gpt2 vocab";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("'gpt2'"), std::string::npos) << e.what();
  }
  for (const auto& [key, value] : std::vector<std::pair<std::string, gguf::Value>>{
           {"general.name", gguf::Value(uint32_t{3})},
           {"tokenizer.ggml.pre", gguf::Value(1.5f)},
           {"tokenizer.ggml.eot_token_id", gguf::Value("5")}}) {
    const gguf::File file = to_gguf(v.b.vocab, {{key, value}});
    try {
      SpmTokenizer::from_gguf(file);
      ADD_FAILURE() << "expected an error for " << key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kFormat) << e.what();
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

// ---- Random round trips on the llama-spm vocab -----------------------------------------------

constexpr const char* kLlamaVocab = "vocab/ggml-vocab-llama-spm.gguf";

const SpmTokenizer& llama_spm() {
  static const std::unique_ptr<SpmTokenizer> tok =
      SpmTokenizer::from_gguf(gguf::File::open(test::shared_path(kLlamaVocab)));
  return *tok;
}

// What decode(encode(s)) must give for the llama-spm vocab (every byte has a <0xNN> token, "▁"
// is a token, all other tokens are valid UTF-8): llama.cpp escapes spaces before it splits the
// text into characters by lead byte alone, so a space swallowed into a malformed sequence
// falls back to bytes and comes back as U+2581; any character that is exactly U+2581 comes
// back as a space; everything else comes back as it was. The dummy prefix's space is removed.
std::string expected_round_trip(const std::string& s) {
  if (s.empty()) return s;
  std::string escaped = kSp;
  for (const char c : s) escaped += c == ' ' ? kSp : std::string(1, c);
  // llama.cpp's unicode_len_utf8: the length by the lead byte's high nibble only.
  static constexpr size_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  std::string out;
  for (size_t pos = 0; pos < escaped.size();) {
    const size_t len =
        std::min(kLen[static_cast<uint8_t>(escaped[pos]) >> 4], escaped.size() - pos);
    const std::string c = escaped.substr(pos, len);
    out += c == kSp ? " " : c;
    pos += len;
  }
  return out.substr(1);
}

std::string random_text(std::mt19937& rng) {
  std::string s;
  const auto pick = [&](uint32_t lo, uint32_t hi) { return lo + rng() % (hi - lo + 1); };
  const int parts = static_cast<int>(rng() % 12);
  for (int p = 0; p < parts; ++p) {
    const int count = 1 + static_cast<int>(rng() % 5);
    switch (rng() % 10) {
      case 0:  // ASCII words and punctuation
        for (int i = 0; i < count; ++i) s += static_cast<char>(pick(0x21, 0x7E));
        break;
      case 1:  // CJK
        for (int i = 0; i < count; ++i) utf8_append(s, pick(0x4E00, 0x9FFF));
        break;
      case 2:  // emoji, with ZWJ sequences and variation selectors
        for (int i = 0; i < count; ++i) {
          utf8_append(s, pick(0x1F300, 0x1FAFF));
          if (rng() % 3 == 0) utf8_append(s, rng() % 2 ? 0x200D : 0xFE0F);
        }
        break;
      case 3:  // letters with combining marks
        for (int i = 0; i < count; ++i) {
          s += static_cast<char>(pick('a', 'z'));
          for (uint32_t k = rng() % 3; k > 0; --k) utf8_append(s, pick(0x0300, 0x036F));
        }
        break;
      case 4: {  // whitespace runs
        const char32_t spaces[] = {' ', ' ', ' ', '\t', '\n', '\r', 0xA0, 0x3000, 0x2028};
        for (int i = 0; i < count * 2; ++i) utf8_append(s, spaces[rng() % 9]);
        break;
      }
      case 5:  // control characters, NUL included
        for (int i = 0; i < count; ++i) {
          const uint32_t r = rng() % 3;
          utf8_append(s, r == 0 ? pick(0, 0x1F) : r == 1 ? 0x7F : pick(0x80, 0x9F));
        }
        break;
      case 6:  // other scripts: Cyrillic, Arabic, Devanagari, Hangul
        for (int i = 0; i < count; ++i) {
          const uint32_t lo[] = {0x0400, 0x0600, 0x0900, 0xAC00};
          const uint32_t r = rng() % 4;
          utf8_append(s, pick(lo[r], lo[r] + 0x7F));
        }
        break;
      case 7: {  // invalid UTF-8: stray, truncated, overlong, surrogate, out-of-range bytes
        const std::string bad[] = {"\x80",         "\xBF",     "\xC3",         "\xE4\xBD",
                                   "\xF0\x9F\x98", "\xC0\xAF", "\xED\xA0\x80", "\xF5\x80\x80\x80",
                                   "\xFF",         "\xFE"};
        for (int i = 0; i < count; ++i) s += bad[rng() % 10];
        break;
      }
      case 8:  // the SentencePiece space mark itself
        s += kSp;
        break;
      default:  // a plain word, often after a space
        s += rng() % 2 ? " the" : "Hello";
        break;
    }
  }
  return s;
}

// Seeded random Unicode and malformed text through encode/decode: ids in range, and the
// decoded text exactly as predicted (identical to the input for valid UTF-8 without U+2581).
TEST(SpmLlamaRoundTrip, RandomUnicode) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  const SpmTokenizer& tok = llama_spm();
  ASSERT_NE(tok.find_token(kSp), kNoToken);
  ASSERT_NE(tok.find_token("<0x00>"), kNoToken);
  std::mt19937 rng(7);
  int exact = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const std::string s = random_text(rng);
    for (const bool add_special : {false, true}) {
      const Ids ids = tok.encode(s, add_special);
      for (const TokenId id : ids) {
        ASSERT_GE(id, 0);
        ASSERT_LT(static_cast<size_t>(id), tok.vocab().size());
      }
      ASSERT_EQ(tok.decode(ids), expected_round_trip(s)) << "trial " << trial;
    }
    if (utf8_is_valid(s) && s.find(kSp) == std::string::npos) {
      EXPECT_EQ(tok.decode(tok.encode(s, true)), s);
      ++exact;
    }
  }
  EXPECT_GT(exact, 500);  // the generator does produce plenty of valid text
}

// The predictor itself on hand-picked cases, so a wrong predictor cannot hide a wrong decoder.
TEST(SpmLlamaRoundTrip, PredictedCases) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  const SpmTokenizer& tok = llama_spm();
  const std::pair<std::string, std::string> cases[] = {
      {"a b", "a b"},
      {"\xE2\x96\x81x", " x"},  // U+2581 decodes as a space
      {"\xF0 a",
       "\xF0\xE2\x96\x81"
       "a"},  // F0 swallows the escaped space
      {"\xC3", "\xC3"},
      {std::string("\0 \x7F", 3), std::string("\0 \x7F", 3)},
      {"  \n\t ", "  \n\t "},
  };
  for (const auto& [in, out] : cases) {
    EXPECT_EQ(expected_round_trip(in), out);
    EXPECT_EQ(tok.decode(tok.encode(in, true)), out);
  }
}

// SpmTokenizer::from_gguf reads the llama-spm vocab exactly like the generic path: same ids on
// the reference inputs, no extra special tokens, eos as the only end-of-generation id.
TEST(SpmLlamaRoundTrip, FromGgufMatchesGenericFactory) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  const gguf::File file = gguf::File::open(test::shared_path(kLlamaVocab));
  const auto generic = Tokenizer::from_gguf(file);
  const SpmTokenizer& tok = llama_spm();
  EXPECT_EQ(tok.special_tokens().eog, (Ids{2}));
  EXPECT_EQ(tok.eot(), kNoToken);
  EXPECT_EQ(tok.special_tokens().partition_order, (Ids{0, 2, 1}));  // "<unk>", "</s>", "<s>"
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const std::string s = random_text(rng) + "<s>" + random_text(rng) + "</s>";
    EXPECT_EQ(tok.encode(s, true, true), generic->encode(s, true, true));
    EXPECT_EQ(tok.encode(s, false, false), generic->encode(s, false, false));
  }
}

}  // namespace
}  // namespace llmos
