#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pretokenizer.h"
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
  if (*name == "gpt2") {
    // llama.cpp refuses a BPE vocab without merges, and so do we (with the key named).
    if (file.find("tokenizer.ggml.merges") == nullptr) {
      throw_error(StatusCode::kFormat, file.path(),
                  ": missing required key 'tokenizer.ggml.merges' (needed by tokenizer model "
                  "'gpt2')");
    }
    Vocab vocab = Vocab::from_gguf(file);
    if (!PreTokenizer::is_supported(vocab.pre)) {
      throw_error(StatusCode::kUnsupported, file.path(), ": pre-tokenizer '", vocab.pre,
                  "' (tokenizer.ggml.pre) is not supported");
    }
    return std::make_unique<BpeTokenizer>(std::move(vocab));
  }
  throw_error(StatusCode::kUnsupported, file.path(), ": tokenizer model '", *name,
              "' is not supported yet");
}

}  // namespace llmos
