// llmos's built-in SentencePiece vocabulary for random-weight models: control tokens,
// byte-fallback tokens for printable ASCII, tab and newline, printable ASCII characters, and
// common English words with every prefix (so greedy BPE merges can reach each word).
#pragma once

#include "io/gguf_writer.h"

namespace llmos {

// Adds tokenizer.ggml.* keys (model "llama") to the writer; returns the vocabulary size.
int64_t add_builtin_vocab(gguf::Writer& writer);

}  // namespace llmos
