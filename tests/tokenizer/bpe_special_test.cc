// Byte-level BPE special tokens as llama.cpp settles them: tokens forced to control by text
// (matched only with parse_special, end of generation), eot/FIM ids from keys or by text,
// lstrip/rstrip by model name, the gpt-oss "<|end|>" rule; and BpeTokenizer::from_gguf's
// defaults (bos = eos = 11, none for glm4) and int32 scores, on GGUF images built with
// gguf::Writer. The expected ids on the GPT-2 vocab were taken from llama.cpp (through
// llama-cpp-python) on the same vocab with the same token overrides.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

using Ids = std::vector<TokenId>;
using gguf::Array;
using gguf::Value;
using gguf::ValueType;

// ---- hand-built vocabs ------------------------------------------------------------------------

std::string enc(std::string_view raw) {
  std::string out;
  for (const char b : raw) unicode_append_utf8(out, byte_to_unicode(static_cast<uint8_t>(b)));
  return out;
}

// 0 "a", 1 "b", 2 "ab", 3 " ", then special-looking tokens, all typed as the file would.
enum : TokenId { A, B, AB, SP, IM_END, ENDOFTEXT, FIM_PRE, FIM_SEP, USER, MASK, UNUSED, S_END };
Vocab small_vocab() {
  Vocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  v.tokens = {"a",           "b",        "ab",     enc(" "),       "<|im_end|>", "<|endoftext|>",
              "<|fim_prefix|>", "<|file_sep|>", "<|user|>", "[MASK]", "<|unused_3|>", "</s>"};
  v.types.assign(v.tokens.size(), TokenType::kNormal);  // the converter typed them all normal
  v.types[USER] = TokenType::kUserDefined;
  v.types[MASK] = TokenType::kUserDefined;
  v.types[UNUSED] = TokenType::kControl;
  v.types[S_END] = TokenType::kControl;
  v.merges = {"a b"};
  return v;
}

TEST(BpeSpecial, TextForcesControlAndEndOfGeneration) {
  const BpeTokenizer tok(small_vocab());
  // "<|im_end|>" and "<|endoftext|>" are typed normal, yet llama.cpp makes them control.
  EXPECT_NE(tok.token_attrs(IM_END) & kAttrControl, 0u);
  EXPECT_NE(tok.token_attrs(ENDOFTEXT) & kAttrControl, 0u);
  EXPECT_NE(tok.token_attrs(FIM_PRE) & kAttrControl, 0u);
  EXPECT_EQ(tok.token_attrs(A), kAttrNormal);
  // So they are matched in text only with parse_special ('<', '|' ... are no tokens: dropped).
  EXPECT_EQ(tok.encode("ab<|im_end|>a", false, true), (Ids{AB, IM_END, A}));
  EXPECT_EQ(tok.encode("ab<|im_end|>a", false, false), (Ids{AB, A}));
  EXPECT_EQ(tok.encode("<|endoftext|><|fim_prefix|>b", false, true), (Ids{ENDOFTEXT, FIM_PRE, B}));
  // User-defined ones always are.
  EXPECT_EQ(tok.encode("a<|user|>b", false, false), (Ids{A, USER, B}));
  // eot by text, first of llama.cpp's list; FIM ids by text.
  EXPECT_EQ(tok.eot(), IM_END);
  EXPECT_EQ(tok.eom(), kNoToken);
  EXPECT_EQ(tok.special_tokens().fim_pre, FIM_PRE);
  EXPECT_EQ(tok.special_tokens().fim_sep, FIM_SEP);
  // End of generation: the texts in llama.cpp's list and fim_sep; not "<|user|>".
  EXPECT_EQ(tok.special_tokens().eog, (Ids{IM_END, ENDOFTEXT, FIM_SEP, S_END}));
  EXPECT_TRUE(tok.is_eog(IM_END));
  EXPECT_FALSE(tok.is_eog(USER));
  EXPECT_FALSE(tok.is_eog(A));
  // Control tokens whose text says "unused" are also unused.
  EXPECT_EQ(tok.token_attrs(UNUSED), kAttrControl | kAttrUnused);
  EXPECT_THROW(tok.token_attrs(S_END + 1), Error);
}

TEST(BpeSpecial, PiecesFollowTheSettledAttributes) {
  const BpeTokenizer tok(small_vocab());
  // Forced to control: printed only with special (the file's normal type no longer counts).
  EXPECT_EQ(tok.token_to_piece(IM_END), "");
  EXPECT_EQ(tok.token_to_piece(IM_END, true), "<|im_end|>");
  EXPECT_EQ(tok.token_to_piece(USER), "<|user|>");
  EXPECT_EQ(tok.token_to_piece(SP), " ");
  EXPECT_EQ(tok.decode({AB, IM_END, SP, A}), "ab a");
  EXPECT_EQ(tok.decode({AB, IM_END, SP, A}, true), "ab<|im_end|> a");
}

TEST(BpeSpecial, KeysOverrideTextLookups) {
  SpecialTokenKeys keys;
  keys.eot = USER;
  keys.fim_pre = MASK;
  const BpeTokenizer tok(small_vocab(), keys);
  EXPECT_EQ(tok.eot(), USER);
  EXPECT_EQ(tok.special_tokens().fim_pre, MASK);
  EXPECT_TRUE(tok.is_eog(USER));      // eot always ends generation
  EXPECT_TRUE(tok.is_eog(IM_END));    // still in llama.cpp's list by text
  // "<|fim_prefix|>" was not looked up, so it stays a normal token and plain text.
  EXPECT_EQ(tok.token_attrs(FIM_PRE), kAttrNormal);
  EXPECT_EQ(tok.encode("<|fim_prefix|>", false, true), Ids{});
}

TEST(BpeSpecial, StripAttributesByModelName) {
  SpecialTokenKeys phi3;
  phi3.model_name = "Phi-3-mini";
  const BpeTokenizer tok(small_vocab(), phi3);
  // Every special token swallows the whitespace after it ("<|endoftext|>" excepted) ...
  EXPECT_EQ(tok.encode("<|user|>  ab", false, false), (Ids{USER, AB}));
  EXPECT_EQ(tok.encode("<|im_end|>\n\t a", false, true), (Ids{IM_END, A}));
  EXPECT_EQ(tok.encode("<|endoftext|> a", false, true), (Ids{ENDOFTEXT, SP, A}));
  // ... but not the whitespace before it.
  EXPECT_EQ(tok.encode("a <|user|>", false, false), (Ids{A, SP, USER}));
  // Without the name, nothing is stripped.
  EXPECT_EQ(BpeTokenizer(small_vocab()).encode("<|user|>  ab", false, false),
            (Ids{USER, SP, SP, AB}));

  SpecialTokenKeys modern_bert;
  modern_bert.model_name = "modern-bert-base";
  const BpeTokenizer mb(small_vocab(), modern_bert);
  EXPECT_NE(mb.token_attrs(MASK) & kAttrLstrip, 0u);
  EXPECT_EQ(mb.encode("ab  [MASK] a", false, false), (Ids{AB, MASK, SP, A}));
}

// ---- GPT-2 vocab with special-token overrides (expectations from llama.cpp) -------------------

constexpr const char* kGpt2Vocab = "vocab/ggml-vocab-gpt-2.gguf";

// The GPT-2 vocab with tokens 50200.. renamed to special texts (typed as given): the same
// overrides as the variants of the file that llama.cpp loaded to give the expected ids below.
Vocab gpt2_with_specials() {
  Vocab v = Vocab::from_gguf(gguf::File::open(test::shared_path(kGpt2Vocab)));
  const struct {
    TokenId id;
    const char* text;
    TokenType type;
  } overrides[] = {
      {50200, "<unk>", TokenType::kUnknown},         {50201, "<s>", TokenType::kControl},
      {50202, "</s>", TokenType::kControl},          {50203, "<|user|>", TokenType::kUserDefined},
      {50204, "<|end|>", TokenType::kControl},       {50205, "<mask>", TokenType::kUserDefined},
      {50206, "[MASK]", TokenType::kUserDefined},    {50207, "<|im_end|>", TokenType::kNormal},
      {50208, "<|return|>", TokenType::kControl},    {50209, "<|call|>", TokenType::kControl},
      {50210, "<|fim_prefix|>", TokenType::kNormal}, {50211, "<|file_sep|>", TokenType::kNormal},
      {50212, "<|eom_id|>", TokenType::kControl},    {50213, "<|unused_0|>", TokenType::kControl},
  };
  for (const auto& o : overrides) {
    v.tokens[o.id] = o.text;
    v.types[o.id] = o.type;
  }
  return v;
}

TEST(BpeSpecialGpt2, SettledLikeLlamaCpp) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const BpeTokenizer tok(gpt2_with_specials());
  // llama.cpp: eog [50202, 50207, 50208, 50209, 50211, 50212, 50256]; "<|end|>" leaves it
  // (and becomes user-defined) because "<|return|>" and "<|call|>" end generation too.
  EXPECT_EQ(tok.special_tokens().eog, (Ids{50202, 50207, 50208, 50209, 50211, 50212, 50256}));
  EXPECT_EQ(tok.token_attrs(50204), kAttrUserDefined);
  EXPECT_EQ(tok.token_attrs(50207), kAttrNormal | kAttrControl);
  EXPECT_EQ(tok.token_attrs(50213), kAttrControl | kAttrUnused);
  EXPECT_EQ(tok.eom(), 50212);
  EXPECT_EQ(tok.special_tokens().fim_pre, 50210);
  EXPECT_EQ(tok.special_tokens().fim_sep, 50211);
  EXPECT_EQ(tok.encode("<|im_end|> a", false, true), (Ids{50207, 257}));
  EXPECT_EQ(tok.encode("<|im_end|> a", false, false), (Ids{27, 91, 320, 62, 437, 91, 29, 257}));
  EXPECT_EQ(tok.encode("<|fim_prefix|>x<|file_sep|>", false, true), (Ids{50210, 87, 50211}));
  EXPECT_EQ(tok.encode("<|return|><|call|><|end|>", false, true), (Ids{50208, 50209, 50204}));
  EXPECT_EQ(tok.encode("<|return|><|call|><|end|>", false, false),
            (Ids{27, 91, 7783, 91, 6927, 91, 13345, 91, 29, 50204}));
  EXPECT_EQ(tok.encode("a<|unused_0|>b", false, true), (Ids{64, 50213, 65}));
}

TEST(BpeSpecialGpt2, Phi3NameStripsLikeLlamaCpp) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  SpecialTokenKeys keys;
  keys.model_name = "Phi-3 mini gpt2 test";
  const BpeTokenizer tok(gpt2_with_specials(), keys);
  EXPECT_EQ(tok.token_attrs(50204), kAttrUserDefined | kAttrRstrip);
  EXPECT_EQ(tok.token_attrs(50200), kAttrUnknown);  // "<unk>" keeps no rstrip
  EXPECT_EQ(tok.encode("a  <|user|>  b", false, true), (Ids{64, 220, 220, 50203, 65}));
  EXPECT_EQ(tok.encode("<|end|>\n hi </s>  z<s> <unk> x", false, true),
            (Ids{50204, 5303, 220, 50202, 89, 50201, 220, 50200, 2124}));
  EXPECT_EQ(tok.encode("<|end|>\n hi </s>  z<s> <unk> x", false, false),
            (Ids{50204, 5303, 7359, 82, 29, 220, 1976, 27, 82, 29, 1279, 2954, 29, 2124}));
  EXPECT_EQ(tok.encode("<|endoftext|>  a", false, true), (Ids{50256, 220, 257}));
}

TEST(BpeSpecialGpt2, ModernBertMaskLstripLikeLlamaCpp) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  SpecialTokenKeys keys;
  keys.model_name = "modern-bert-base";
  const BpeTokenizer tok(gpt2_with_specials(), keys);
  EXPECT_EQ(tok.encode("x  [MASK]  y", false, true), (Ids{87, 50206, 220, 331}));
  EXPECT_EQ(tok.encode("x <mask> y", false, true), (Ids{87, 220, 50205, 331}));
}

TEST(BpeSpecialGpt2, RealFileEndOfGeneration) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = BpeTokenizer::from_gguf(gguf::File::open(test::shared_path(kGpt2Vocab)));
  EXPECT_EQ(tok->vocab().bos, 50256);
  EXPECT_EQ(tok->vocab().eos, 50256);
  EXPECT_EQ(tok->eot(), 50256);
  EXPECT_EQ(tok->special_tokens().eog, Ids{50256});
  EXPECT_EQ(tok->token_attrs(50256), kAttrControl);
}

// ---- BpeTokenizer::from_gguf ------------------------------------------------------------------

Array string_array(const std::vector<std::string>& items) {
  Array a{ValueType::kString, {}};
  for (const std::string& s : items) a.items.emplace_back(s);
  return a;
}

// A 13-token "gpt2" vocab without bos/eos keys; 11 is "<|endoftext|>" as in Falcon.
struct Image {
  gguf::Writer writer;
  explicit Image(const char* pre = "gpt-2") {
    std::vector<std::string> tokens = {"a", "b", "ab", enc(" ")};
    for (int i = 4; i < 11; ++i) tokens.push_back("t" + std::to_string(i));
    tokens.push_back("<|endoftext|>");
    tokens.push_back("<|im_start|>");
    writer.set("tokenizer.ggml.model", Value("gpt2"));
    writer.set("tokenizer.ggml.pre", Value(pre));
    writer.set("tokenizer.ggml.tokens", Value(string_array(tokens)));
    writer.set("tokenizer.ggml.merges", Value(string_array({"a b"})));
    writer.set("general.name", Value("test"));
  }
  gguf::File file() const {
    auto bytes = std::make_shared<std::vector<uint8_t>>(writer.to_bytes());
    return gguf::File::parse(bytes, bytes->data(), bytes->size(), "bpe.gguf");
  }
};

template <typename F>
void expect_error(F&& f, StatusCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(BpeFromGguf, DefaultBosAndEosAreEleven) {
  const Image image;
  const auto tok = BpeTokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->vocab().bos, 11);
  EXPECT_EQ(tok->vocab().eos, 11);
  EXPECT_TRUE(tok->is_eog(11));
  EXPECT_EQ(tok->vocab().unk, kNoToken);
  EXPECT_EQ(tok->vocab().pad, kNoToken);
  // Tokenizer::from_gguf takes the same path.
  const auto generic = Tokenizer::from_gguf(image.file());
  ASSERT_NE(dynamic_cast<const BpeTokenizer*>(generic.get()), nullptr);
  EXPECT_EQ(generic->vocab().bos, 11);
  // The converters' "none" also leaves the default in place; a real id replaces it.
  Image none;
  none.writer.set("tokenizer.ggml.bos_token_id", Value(uint32_t{0xFFFFFFFF}));
  none.writer.set("tokenizer.ggml.eos_token_id", Value(uint32_t{12}));
  const auto t2 = BpeTokenizer::from_gguf(none.file());
  EXPECT_EQ(t2->vocab().bos, 11);
  EXPECT_EQ(t2->vocab().eos, 12);
  // add_bos (Llama-3 style) then adds that default.
  Image llama3("llama-bpe");
  EXPECT_EQ(BpeTokenizer::from_gguf(llama3.file())->encode("ab", true), (Ids{11, AB}));
}

TEST(BpeFromGguf, GlmHasNoDefaultBos) {
  for (const char* pre : {"glm4", "chatglm-bpe"}) {
    const auto tok = BpeTokenizer::from_gguf(Image(pre).file());
    EXPECT_EQ(tok->vocab().bos, kNoToken) << pre;
    EXPECT_EQ(tok->vocab().eos, 11) << pre;
  }
}

TEST(BpeFromGguf, NoDefaultOutsideTheVocab) {
  gguf::Writer w;
  w.set("tokenizer.ggml.model", Value("gpt2"));
  w.set("tokenizer.ggml.tokens", Value(string_array({"a", "b", "ab"})));
  w.set("tokenizer.ggml.merges", Value(string_array({"a b"})));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  const auto tok =
      BpeTokenizer::from_gguf(gguf::File::parse(bytes, bytes->data(), bytes->size(), "x.gguf"));
  EXPECT_EQ(tok->vocab().bos, kNoToken);
  EXPECT_EQ(tok->vocab().eos, kNoToken);
  EXPECT_EQ(tok->special_tokens().eog, Ids{});
}

TEST(BpeFromGguf, ReadsSpecialTokenKeys) {
  Image image;
  image.writer.set("tokenizer.ggml.eot_token_id", Value(uint32_t{12}));
  image.writer.set("general.name", Value("Phi-3 something"));
  const auto tok = BpeTokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->eot(), 12);
  EXPECT_TRUE(tok->is_eog(12));
  EXPECT_NE(tok->token_attrs(11) & kAttrControl, 0u);  // "<|endoftext|>" by text
  // The Phi-3 name gives rstrip to special tokens, though not to "<|endoftext|>".
  EXPECT_EQ(tok->token_attrs(11) & kAttrRstrip, 0u);
}

TEST(BpeFromGguf, Int32ScoresAreAccepted) {
  Image image;
  Array scores{ValueType::kInt32, {}};
  for (int32_t i = 0; i < 13; ++i) scores.items.emplace_back(int32_t{-i});
  image.writer.set("tokenizer.ggml.scores", Value(scores));
  const auto tok = BpeTokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->vocab().scores[0], 0.0f);
  EXPECT_EQ(tok->vocab().scores[12], -12.0f);
  EXPECT_EQ(tok->encode("ab", false), Ids{AB});
}

TEST(BpeFromGguf, Errors) {
  Image llama;
  llama.writer.set("tokenizer.ggml.model", Value("llama"));
  const gguf::File f1 = llama.file();
  expect_error([&] { BpeTokenizer::from_gguf(f1); }, StatusCode::kUnsupported,
               "bpe.gguf: tokenizer model 'llama' (tokenizer.ggml.model) is not byte-level BPE");
  const gguf::File f2 = Image("no-such-pre").file();
  expect_error([&] { BpeTokenizer::from_gguf(f2); }, StatusCode::kUnsupported,
               "pre-tokenizer 'no-such-pre' (tokenizer.ggml.pre) is not supported");
  gguf::Writer w;
  w.set("tokenizer.ggml.model", Value("gpt2"));
  w.set("tokenizer.ggml.tokens", Value(string_array({"a"})));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  const gguf::File f3 = gguf::File::parse(bytes, bytes->data(), bytes->size(), "m.gguf");
  expect_error([&] { BpeTokenizer::from_gguf(f3); }, StatusCode::kFormat,
               "m.gguf: missing required key 'tokenizer.ggml.merges'");
  Image doubles;
  Array scores{ValueType::kFloat64, {}};
  for (int i = 0; i < 13; ++i) scores.items.emplace_back(double{0});
  doubles.writer.set("tokenizer.ggml.scores", Value(scores));
  const gguf::File f4 = doubles.file();
  expect_error([&] { BpeTokenizer::from_gguf(f4); }, StatusCode::kFormat,
               "tokenizer.ggml.scores");
}

}  // namespace
}  // namespace llmos
