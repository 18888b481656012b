// llmos tokenize: text -> token ids, one line, separated by single spaces. Only the tokenizer is
// read from the file, so vocabulary-only GGUF files work too.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace llmos::cli {
namespace {

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(StatusCode::kIo, "cannot open prompt file '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw_error(StatusCode::kIo, "cannot read prompt file '", path, "'");
  return bytes;
}

}  // namespace

int run_tokenize(int argc, char** argv) {
  Args args("tokenize", "print the token ids of a text, separated by spaces, on one line",
            {{"-m", "--model", "PATH", "GGUF model or vocabulary file (default: $LLMOS_MODEL)"},
             {"-p", "--prompt", "TEXT", "the text to tokenize"},
             {"-f", "--file", "FILE", "read the text from FILE, bytes taken verbatim"},
             {"", "--add-bos", "", "prepend the BOS token (not added otherwise)"},
             {"", "--no-parse-special", "", "treat control-token text such as <s> as plain text"}});
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    if (args.has("--prompt") == args.has("--file")) throw UsageError{"give exactly one of -p TEXT or -f FILE"};
    if (!resolve_model(args.get("--model"), false)) throw UsageError{"no model given (-m PATH or LLMOS_MODEL)"};
  } catch (const UsageError& e) {
    std::cerr << "llmos tokenize: " << e.message << "\n\n" << args.usage();
    return 2;
  }
  try {
    const std::string text = args.has("--file") ? read_file_bytes(*args.get("--file")) : *args.get("--prompt");
    const auto source = resolve_model(args.get("--model"), false);
    const auto tokenizer = Tokenizer::from_gguf(gguf::File::open(source->path));
    std::vector<TokenId> ids;
    if (args.has("--add-bos")) {
      if (tokenizer->vocab().bos == kNoToken) {
        throw_error(StatusCode::kInvalidArgument, source->path, ": --add-bos given but the vocabulary has no BOS token");
      }
      ids.push_back(tokenizer->vocab().bos);
    }
    const std::vector<TokenId> body = tokenizer->encode(text, /*add_special=*/false, !args.has("--no-parse-special"));
    ids.insert(ids.end(), body.begin(), body.end());
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::cout << line << "\n";
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos tokenize: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
