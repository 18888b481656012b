// The `llmos` subcommands. Each returns the process exit code: 0 on success, 1 on a runtime
// error (message on stderr), 2 on a bad command line (message and usage on stderr).
#pragma once

namespace llmos::cli {

int run_generate(int argc, char** argv);
int run_info(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_perplexity(int argc, char** argv);
int run_quantize(int argc, char** argv);
int run_make_model(int argc, char** argv);
int run_batch(int argc, char** argv);
int run_bench(int argc, char** argv);

}  // namespace llmos::cli
