// TextStream with real vocabularies (stories260K's SentencePiece vocab with byte fallback, and
// GPT-2's byte-level BPE), driven the way the engine drives it: after every generated token
// update() + find_stop() (when there are stop strings) + take_ready(), and at the end
// take_rest(stopped) / final_text(stopped). Checks that the deltas add up to the whole text, that
// every delta is valid UTF-8 when the text is (characters split across byte tokens are held
// back), and that nothing from the first stop string on is ever handed out.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/text_stream.h"
#include "io/gguf_reader.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace llmos {
namespace {

constexpr const char* kSpmModel = "models/stories260K.gguf";
constexpr const char* kGpt2Vocab = "vocab/ggml-vocab-gpt-2.gguf";

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& relative) {
  return Tokenizer::from_gguf(gguf::File::open(test::shared_path(relative)));
}

// Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

struct Streamed {
  std::vector<std::string> deltas;  // take_ready after each token
  std::string rest;                 // take_rest at the end
  std::string final_text;
  bool stopped = false;
  size_t tokens_consumed = 0;  // tokens generated when the stream ended
  std::string emitted() const {
    std::string all;
    for (const auto& d : deltas) all += d;
    return all + rest;
  }
};

// One request's generation as the engine streams it.
Streamed stream(const Tokenizer& tok, const std::vector<int32_t>& tokens,
                const std::vector<std::string>& stops) {
  TextStream ts;
  Streamed out;
  std::vector<int32_t> generated;
  for (int32_t t : tokens) {
    generated.push_back(t);
    ts.update(tok, generated);
    const bool hit = !stops.empty() && ts.find_stop(stops);
    out.deltas.push_back(ts.take_ready(stops));
    if (hit) {
      out.stopped = true;
      break;
    }
  }
  out.tokens_consumed = generated.size();
  out.rest = ts.take_rest(out.stopped);
  out.final_text = ts.final_text(out.stopped);
  return out;
}

// Earliest position of any stop string in `text`, or npos.
size_t first_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t at = std::string::npos;
  for (const auto& s : stops) at = std::min(at, text.find(s));
  return at;
}

// The text TextStream streams for `tokens`: their pieces concatenated. Unlike decode() it keeps
// a SentencePiece dummy-prefix space on the first piece, so that prompt + generated text reads
// as one text (see TextStream::update).
std::string stream_text(const Tokenizer& tok, const std::vector<int32_t>& tokens,
                        size_t n = std::string::npos) {
  std::string out;
  for (size_t i = 0; i < std::min(n, tokens.size()); ++i) out += tok.token_to_piece(tokens[i]);
  return out;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, const Tokenizer& tok, int max_len) {
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(tok.vocab().size()) - 1);
  std::vector<int32_t> out(
      static_cast<size_t>(std::uniform_int_distribution<int>(1, max_len)(rng)));
  for (auto& t : out) t = id(rng);
  return out;
}

// Random text mixing ASCII words with 2-, 3- and 4-byte characters (most of them not in the
// small SPM vocab, so they come out as byte tokens; GPT-2 splits them across byte-pair tokens).
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> pieces{
      "the", " cat", " sat", " on", " a", " mat", ".", " Lily", " was",   " happy", "\n", " ", "é",
      "ü",   "ß",    "你",   "好",  "€",  "日本", "😀", "🎉",     " naïve", " café",  "—",  "ab"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(1, 24)(rng);
  for (int i = 0; i < n; ++i)
    s += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
  return s;
}

class TextStreamVocab : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    LLMOS_REQUIRE_SHARED(GetParam());
    tok_ = load_tokenizer(GetParam());
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_P(TextStreamVocab, RandomTokensDeltasAddUpToTheDecodedText) {
  std::mt19937 rng(1234);
  int held_back = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const std::vector<int32_t> tokens = random_tokens(rng, *tok_, 30);
    const std::string text = stream_text(*tok_, tokens);
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    const Streamed s = stream(*tok_, tokens, {});
    EXPECT_FALSE(s.stopped);
    ASSERT_EQ(s.emitted(), text);
    EXPECT_EQ(s.final_text, text);
    if (!s.rest.empty()) ++held_back;
  }
  // Random byte tokens leave incomplete characters at the end now and then; they must reach
  // the client through take_rest.
  EXPECT_GT(held_back, 0);
}

TEST_P(TextStreamVocab, ValidTextGivesValidDeltasEvenWhenTokensSplitCharacters) {
  std::mt19937 rng(99);
  int splits = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<int32_t> tokens = tok_->encode(random_text(rng), /*add_special=*/false);
    const std::string text = stream_text(*tok_, tokens);
    ASSERT_TRUE(valid_utf8(text));
    for (size_t i = 1; i < tokens.size(); ++i) {
      if (!valid_utf8(stream_text(*tok_, tokens, i))) ++splits;
    }
    SCOPED_TRACE(::testing::Message() << "text '" << text << "'");
    const Streamed s = stream(*tok_, tokens, {});
    for (size_t i = 0; i < s.deltas.size(); ++i)
      ASSERT_TRUE(valid_utf8(s.deltas[i])) << "delta " << i << " is not valid UTF-8";
    ASSERT_TRUE(valid_utf8(s.rest));
    ASSERT_EQ(s.emitted(), text);
  }
  EXPECT_GT(splits, 20) << "no token boundary fell inside a character: the test proves little";
}

// Stop strings drawn from the text itself (so they hit) and some that never occur.
TEST_P(TextStreamVocab, NothingFromTheFirstStopStringOnIsHandedOut) {
  std::mt19937 rng(7);
  int stopped = 0, straddled = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const std::vector<int32_t> tokens = tok_->encode(random_text(rng) + random_text(rng), false);
    const std::string text = stream_text(*tok_, tokens);
    std::vector<std::string> stops;
    const int n_stops = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int k = 0; k < n_stops; ++k) {
      if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
        stops.push_back("<never " + std::to_string(k) + ">");
        continue;
      }
      const size_t len =
          std::uniform_int_distribution<size_t>(1, std::min<size_t>(8, text.size()))(rng);
      const size_t at = std::uniform_int_distribution<size_t>(0, text.size() - len)(rng);
      stops.push_back(text.substr(at, len));  // may cut a character: fine for a byte search
    }
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " text '" << text << "'");
    const Streamed s = stream(*tok_, tokens, stops);
    const size_t q = first_stop(text, stops);
    if (q == std::string::npos) {
      EXPECT_FALSE(s.stopped);
      EXPECT_EQ(s.emitted(), text);
      continue;
    }
    ++stopped;
    ASSERT_TRUE(s.stopped) << "stop string at byte " << q << " not found";
    // It stops at the first token whose text contains a stop string...
    size_t expect_tokens = 0;
    for (size_t i = 1; i <= tokens.size(); ++i) {
      const std::string prefix = stream_text(*tok_, tokens, i);
      if (first_stop(prefix, stops) != std::string::npos) {
        expect_tokens = i;
        break;
      }
    }
    ASSERT_EQ(s.tokens_consumed, expect_tokens);
    // ...and hands out exactly the text before the first stop string in the text generated
    // so far, in deltas and in the final text. (That can start later than the first stop in
    // the whole text: a short stop string may complete before a longer, earlier-starting one.)
    const std::string at_stop = stream_text(*tok_, tokens, expect_tokens);
    const size_t cut = first_stop(at_stop, stops);
    EXPECT_GE(cut, q);
    EXPECT_EQ(s.emitted(), text.substr(0, cut));
    EXPECT_EQ(s.final_text, text.substr(0, cut));
    // A stop string that spans the last two tokens' texts was found across updates.
    const std::string before_last = stream_text(*tok_, tokens, expect_tokens - 1);
    if (cut < before_last.size()) ++straddled;
  }
  EXPECT_GT(stopped, 100);
  EXPECT_GT(straddled, 10);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TextStreamVocab, ::testing::Values(kSpmModel, kGpt2Vocab),
                         [](const auto& p) {
                           return std::string(p.param == std::string(kSpmModel) ? "spm" : "gpt2");
                         });

// ---- targeted SPM cases --------------------------------------------------------------------

class TextStreamSpm : public ::testing::Test {
 protected:
  void SetUp() override {
    LLMOS_REQUIRE_SHARED(kSpmModel);
    tok_ = load_tokenizer(kSpmModel);
  }
  int32_t byte_token(int b) const {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto& toks = tok_->vocab().tokens;
    const auto it = std::find(toks.begin(), toks.end(), std::string(name));
    EXPECT_NE(it, toks.end()) << name;
    return static_cast<int32_t>(it - toks.begin());
  }
  std::vector<int32_t> enc(const std::string& s) const { return tok_->encode(s, false); }
  std::string text_of(const std::vector<int32_t>& tokens) const {
    return stream_text(*tok_, tokens);
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TextStreamSpm, ThreeByteCharacterFromByteTokensIsHeldUntilComplete) {
  std::vector<int32_t> tokens = enc("Lily");
  const std::string lily = text_of(tokens);
  const size_t lead = tokens.size();
  for (int b : {0xE4, 0xBD, 0xA0}) tokens.push_back(byte_token(b));  // U+4F60
  const std::vector<int32_t> sat = enc("sat");  // "▁sat": a space, then "sat"
  tokens.insert(tokens.end(), sat.begin(), sat.end());
  const Streamed s = stream(*tok_, tokens, {});
  ASSERT_EQ(s.deltas.size(), tokens.size());
  std::string before;
  for (size_t i = 0; i < lead; ++i) before += s.deltas[i];
  EXPECT_EQ(before, lily) << "complete text goes out at once";
  EXPECT_EQ(s.deltas[lead], "") << "a lone lead byte is held";
  EXPECT_EQ(s.deltas[lead + 1], "") << "two of three bytes are held";
  EXPECT_EQ(s.deltas[lead + 2], "\xE4\xBD\xA0");
  EXPECT_EQ(s.emitted(), lily + "\xE4\xBD\xA0" + text_of(sat));
  EXPECT_EQ(s.rest, "");
}

TEST_F(TextStreamSpm, IncompleteCharacterAtTheEndComesOutInTakeRest) {
  std::vector<int32_t> tokens = enc("Tom");
  tokens.push_back(byte_token(0xF0));
  tokens.push_back(byte_token(0x9F));
  const Streamed s = stream(*tok_, tokens, {});
  EXPECT_EQ(s.deltas.back(), "");
  EXPECT_EQ(s.rest, "\xF0\x9F");
  EXPECT_EQ(s.emitted(), text_of(enc("Tom")) + "\xF0\x9F");
}

TEST_F(TextStreamSpm, StopStringStraddlingTwoTokensIsFoundAndCut) {
  const std::vector<int32_t> tokens = enc("Once upon a time there was a little girl");
  const std::string text = text_of(tokens);
  // Pick the boundary between two tokens in the middle; the stop string is the two bytes
  // either side of it, so neither token's text contains it alone.
  size_t boundary_tokens = 0, boundary_byte = 0;
  for (size_t i = tokens.size() / 2; i < tokens.size(); ++i) {
    const std::string prefix = stream_text(*tok_, tokens, i);
    if (prefix.size() >= 2 && text.size() - prefix.size() >= 2 &&
        text.find(text.substr(prefix.size() - 2, 4)) == prefix.size() - 2) {
      boundary_tokens = i;
      boundary_byte = prefix.size();
      break;
    }
  }
  ASSERT_GT(boundary_tokens, 0u);
  const std::string stop = text.substr(boundary_byte - 2, 4);
  const Streamed s = stream(*tok_, tokens, {"zzzzzz", stop});
  EXPECT_TRUE(s.stopped);
  // The token that completes the stop string may be the next one or a later one (if the next
  // token is a single byte); it is never the one before the boundary.
  EXPECT_GT(s.tokens_consumed, boundary_tokens);
  EXPECT_EQ(s.emitted(), text.substr(0, boundary_byte - 2)) << "stop '" << stop << "'";
  EXPECT_EQ(s.final_text, text.substr(0, boundary_byte - 2));
}

TEST_F(TextStreamSpm, TextThatMayStartAStopStringIsHeldBack) {
  const std::vector<int32_t> tokens = enc("The cat sat on the mat and the dog ran");
  const std::vector<std::string> stops{"NEVER-MATCHES"};  // 13 bytes: hold back 12
  TextStream ts;
  std::vector<int32_t> generated;
  std::string emitted;
  for (int32_t t : tokens) {
    generated.push_back(t);
    ts.update(*tok_, generated);
    ASSERT_FALSE(ts.find_stop(stops));
    emitted += ts.take_ready(stops);
    const std::string now = text_of(generated);
    ASSERT_LE(emitted.size() + stops[0].size() - 1, std::max(now.size(), stops[0].size() - 1))
        << "handed out text that could still begin a stop string";
    ASSERT_EQ(now.compare(0, emitted.size(), emitted), 0);
  }
  emitted += ts.take_rest(false);
  EXPECT_EQ(emitted, text_of(tokens));
}

TEST_F(TextStreamSpm, StopInTheFirstTokenHandsOutOnlyWhatPrecedesIt) {
  const std::vector<int32_t> tokens = enc("Once upon a time");
  const std::string text = text_of(tokens);
  const Streamed s = stream(*tok_, tokens, {"Once"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.emitted(), text.substr(0, text.find("Once")));  // at most the dummy-prefix space
  EXPECT_EQ(s.final_text, s.emitted());
  const Streamed whole = stream(*tok_, tokens, {text.substr(0, 3)});
  EXPECT_TRUE(whole.stopped);
  EXPECT_EQ(whole.emitted(), "");
  EXPECT_EQ(whole.final_text, "");
}

TEST_F(TextStreamSpm, EarliestOfSeveralStopStringsWins) {
  const std::vector<int32_t> tokens = enc("Once upon a time there was a girl");
  const std::string text = text_of(tokens);
  // Whichever stop string starts first in the text cuts it, whatever their order or length.
  const Streamed a = stream(*tok_, tokens, {"there", "a time"});
  EXPECT_EQ(a.final_text, text.substr(0, text.find("a time")));
  EXPECT_EQ(a.emitted(), a.final_text);
  const Streamed b = stream(*tok_, tokens, {"girl", "there", "upon a"});
  EXPECT_EQ(b.final_text, text.substr(0, text.find("upon a")));
  EXPECT_EQ(b.emitted(), b.final_text);
}

TEST_F(TextStreamSpm, EndedByAStopTokenKeepsTheWholeText) {
  // finish reason kStop from a stop token id (no stop string found): nothing is cut.
  const std::vector<int32_t> tokens = enc("Tom had a dog");
  const std::string text = text_of(tokens);
  TextStream ts;
  ts.update(*tok_, tokens);
  const std::vector<std::string> stops{"cat"};
  EXPECT_FALSE(ts.find_stop(stops));
  const std::string ready = ts.take_ready(stops);
  EXPECT_EQ(ready + ts.take_rest(/*stopped=*/true), text);
  EXPECT_EQ(ts.final_text(true), text);
  EXPECT_EQ(ts.take_rest(true), "") << "handed out twice";
}

}  // namespace
}  // namespace llmos
