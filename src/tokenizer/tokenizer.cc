#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"

namespace llmos {

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  const gguf::Value* model = file.find("tokenizer.ggml.model");
  if (model == nullptr) {
    throw_error(StatusCode::kFormat, file.path(),
                ": missing required key 'tokenizer.ggml.model' (the file has no tokenizer)");
  }
  const std::string* name = model->as_string();
  if (name == nullptr) {
    throw_error(StatusCode::kFormat, file.path(), ": key 'tokenizer.ggml.model' has type ",
                gguf::value_type_name(model->type()), ", expected string");
  }
  // SentencePiece: from_gguf also reads the special-token keys (eot/eom/FIM ids, model name).
  if (*name == "llama") return SpmTokenizer::from_gguf(file);
  // Byte-level BPE: from_gguf checks merges and pre-tokenizer, fills llama.cpp's default
  // bos/eos and reads the same special-token keys.
  if (*name == "gpt2") return BpeTokenizer::from_gguf(file);
  throw_error(StatusCode::kUnsupported, file.path(), ": tokenizer model '", *name,
              "' is not supported yet");
}

}  // namespace llmos
