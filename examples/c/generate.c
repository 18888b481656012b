/* Streams a continuation through the llmos C API: pull events with llmos_next_event, cancel
 * after N tokens or on Ctrl-C, then print the engine's statistics.
 *
 *   generate MODEL.gguf [PROMPT] [--max-tokens N] [--cancel-after N] [--temp T] [--seed S]
 *
 * MODEL may be omitted when $LLMOS_MODEL is set. */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmos/llmos.h"

static volatile sig_atomic_t g_interrupted = 0;

static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
}

static int fail(const char *what, llmos_status status) {
  fprintf(stderr, "generate: %s: %s (%s)\n", what, llmos_last_error(), llmos_status_string(status));
  return 1;
}

static const char *reason_name(int reason) {
  switch (reason) {
    case LLMOS_FINISH_LENGTH: return "length";
    case LLMOS_FINISH_EOS: return "end of sequence";
    case LLMOS_FINISH_STOP: return "stop";
    case LLMOS_FINISH_CANCELLED: return "cancelled";
    case LLMOS_FINISH_ERROR: return "error";
    default: return "none";
  }
}

int main(int argc, char **argv) {
  const char *model_path = getenv("LLMOS_MODEL");
  const char *prompt = "Once upon a time";
  int cancel_after = 0;
  int i, n_tokens = 0, status = 0;
  llmos_sampling_params sampling = llmos_sampling_params_default();
  llmos_request request = llmos_request_default();
  llmos_model *model = NULL;
  llmos_engine *engine = NULL;
  llmos_status st;
  uint64_t id = 0;
  llmos_stats stats;
  int positional = 0;
  int cancelled = 0;

  sampling.max_tokens = 64;
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) {
      sampling.max_tokens = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--cancel-after") == 0 && i + 1 < argc) {
      cancel_after = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--temp") == 0 && i + 1 < argc) {
      sampling.temperature = (float)atof(argv[++i]);
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      sampling.seed = strtoull(argv[++i], NULL, 10);
    } else if (positional == 0) {
      model_path = argv[i];
      ++positional;
    } else {
      prompt = argv[i];
      ++positional;
    }
  }
  if (model_path == NULL) {
    fprintf(stderr, "usage: generate MODEL.gguf [PROMPT] [--max-tokens N] [--cancel-after N] "
                    "[--temp T] [--seed S]\n");
    return 2;
  }
  signal(SIGINT, on_sigint);

  st = llmos_model_load(model_path, NULL, &model);
  if (st != LLMOS_OK) return fail("loading the model", st);
  st = llmos_engine_create(model, NULL, &engine);
  if (st != LLMOS_OK) {
    llmos_model_free(model);
    return fail("creating the engine", st);
  }
  /* The engine keeps what it needs of the model. */
  llmos_model_free(model);

  request.prompt = prompt;
  request.sampling = &sampling;
  st = llmos_submit(engine, &request, &id);
  if (st != LLMOS_OK) {
    llmos_engine_free(engine);
    return fail("submitting", st);
  }

  printf("%s", prompt);
  fflush(stdout);
  for (;;) {
    llmos_event ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    /* A short timeout keeps the loop responsive to Ctrl-C. */
    st = llmos_next_event(engine, id, &ev, 100);
    if (st == LLMOS_ERR_TIMEOUT) {
      if (g_interrupted && !cancelled) {
        llmos_cancel(engine, id);
        cancelled = 1;
      }
      continue;
    }
    if (st != LLMOS_OK) {
      status = fail("streaming", st);
      break;
    }
    /* Tokens the engine generated before it saw the cancellation still arrive: drop them. */
    if (!cancelled || ev.finished) {
      fwrite(ev.text, 1, ev.text_len, stdout);
      fflush(stdout);
    }
    if (ev.finished) {
      printf("\n");
      fprintf(stderr, "[generate] finished: %s%s%s\n", reason_name(ev.finish_reason),
              ev.error[0] != '\0' ? ": " : "", ev.error);
      break;
    }
    if (cancelled) continue;
    ++n_tokens;
    if ((cancel_after > 0 && n_tokens == cancel_after) || g_interrupted) {
      /* The request ends at the engine's next step; its last event still arrives. */
      llmos_cancel(engine, id);
      cancelled = 1;
    }
  }

  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  if (llmos_engine_stats(engine, &stats) == LLMOS_OK) {
    fprintf(stderr,
            "[generate] %d tokens streamed; engine: %lld requests (%lld cancelled), %lld steps, "
            "%lld prompt tokens, %lld generated, KV %lld/%lld blocks used\n",
            n_tokens, (long long)stats.total_requests, (long long)stats.cancelled_requests,
            (long long)stats.steps, (long long)stats.prompt_tokens_computed,
            (long long)stats.tokens_generated, (long long)stats.kv_used_blocks,
            (long long)stats.kv_total_blocks);
  }
  llmos_engine_free(engine);
  return status;
}
