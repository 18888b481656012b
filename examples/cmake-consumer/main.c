/* Greedy continuation through an installed llmos: consumer_c MODEL.gguf [PROMPT] */
#include <stdio.h>

#include <llmos/llmos.h>

int main(int argc, char **argv) {
  llmos_model *model = NULL;
  llmos_engine *engine = NULL;
  llmos_sampling_params sampling = llmos_sampling_params_default();
  char text[4096];
  size_t n = 0;
  llmos_status st;
  if (argc < 2) {
    fprintf(stderr, "usage: consumer_c MODEL.gguf [PROMPT]\n");
    return 2;
  }
  const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
  fprintf(stderr, "llmos %s (headers %s)\n", llmos_version(), LLMOS_VERSION_STRING);
  sampling.temperature = 0.0f;
  sampling.max_tokens = 24;
  st = llmos_model_load(argv[1], NULL, &model);
  if (st == LLMOS_OK) st = llmos_engine_create(model, NULL, &engine);
  if (st == LLMOS_OK) {
    st = llmos_generate(engine, prompt, &sampling, text, sizeof text, &n);
  }
  if (st != LLMOS_OK) {
    fprintf(stderr, "consumer_c: %s: %s\n", llmos_status_string(st), llmos_last_error());
  } else {
    printf("%s%s\n", prompt, text);
  }
  llmos_engine_free(engine);
  llmos_model_free(model);
  return st == LLMOS_OK ? 0 : 1;
}
