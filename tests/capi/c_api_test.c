/* The C API from C99: every function on NULL and invalid input (expected status and a message
 * naming the function), then real use on the stories260K model: greedy generation against the
 * reference continuations in stories260K.greedy.json, tokenizer round trips and buffer sizes,
 * pull and push streaming, cancellation, statistics, snapshots and the log callback.
 *
 * Usage: c_api_test [SHARED_DIR]   ($LLMOS_SHARED_DIR overrides). Exit status 0: passed;
 * 77: the model is absent (the invalid-input checks still ran); 1: failures. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llmos/llmos.h"

static int g_failures = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      ++g_failures;                                                              \
    }                                                                            \
  } while (0)

/* A call that must fail with `expected`, leaving a message that names the function. */
#define CHECK_FAILS(call, expected, function)                                              \
  do {                                                                                     \
    llmos_status st_ = (call);                                                             \
    if (st_ != (expected) || strstr(llmos_last_error(), (function)) == NULL) {             \
      fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__,     \
              #call, llmos_status_string(st_), llmos_last_error(),                         \
              llmos_status_string(expected));                                              \
      ++g_failures;                                                                        \
    }                                                                                      \
  } while (0)

#define CHECK_OK(call)                                                                      \
  do {                                                                                      \
    llmos_status st_ = (call);                                                              \
    if (st_ != LLMOS_OK) {                                                                  \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,             \
              llmos_status_string(st_), llmos_last_error());                                \
      ++g_failures;                                                                         \
    }                                                                                       \
  } while (0)

/* ---- helpers ---------------------------------------------------------------------------- */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char *data;
  long size;
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = (char *)malloc((size_t)size + 1);
  if (data != NULL && fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    data = NULL;
  }
  if (data != NULL) data[size] = '\0';
  fclose(f);
  return data;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return;
  fputs(text, f);
  fclose(f);
}

static void append_utf8(char **out, unsigned cp) {
  char *o = *out;
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | (cp >> 6));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xE0 | (cp >> 12));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  *out = o;
}

/* Parses the JSON string starting at the quote `*p` points to; returns a malloc'd copy. */
static char *parse_json_string(const char **p) {
  const char *s = *p;
  char *out = (char *)malloc(strlen(s) + 1);
  char *o = out;
  if (*s != '"') {
    free(out);
    return NULL;
  }
  ++s;
  while (*s != '\0' && *s != '"') {
    if (*s != '\\') {
      *o++ = *s++;
      continue;
    }
    ++s;
    switch (*s) {
      case 'n': *o++ = '\n'; break;
      case 't': *o++ = '\t'; break;
      case 'r': *o++ = '\r'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'u': {
        unsigned cp = 0;
        int i;
        for (i = 1; i <= 4; ++i) {
          const char c = s[i];
          cp = cp * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
        }
        append_utf8(&o, cp);
        s += 4;
        break;
      }
      default: *o++ = *s; break; /* \" \\ \/ */
    }
    ++s;
  }
  *o = '\0';
  *p = *s == '"' ? s + 1 : s;
  return out;
}

/* Finds "key": after `from` and returns the position of its value. */
static const char *json_value(const char *from, const char *key) {
  char pattern[64];
  const char *at;
  sprintf(pattern, "\"%s\"", key);
  at = strstr(from, pattern);
  if (at == NULL) return NULL;
  at = strchr(at + strlen(pattern), ':');
  if (at == NULL) return NULL;
  ++at;
  while (*at == ' ' || *at == '\n' || *at == '\r' || *at == '\t') ++at;
  return at;
}

typedef struct Reference {
  char *prompt;
  int n_predict;
  char *continuation;
} Reference;

/* Reads every {prompt, n_predict, continuation} entry of the greedy reference file. */
static int load_references(const char *path, Reference *refs, int max) {
  char *doc = read_file(path);
  const char *at;
  int n = 0;
  if (doc == NULL) return 0;
  at = doc;
  while (n < max) {
    const char *v = json_value(at, "prompt");
    if (v == NULL) break;
    refs[n].prompt = parse_json_string(&v);
    v = json_value(v, "n_predict");
    if (v == NULL) break;
    refs[n].n_predict = atoi(v);
    v = json_value(v, "continuation");
    if (v == NULL) break;
    refs[n].continuation = parse_json_string(&v);
    at = v;
    ++n;
  }
  free(doc);
  return n;
}

static char *temp_path(const char *name) {
  const char *dir = getenv("TMPDIR");
  char *path = (char *)malloc(512);
  if (dir == NULL || *dir == '\0') dir = "/tmp";
  sprintf(path, "%s/llmos_c_api_test_%ld_%s", dir, (long)getpid(), name);
  return path;
}

/* ---- invalid input ---------------------------------------------------------------------- */

static void test_version_and_status(void) {
  int s;
  CHECK(strcmp(llmos_version(), LLMOS_VERSION_STRING) == 0);
  CHECK(LLMOS_VERSION_MAJOR >= 0 && LLMOS_VERSION_MINOR >= 0 && LLMOS_VERSION_PATCH >= 0);
  CHECK(LLMOS_OK == 0);
  for (s = 0; s <= LLMOS_ERR_TIMEOUT; ++s) {
    int t;
    CHECK(strncmp(llmos_status_string((llmos_status)s), "LLMOS_", 6) == 0);
    for (t = 0; t < s; ++t) {
      CHECK(strcmp(llmos_status_string((llmos_status)s), llmos_status_string((llmos_status)t)) != 0);
    }
  }
  CHECK(strcmp(llmos_status_string((llmos_status)999), "unknown status") == 0);
  CHECK(llmos_set_log_callback(NULL, NULL) == LLMOS_OK);
}

static void test_invalid_input(const char *tmp_garbage) {
  int dummy = 0;
  llmos_model *fake_model = (llmos_model *)&dummy;
  llmos_engine *fake_engine = (llmos_engine *)&dummy;
  llmos_model *model = (llmos_model *)&dummy;
  llmos_engine *engine = (llmos_engine *)&dummy;
  llmos_model_params mp = llmos_model_params_default();
  llmos_model_info info;
  llmos_token tokens[8];
  char text[16];
  size_t n = 0;
  uint64_t id = 0;
  llmos_request req = llmos_request_default();
  llmos_event ev;
  llmos_stats stats;

  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;

  /* Models. */
  CHECK_FAILS(llmos_model_load(NULL, NULL, &model), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_load");
  CHECK(model == NULL); /* *out is reset on failure */
  CHECK_FAILS(llmos_model_load("x.gguf", NULL, NULL), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_load");
  CHECK_FAILS(llmos_model_load("", NULL, &model), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_load");
  CHECK_FAILS(llmos_model_load("/nonexistent/model.gguf", NULL, &model), LLMOS_ERR_IO,
              "/nonexistent/model.gguf");
  CHECK_FAILS(llmos_model_load(tmp_garbage, NULL, &model), LLMOS_ERR_FORMAT, "llmos_model_load");
  mp.struct_size = 0;
  CHECK_FAILS(llmos_model_load(tmp_garbage, &mp, &model), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");
  mp.struct_size = sizeof mp + 64;
  CHECK_FAILS(llmos_model_load(tmp_garbage, &mp, &model), LLMOS_ERR_UNSUPPORTED, "struct_size");
  mp = llmos_model_params_default();
  mp.n_threads = -1;
  CHECK_FAILS(llmos_model_load(tmp_garbage, &mp, &model), LLMOS_ERR_INVALID_ARGUMENT, "n_threads");
  mp = llmos_model_params_default();
  mp.device = "abacus";
  CHECK_FAILS(llmos_model_load(tmp_garbage, &mp, &model), LLMOS_ERR_INVALID_ARGUMENT, "abacus");
  CHECK(llmos_model_free(NULL) == LLMOS_OK);
  CHECK_FAILS(llmos_model_free(fake_model), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_free");
  CHECK_FAILS(llmos_model_get_info(NULL, &info), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_get_info");
  CHECK_FAILS(llmos_model_get_info(fake_model, &info), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_get_info");
  CHECK_FAILS(llmos_tokenize(NULL, "a", 1, 1, tokens, 8, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_tokenize");
  CHECK_FAILS(llmos_tokenize(fake_model, "a", 1, 1, tokens, 8, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_tokenize");
  CHECK_FAILS(llmos_detokenize(NULL, tokens, 1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_detokenize");
  CHECK_FAILS(llmos_detokenize(fake_model, tokens, 1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_detokenize");
  CHECK_FAILS(llmos_token_to_piece(NULL, 1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_token_to_piece");
  CHECK_FAILS(llmos_token_to_piece(fake_model, 1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_token_to_piece");
  {
    double lp = 1.0;
    tokens[0] = 1;
    tokens[1] = 2;
    CHECK_FAILS(llmos_score(NULL, tokens, 1, tokens + 1, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "llmos_score");
    CHECK_FAILS(llmos_score(fake_model, tokens, 1, tokens + 1, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "llmos_score");
  }

  /* Engines. */
  CHECK_FAILS(llmos_engine_create(NULL, NULL, &engine), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_create");
  CHECK(engine == NULL);
  CHECK_FAILS(llmos_engine_create(fake_model, NULL, &engine), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_create");
  CHECK(llmos_engine_free(NULL) == LLMOS_OK);
  CHECK_FAILS(llmos_engine_free(fake_engine), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_free");
  CHECK_FAILS(llmos_generate(NULL, "a", NULL, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_generate");
  CHECK_FAILS(llmos_generate(fake_engine, "a", NULL, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "llmos_generate");
  req.prompt = "a";
  CHECK_FAILS(llmos_submit(NULL, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "llmos_submit");
  CHECK_FAILS(llmos_submit(fake_engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "llmos_submit");
  CHECK_FAILS(llmos_next_event(NULL, 1, &ev, 0), LLMOS_ERR_INVALID_ARGUMENT, "llmos_next_event");
  CHECK_FAILS(llmos_next_event(fake_engine, 1, &ev, 0), LLMOS_ERR_INVALID_ARGUMENT, "llmos_next_event");
  CHECK_FAILS(llmos_cancel(NULL, 1), LLMOS_ERR_INVALID_ARGUMENT, "llmos_cancel");
  CHECK_FAILS(llmos_cancel(fake_engine, 1), LLMOS_ERR_INVALID_ARGUMENT, "llmos_cancel");
  CHECK_FAILS(llmos_engine_stats(NULL, &stats), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_stats");
  CHECK_FAILS(llmos_engine_stats(fake_engine, &stats), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_stats");
  CHECK_FAILS(llmos_snapshot_save(NULL, 1, "x"), LLMOS_ERR_INVALID_ARGUMENT, "llmos_snapshot_save");
  CHECK_FAILS(llmos_snapshot_save(fake_engine, 1, "x"), LLMOS_ERR_INVALID_ARGUMENT, "llmos_snapshot_save");
  CHECK_FAILS(llmos_snapshot_restore(NULL, "x", NULL, &id), LLMOS_ERR_INVALID_ARGUMENT, "llmos_snapshot_restore");
  CHECK_FAILS(llmos_snapshot_restore(fake_engine, "x", NULL, &id), LLMOS_ERR_INVALID_ARGUMENT,
              "llmos_snapshot_restore");
}

static char *pull_all(llmos_engine *engine, uint64_t id, llmos_token *tokens, size_t *n_tokens,
                      int *finish_reason, int cancel_after);

/* The same functions with a live model and engine but bad arguments. */
static void test_invalid_arguments_on_live_handles(llmos_model *model, llmos_engine *engine,
                                                   const char *tmp_garbage) {
  llmos_model_info info;
  llmos_token tokens[8];
  llmos_token bad_token = 1 << 30;
  char text[16];
  size_t n = 0;
  uint64_t id = 0;
  llmos_engine *e2 = NULL;
  llmos_engine_params ep = llmos_engine_params_default();
  llmos_sampling_params sp = llmos_sampling_params_default();
  llmos_request req = llmos_request_default();
  llmos_event ev;
  llmos_stats stats;
  const char *null_stop[1] = {NULL};
  llmos_client_quota quota;

  memset(&info, 0, sizeof info);
  CHECK_FAILS(llmos_model_get_info(model, NULL), LLMOS_ERR_INVALID_ARGUMENT, "info");
  CHECK_FAILS(llmos_model_get_info(model, &info), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");
  CHECK_FAILS(llmos_tokenize(model, "a", 1, 1, tokens, 8, NULL), LLMOS_ERR_INVALID_ARGUMENT, "n_out");
  CHECK_FAILS(llmos_tokenize(model, NULL, 3, 1, tokens, 8, &n), LLMOS_ERR_INVALID_ARGUMENT, "text");
  CHECK_FAILS(llmos_tokenize(model, "a", 1, 1, NULL, 8, &n), LLMOS_ERR_INVALID_ARGUMENT, "tokens_out");
  CHECK_FAILS(llmos_detokenize(model, NULL, 2, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "tokens");
  CHECK_FAILS(llmos_detokenize(model, tokens, 0, NULL, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "text_out");
  CHECK_FAILS(llmos_detokenize(model, tokens, 0, text, 16, NULL), LLMOS_ERR_INVALID_ARGUMENT, "n_out");
  CHECK_FAILS(llmos_detokenize(model, &bad_token, 1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "vocabulary");
  CHECK_FAILS(llmos_token_to_piece(model, -1, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "vocabulary");
  CHECK_FAILS(llmos_token_to_piece(model, 1, text, 16, NULL), LLMOS_ERR_INVALID_ARGUMENT, "n_out");
  {
    double lp = 1.0;
    llmos_token ctx[2] = {1, 2};
    CHECK_FAILS(llmos_score(model, ctx, 1, ctx + 1, 1, NULL), LLMOS_ERR_INVALID_ARGUMENT, "logprob");
    CHECK_FAILS(llmos_score(model, NULL, 1, ctx + 1, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "context");
    CHECK(lp == 0.0); /* *logprob is reset on failure */
    CHECK_FAILS(llmos_score(model, ctx, 1, NULL, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "continuation");
    CHECK_FAILS(llmos_score(model, ctx, 0, ctx + 1, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "n_context");
    CHECK_FAILS(llmos_score(model, ctx, 1, ctx + 1, 0, &lp), LLMOS_ERR_INVALID_ARGUMENT, "n_continuation");
    CHECK_FAILS(llmos_score(model, &bad_token, 1, ctx + 1, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "vocabulary");
    CHECK_FAILS(llmos_score(model, ctx, 1, &bad_token, 1, &lp), LLMOS_ERR_INVALID_ARGUMENT, "continuation[0]");
    CHECK_FAILS(llmos_score(model, ctx, 1, ctx + 1, (size_t)1 << 40, &lp), LLMOS_ERR_INVALID_ARGUMENT,
                "context length");
    CHECK_FAILS(llmos_score(model, ctx, (size_t)-1, ctx + 1, 2, &lp), LLMOS_ERR_INVALID_ARGUMENT,
                "context length");
  }

  CHECK_FAILS(llmos_engine_create(model, NULL, NULL), LLMOS_ERR_INVALID_ARGUMENT, "out");
  ep.block_size = 0;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "block_size");
  ep = llmos_engine_params_default();
  ep.kv_dtype = 42;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "kv_dtype");
  ep = llmos_engine_params_default();
  ep.preemption_mode = 7;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "preemption_mode");
  ep = llmos_engine_params_default();
  ep.n_quotas = 1;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "quotas");
  ep = llmos_engine_params_default();
  ep.n_threads = -2;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "n_threads");
  ep = llmos_engine_params_default();
  ep.struct_size = 0;
  CHECK_FAILS(llmos_engine_create(model, &ep, &e2), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");
  CHECK(e2 == NULL);

  CHECK_FAILS(llmos_generate(engine, NULL, NULL, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "prompt");
  CHECK_FAILS(llmos_generate(engine, "a", NULL, text, 16, NULL), LLMOS_ERR_INVALID_ARGUMENT, "n_out");
  CHECK_FAILS(llmos_generate(engine, "a", NULL, NULL, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "text_out");
  sp.temperature = -1.0f;
  CHECK_FAILS(llmos_generate(engine, "a", &sp, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "temperature");
  sp = llmos_sampling_params_default();
  sp.max_tokens = 0;
  CHECK_FAILS(llmos_generate(engine, "a", &sp, text, 16, &n), LLMOS_ERR_INVALID_ARGUMENT, "max_tokens");

  CHECK_FAILS(llmos_submit(engine, NULL, &id), LLMOS_ERR_INVALID_ARGUMENT, "req");
  req.prompt = "a";
  CHECK_FAILS(llmos_submit(engine, &req, NULL), LLMOS_ERR_INVALID_ARGUMENT, "request_id");
  req.prompt = NULL;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "prompt");
  req.prompt = "a";
  req.priority = 9;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "priority");
  req.priority = LLMOS_PRIORITY_INTERACTIVE;
  req.n_stop_strings = 1;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "stop_strings");
  req.stop_strings = null_stop;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "stop_strings[0]");
  req.n_stop_strings = 0;
  req.n_prompt_tokens = 3; /* prompt_tokens NULL */
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "prompt_tokens");
  req.n_prompt_tokens = 1;
  req.prompt_tokens = &bad_token;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "llmos_submit");
  req = llmos_request_default();
  req.struct_size = 3;
  CHECK_FAILS(llmos_submit(engine, &req, &id), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");

  /* An older caller's shorter struct: the fields past its struct_size keep their defaults
   * (max_tokens here holds garbage that would be rejected if it were read). */
  sp = llmos_sampling_params_default();
  sp.struct_size = offsetof(llmos_sampling_params, max_tokens);
  sp.temperature = 0.0f;
  sp.max_tokens = -5;
  req = llmos_request_default();
  req.prompt = "a";
  req.sampling = &sp;
  CHECK_OK(llmos_submit(engine, &req, &id));
  {
    size_t n_tok = 0;
    int reason = 0;
    llmos_token drained[256];
    char *t = pull_all(engine, id, drained, &n_tok, &reason, 0);
    CHECK(n_tok > 0 && n_tok <= 128); /* llmos_sampling_params_default().max_tokens */
    free(t);
  }

  memset(&ev, 0, sizeof ev);
  CHECK_FAILS(llmos_next_event(engine, 1, NULL, 0), LLMOS_ERR_INVALID_ARGUMENT, "event");
  CHECK_FAILS(llmos_next_event(engine, 1, &ev, 0), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");
  ev.struct_size = sizeof ev;
  CHECK_FAILS(llmos_next_event(engine, 987654321u, &ev, 0), LLMOS_ERR_NOT_FOUND, "987654321");
  CHECK_FAILS(llmos_cancel(engine, 987654321u), LLMOS_ERR_NOT_FOUND, "llmos_cancel");
  CHECK_FAILS(llmos_engine_stats(engine, NULL), LLMOS_ERR_INVALID_ARGUMENT, "stats");
  memset(&stats, 0, sizeof stats);
  CHECK_FAILS(llmos_engine_stats(engine, &stats), LLMOS_ERR_INVALID_ARGUMENT, "struct_size");
  CHECK_FAILS(llmos_snapshot_save(engine, 1, NULL), LLMOS_ERR_INVALID_ARGUMENT, "path");
  CHECK_FAILS(llmos_snapshot_save(engine, 987654321u, "/tmp/x"), LLMOS_ERR_NOT_FOUND, "987654321");
  CHECK_FAILS(llmos_snapshot_restore(engine, NULL, NULL, &id), LLMOS_ERR_INVALID_ARGUMENT, "path");
  CHECK_FAILS(llmos_snapshot_restore(engine, "/tmp/x", NULL, NULL), LLMOS_ERR_INVALID_ARGUMENT, "request_id");
  CHECK_FAILS(llmos_snapshot_restore(engine, "/nonexistent/ctx.bin", NULL, &id), LLMOS_ERR_IO,
              "llmos_snapshot_restore");
  CHECK_FAILS(llmos_snapshot_restore(engine, tmp_garbage, NULL, &id), LLMOS_ERR_FORMAT,
              "llmos_snapshot_restore");

  /* Quotas: one outstanding request per client, beyond it BUSY. */
  quota.client_id = "solo";
  quota.max_running = 0;
  quota.max_kv_blocks = 0;
  quota.max_outstanding = 1;
  ep = llmos_engine_params_default();
  ep.quotas = &quota;
  ep.n_quotas = 1;
  ep.kv_cache_blocks = 64;
  CHECK_OK(llmos_engine_create(model, &ep, &e2));
  if (e2 != NULL) {
    uint64_t a = 0, b = 0;
    sp = llmos_sampling_params_default();
    sp.max_tokens = 200;
    sp.ignore_eos = 1;
    req = llmos_request_default();
    req.prompt = "Once upon a time";
    req.client_id = "solo";
    req.sampling = &sp;
    CHECK_OK(llmos_submit(e2, &req, &a));
    CHECK_FAILS(llmos_submit(e2, &req, &b), LLMOS_ERR_BUSY, "solo");
    /* Freed with a request still running: cancelled, nothing leaks. */
    CHECK_OK(llmos_engine_free(e2));
  }
}

/* ---- real use ----------------------------------------------------------------------------- */

static int g_log_messages = 0;
static void log_sink(llmos_log_level level, const char *message, void *user) {
  (void)level;
  if (user == &g_log_messages && message != NULL && message[0] != '\0') ++g_log_messages;
}

static void test_tokenizer(llmos_model *model) {
  const char *text = "Once upon a time, there was a little girl.";
  llmos_token tokens[64];
  char out[128];
  size_t n = 0, m = 0;
  llmos_model_info info;

  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_OK(llmos_model_get_info(model, &info));
  CHECK(info.vocab_size > 0 && info.context_length > 0 && info.n_layers > 0);
  CHECK(strcmp(info.architecture, "llama") == 0);

  /* Size query, exact fit, one short. */
  CHECK_FAILS(llmos_tokenize(model, text, strlen(text), 1, NULL, 0, &n), LLMOS_ERR_BUFFER_TOO_SMALL,
              "llmos_tokenize");
  CHECK(n > 2 && n < 64);
  CHECK_OK(llmos_tokenize(model, text, strlen(text), 1, tokens, n, &m));
  CHECK(m == n);
  CHECK_FAILS(llmos_tokenize(model, text, strlen(text), 1, tokens, n - 1, &m),
              LLMOS_ERR_BUFFER_TOO_SMALL, "llmos_tokenize");
  CHECK(m == n);
  if (info.add_bos) CHECK(tokens[0] == info.bos);
  CHECK_OK(llmos_tokenize(model, text, strlen(text), 0, tokens, 64, &m));
  CHECK(m == n - (info.add_bos ? 1u : 0u));

  /* Round trip and text buffer sizes (the needed size counts the NUL). */
  CHECK_OK(llmos_tokenize(model, text, strlen(text), 1, tokens, 64, &n));
  CHECK_FAILS(llmos_detokenize(model, tokens, n, NULL, 0, &m), LLMOS_ERR_BUFFER_TOO_SMALL,
              "llmos_detokenize");
  CHECK(m == strlen(text) + 1);
  CHECK_OK(llmos_detokenize(model, tokens, n, out, strlen(text) + 1, &m));
  CHECK(m == strlen(text));
  CHECK(strcmp(out, text) == 0);
  CHECK_FAILS(llmos_detokenize(model, tokens, n, out, 6, &m), LLMOS_ERR_BUFFER_TOO_SMALL,
              "llmos_detokenize");
  CHECK(m == strlen(text) + 1);
  CHECK(strcmp(out, "Once ") == 0); /* a terminated prefix */

  /* Pieces concatenate to the text (with the tokenizer's leading space). */
  {
    char joined[128] = "";
    size_t i;
    for (i = 0; i < n; ++i) {
      char piece[32];
      size_t pn = 0;
      CHECK_OK(llmos_token_to_piece(model, tokens[i], piece, sizeof piece, &pn));
      CHECK(pn == strlen(piece));
      strcat(joined, piece);
    }
    CHECK(strcmp(joined[0] == ' ' ? joined + 1 : joined, text) == 0);
  }
}

static void test_generate(llmos_engine *engine, const Reference *refs, int n_refs) {
  int i;
  for (i = 0; i < n_refs; ++i) {
    llmos_sampling_params sp = llmos_sampling_params_default();
    size_t cap = strlen(refs[i].continuation) + 1;
    char *out = (char *)malloc(cap);
    char small[10];
    size_t n = 0;
    sp.temperature = 0.0f;
    sp.max_tokens = refs[i].n_predict;
    CHECK_OK(llmos_generate(engine, refs[i].prompt, &sp, out, cap, &n));
    CHECK(n == cap - 1);
    if (strcmp(out, refs[i].continuation) != 0) {
      fprintf(stderr, "prompt '%s':\n  got      '%s'\n  expected '%s'\n", refs[i].prompt, out,
              refs[i].continuation);
      ++g_failures;
    }
    if (i == 0) {
      CHECK_FAILS(llmos_generate(engine, refs[i].prompt, &sp, small, sizeof small, &n),
                  LLMOS_ERR_BUFFER_TOO_SMALL, "llmos_generate");
      CHECK(n == cap);
      CHECK(strncmp(small, refs[i].continuation, sizeof small - 1) == 0);
      CHECK(small[sizeof small - 1] == '\0');
    }
    free(out);
  }
}

/* Pulls every remaining event of `id`, `already` token events having been pulled before;
 * returns the concatenated text of these events (malloc'd), the tokens (counted on from
 * `already`) and the finish reason. Cancels after `cancel_after` tokens when it is > 0. */
static char *pull_rest(llmos_engine *engine, uint64_t id, llmos_token *tokens, size_t *n_tokens,
                       int *finish_reason, int cancel_after, size_t already) {
  size_t cap = 4096, len = 0;
  char *text = (char *)malloc(cap);
  llmos_event ev;
  text[0] = '\0';
  *n_tokens = already;
  *finish_reason = -1;
  for (;;) {
    llmos_status st;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    st = llmos_next_event(engine, id, &ev, 10000);
    if (st != LLMOS_OK) {
      fprintf(stderr, "llmos_next_event: %s: %s\n", llmos_status_string(st), llmos_last_error());
      ++g_failures;
      break;
    }
    CHECK(ev.request_id == id);
    CHECK(strlen(ev.text) == ev.text_len);
    if (len + ev.text_len + 1 > cap) {
      cap = 2 * (len + ev.text_len + 1);
      text = (char *)realloc(text, cap);
    }
    memcpy(text + len, ev.text, ev.text_len + 1);
    len += ev.text_len;
    if (ev.finished) {
      CHECK(ev.token == -1);
      *finish_reason = ev.finish_reason;
      CHECK(ev.error != NULL && (ev.finish_reason == LLMOS_FINISH_ERROR) == (ev.error[0] != '\0'));
      /* The summary: as many tokens as were streamed, timings in order. */
      CHECK(ev.num_generated == (int32_t)*n_tokens);
      CHECK(ev.num_preemptions >= 0 && ev.num_cached_prompt_tokens >= 0);
      CHECK(ev.total_time > 0.0);
      CHECK(*n_tokens == 0 || (ev.time_to_first_token > 0.0 && ev.time_to_first_token <= ev.total_time));
      break;
    }
    CHECK(ev.finish_reason == LLMOS_FINISH_NONE);
    CHECK(ev.num_generated == 0 && ev.total_time == 0.0);
    tokens[(*n_tokens)++] = ev.token;
    if (cancel_after > 0 && (int)*n_tokens == cancel_after) CHECK_OK(llmos_cancel(engine, id));
  }
  return text;
}

static char *pull_all(llmos_engine *engine, uint64_t id, llmos_token *tokens, size_t *n_tokens,
                      int *finish_reason, int cancel_after) {
  return pull_rest(engine, id, tokens, n_tokens, finish_reason, cancel_after, 0);
}

static void test_streaming_and_cancel(llmos_engine *engine, const Reference *ref) {
  llmos_sampling_params sp = llmos_sampling_params_default();
  llmos_request req = llmos_request_default();
  llmos_token tokens[2048];
  size_t n = 0;
  int reason = 0;
  uint64_t id = 0;
  char *text;
  llmos_event ev;

  sp.temperature = 0.0f;
  sp.max_tokens = ref->n_predict;
  req.prompt = ref->prompt;
  req.sampling = &sp;
  CHECK_OK(llmos_submit(engine, &req, &id));
  CHECK(id > 0);
  text = pull_all(engine, id, tokens, &n, &reason, 0);
  CHECK(strcmp(text, ref->continuation) == 0);
  CHECK(reason == LLMOS_FINISH_LENGTH || reason == LLMOS_FINISH_EOS);
  CHECK(n > 0 && n <= (size_t)ref->n_predict);
  free(text);
  /* Released after its last event. */
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  CHECK_FAILS(llmos_next_event(engine, id, &ev, 0), LLMOS_ERR_NOT_FOUND, "llmos_next_event");

  /* Cancelled after 3 tokens: ends early with LLMOS_FINISH_CANCELLED (tokens generated before
   * the engine saw the cancellation still arrive; 2000 leaves ample time for it). */
  sp.max_tokens = 2000;
  sp.ignore_eos = 1;
  CHECK_OK(llmos_submit(engine, &req, &id));
  text = pull_all(engine, id, tokens, &n, &reason, 3);
  CHECK(reason == LLMOS_FINISH_CANCELLED);
  CHECK(n >= 3 && n < 2000);
  CHECK_FAILS(llmos_cancel(engine, id), LLMOS_ERR_NOT_FOUND, "llmos_cancel");
  free(text);

  /* A stop string ends the request before it, and the text excludes it. */
  {
    const char *stops[1] = {"Lily"};
    sp.max_tokens = ref->n_predict;
    sp.ignore_eos = 0;
    req.stop_strings = stops;
    req.n_stop_strings = 1;
    CHECK_OK(llmos_submit(engine, &req, &id));
    text = pull_all(engine, id, tokens, &n, &reason, 0);
    if (strstr(ref->continuation, "Lily") != NULL) {
      CHECK(reason == LLMOS_FINISH_STOP);
      CHECK(strncmp(text, ref->continuation, strlen(text)) == 0);
      CHECK(strstr(text, "Lily") == NULL);
      CHECK(strstr(ref->continuation, "Lily") == ref->continuation + strlen(text));
    }
    free(text);
  }

  /* A timeout of 0 either has an event or says so. */
  req.n_stop_strings = 0;
  sp.max_tokens = 2;
  CHECK_OK(llmos_submit(engine, &req, &id));
  {
    llmos_status st;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    st = llmos_next_event(engine, id, &ev, 0);
    CHECK(st == LLMOS_OK || st == LLMOS_ERR_TIMEOUT);
    if (st == LLMOS_ERR_TIMEOUT) CHECK(strstr(llmos_last_error(), "llmos_next_event") != NULL);
    if (!(st == LLMOS_OK && ev.finished)) {
      /* A token event that was already there counts towards the final event's summary. */
      const size_t got = st == LLMOS_OK ? 1 : 0;
      if (got) tokens[0] = ev.token;
      text = pull_rest(engine, id, tokens, &n, &reason, 0, got);
      CHECK(n <= 2);
      free(text);
    }
  }
}

typedef struct CallbackState {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  llmos_engine *engine;
  char text[4096];
  int tokens;
  int finished;
  int finish_reason;
  int stop_after; /* return nonzero after this many tokens (0: never) */
  llmos_status inner_generate;
  llmos_status inner_free;
  llmos_status inner_next_event;
} CallbackState;

static int on_event(const llmos_event *ev, void *user) {
  CallbackState *s = (CallbackState *)user;
  int stop = 0;
  if (s->tokens == 0 && !ev->finished) {
    /* Blocking on its own engine from its step thread would deadlock: refused. */
    char buf[8];
    size_t n = 0;
    llmos_event inner;
    memset(&inner, 0, sizeof inner);
    inner.struct_size = sizeof inner;
    s->inner_generate = llmos_generate(s->engine, "x", NULL, buf, sizeof buf, &n);
    s->inner_free = llmos_engine_free(s->engine);
    s->inner_next_event = llmos_next_event(s->engine, ev->request_id, &inner, 100);
  }
  pthread_mutex_lock(&s->mu);
  if (strlen(s->text) + ev->text_len < sizeof s->text) strcat(s->text, ev->text);
  if (ev->finished) {
    s->finished = 1;
    s->finish_reason = ev->finish_reason;
    pthread_cond_signal(&s->cv);
  } else {
    ++s->tokens;
    stop = s->stop_after > 0 && s->tokens >= s->stop_after;
  }
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static void wait_finished(CallbackState *s) {
  pthread_mutex_lock(&s->mu);
  while (!s->finished) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

static void test_callbacks(llmos_engine *engine, const Reference *ref) {
  CallbackState s;
  llmos_sampling_params sp = llmos_sampling_params_default();
  llmos_request req = llmos_request_default();
  uint64_t id = 0;
  llmos_event ev;

  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.engine = engine;
  sp.temperature = 0.0f;
  sp.max_tokens = ref->n_predict;
  req.prompt = ref->prompt;
  req.sampling = &sp;
  req.callback = on_event;
  req.user_data = &s;
  CHECK_OK(llmos_submit(engine, &req, &id));
  wait_finished(&s);
  CHECK(strcmp(s.text, ref->continuation) == 0);
  CHECK(s.finish_reason == LLMOS_FINISH_LENGTH || s.finish_reason == LLMOS_FINISH_EOS);
  CHECK(s.inner_generate == LLMOS_ERR_BUSY);
  CHECK(s.inner_free == LLMOS_ERR_BUSY);
  CHECK(s.inner_next_event == LLMOS_ERR_BUSY);
  /* Callback requests have no pull queue. */
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  CHECK_FAILS(llmos_next_event(engine, id, &ev, 0), LLMOS_ERR_NOT_FOUND, "llmos_next_event");

  /* A callback returning nonzero cancels its request. */
  memset(s.text, 0, sizeof s.text);
  s.tokens = 0;
  s.finished = 0;
  s.stop_after = 4;
  sp.max_tokens = 300;
  sp.ignore_eos = 1;
  CHECK_OK(llmos_submit(engine, &req, &id));
  wait_finished(&s);
  CHECK(s.finish_reason == LLMOS_FINISH_CANCELLED);
  CHECK(s.tokens >= 4 && s.tokens < 300);
  pthread_mutex_destroy(&s.mu);
  pthread_cond_destroy(&s.cv);
}

static void run_tokens(llmos_engine *engine, const llmos_request *req, const char *resume_path,
                       llmos_token *tokens, size_t *n, int *reason) {
  uint64_t id = 0;
  char *text;
  if (resume_path != NULL) {
    CHECK_OK(llmos_snapshot_restore(engine, resume_path, req, &id));
  } else {
    CHECK_OK(llmos_submit(engine, req, &id));
  }
  *n = 0;
  if (id == 0) return;
  text = pull_all(engine, id, tokens, n, reason, 0);
  free(text);
}

/* keep_context -> save -> (new engine) restore equals one uninterrupted run. */
static void test_snapshots(llmos_model *model, llmos_engine *engine) {
  const char *prompt = "Once upon a time";
  char *path = temp_path("ctx.bin");
  llmos_sampling_params sp = llmos_sampling_params_default();
  llmos_request req = llmos_request_default();
  llmos_token a[64], b[64], whole[128], fresh[256], c[64], then[16];
  size_t na = 0, nb = 0, nwhole = 0, nfresh = 0, nc = 0, nthen = 0, i;
  int reason = 0;
  uint64_t id = 0;
  llmos_engine *later = NULL;

  sp.temperature = 0.0f;
  sp.max_tokens = 12;
  sp.ignore_eos = 1;
  req.prompt = prompt;
  req.sampling = &sp;
  req.keep_context = 1;
  CHECK_OK(llmos_submit(engine, &req, &id));
  {
    char *text = pull_all(engine, id, a, &na, &reason, 0);
    free(text);
  }
  CHECK(na == 12);
  CHECK_OK(llmos_snapshot_save(engine, id, path));
  CHECK_FAILS(llmos_snapshot_save(engine, id, path), LLMOS_ERR_NOT_FOUND, "llmos_snapshot_save");

  /* The uninterrupted run: the same prompt for 24 tokens. */
  req.keep_context = 0;
  sp.max_tokens = 24;
  run_tokens(engine, &req, NULL, whole, &nwhole, &reason);
  CHECK(nwhole == 24);
  for (i = 0; i < na && i < nwhole; ++i) CHECK(a[i] == whole[i]);

  /* Restored in another engine (another backend too) with no new prompt: the next 12. */
  {
    llmos_engine_params ep = llmos_engine_params_default();
    ep.n_threads = 1;
    ep.kv_cache_blocks = 64;
    CHECK_OK(llmos_engine_create(model, &ep, &later));
  }
  if (later == NULL) {
    free(path);
    return;
  }
  req = llmos_request_default();
  sp.max_tokens = 12;
  req.sampling = &sp;
  run_tokens(later, &req, path, b, &nb, &reason);
  CHECK(nb == 12);
  for (i = 0; i < nb && 12 + i < nwhole; ++i) CHECK(b[i] == whole[12 + i]);

  /* Restored with new text: equals a fresh run over history + the text's tokens. */
  CHECK_OK(llmos_tokenize(model, prompt, strlen(prompt), 1, fresh, 256, &nfresh));
  for (i = 0; i < na; ++i) fresh[nfresh++] = a[i];
  CHECK_OK(llmos_tokenize(model, " Then the dog", 13, 0, then, 16, &nthen));
  for (i = 0; i < nthen; ++i) fresh[nfresh++] = then[i];
  req.prompt = " Then the dog";
  run_tokens(later, &req, path, c, &nc, &reason);
  req.prompt = NULL;
  req.prompt_tokens = fresh;
  req.n_prompt_tokens = nfresh;
  run_tokens(later, &req, NULL, b, &nb, &reason);
  CHECK(nc == 12 && nb == 12);
  for (i = 0; i < nc && i < nb; ++i) CHECK(c[i] == b[i]);

  CHECK_OK(llmos_engine_free(later));
  remove(path);
  free(path);
}

typedef struct Puller {
  llmos_engine *engine;
  uint64_t id;
  int events;
  int finish_reason;
  llmos_status last_status;
} Puller;

static void *pull_until_gone(void *arg) {
  Puller *p = (Puller *)arg;
  for (;;) {
    llmos_event ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    p->last_status = llmos_next_event(p->engine, p->id, &ev, -1);
    if (p->last_status != LLMOS_OK) break;
    ++p->events;
    if (ev.finished) {
      p->finish_reason = ev.finish_reason;
      break;
    }
  }
  return NULL;
}

/* Freeing an engine while another thread waits on it without a time limit: the wait ends (its
 * request is cancelled, or the engine is gone), the free returns, nothing is used after it. */
static void test_free_while_waiting(llmos_model *model) {
  llmos_engine *engine = NULL;
  llmos_engine_params ep = llmos_engine_params_default();
  llmos_sampling_params sp = llmos_sampling_params_default();
  llmos_request req = llmos_request_default();
  Puller p;
  pthread_t thread;
  struct timespec pause = {0, 2000000L};

  ep.kv_cache_blocks = 256;
  CHECK_OK(llmos_engine_create(model, &ep, &engine));
  if (engine == NULL) return;
  sp.max_tokens = 1500;
  sp.ignore_eos = 1;
  req.prompt = "Once upon a time";
  req.sampling = &sp;
  memset(&p, 0, sizeof p);
  p.engine = engine;
  p.finish_reason = -1;
  CHECK_OK(llmos_submit(engine, &req, &p.id));
  CHECK(pthread_create(&thread, NULL, pull_until_gone, &p) == 0);
  nanosleep(&pause, NULL);
  CHECK_OK(llmos_engine_free(engine));
  pthread_join(thread, NULL);
  CHECK((p.last_status == LLMOS_OK &&
         (p.finish_reason == LLMOS_FINISH_CANCELLED || p.finish_reason == LLMOS_FINISH_LENGTH)) ||
        p.last_status == LLMOS_ERR_INVALID_ARGUMENT);
}

/* ---- scoring --------------------------------------------------------------------------- */

/* exp and fabs without libm: the test links the llmos library only. */
static double exp_of(double x) {
  double term = 1.0, sum = 1.0;
  int halvings = 0, k;
  if (x < -700.0) return 0.0;
  while (x < -0.125 || x > 0.125) {
    x /= 2.0;
    ++halvings;
  }
  for (k = 1; k < 14; ++k) {
    term *= x / k;
    sum += term;
  }
  while (halvings-- > 0) sum *= sum;
  return sum;
}

static double abs_of(double x) { return x < 0.0 ? -x : x; }

static double score_of(const llmos_model *model, const llmos_token *ctx, size_t n_ctx,
                       const llmos_token *cont, size_t n_cont) {
  double lp = 1.0;
  CHECK_OK(llmos_score(model, ctx, n_ctx, cont, n_cont, &lp));
  return lp;
}

typedef struct {
  llmos_engine *engine;
  llmos_status status;
} Generator;

static void *generate_meanwhile(void *arg) {
  Generator *g = (Generator *)arg;
  llmos_sampling_params sp = llmos_sampling_params_default();
  char out[2048];
  size_t n = 0;
  sp.max_tokens = 200;
  sp.ignore_eos = 1;
  g->status = llmos_generate(g->engine, "The sun was", &sp, out, sizeof out, &n);
  return NULL;
}

/* llmos_score against the model's own predictions: the single-token scores are log-softmax
 * values (<= 0, exp summing to 1) whose best is the engine's greedy token; a longer
 * continuation's score is the sum of its tokens' scores computed one at a time; the result does
 * not depend on which backend ran it nor on an engine generating meanwhile. */
static void test_score(const char *model_path, llmos_model *model, llmos_engine *engine,
                       const Reference *ref) {
  llmos_token ctx[256], cont[64], seq[320], generated[8];
  size_t n_ctx = 0, n_cont = 0, n_gen = 0, i;
  llmos_model_info info;
  llmos_request req = llmos_request_default();
  llmos_sampling_params sp = llmos_sampling_params_default();
  uint64_t id = 0;
  int finish = 0;
  char *text;
  double best = -1e300, sum_p = 0.0, whole, incremental = 0.0;
  llmos_token argmax = -1;
  llmos_model *fresh = NULL;
  llmos_model_params mp = llmos_model_params_default();
  Generator g;
  pthread_t thread;

  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_OK(llmos_model_get_info(model, &info));
  CHECK_OK(llmos_tokenize(model, ref->prompt, strlen(ref->prompt), 1, ctx, 256, &n_ctx));
  /* A slice of the reference continuation: a plausible text of a dozen tokens or so. */
  CHECK_OK(llmos_tokenize(model, ref->continuation, strlen(ref->continuation) < 40 ? strlen(ref->continuation) : 40,
                          0, cont, 64, &n_cont));
  if (n_ctx == 0 || n_cont < 4 || info.vocab_size <= 0) {
    ++g_failures;
    return;
  }
  /* The engine's greedy next token. */
  sp.temperature = 0.0f;
  sp.max_tokens = 1;
  sp.ignore_eos = 1;
  req.prompt_tokens = ctx;
  req.n_prompt_tokens = n_ctx;
  req.sampling = &sp;
  CHECK_OK(llmos_submit(engine, &req, &id));
  text = pull_all(engine, id, generated, &n_gen, &finish, 0);
  free(text);
  CHECK(n_gen == 1);

  for (i = 0; i < (size_t)info.vocab_size; ++i) {
    const llmos_token t = (llmos_token)i;
    const double lp = score_of(model, ctx, n_ctx, &t, 1);
    CHECK(lp <= 0.0);
    sum_p += exp_of(lp);
    if (lp > best) {
      best = lp;
      argmax = t;
    }
  }
  CHECK(abs_of(sum_p - 1.0) < 1e-4);
  if (n_gen == 1 && argmax != generated[0]) {
    const double lp_greedy = score_of(model, ctx, n_ctx, generated, 1);
    fprintf(stderr, "score: best single token %d (%.6f), greedy %d (%.6f)\n", argmax, best,
            generated[0], lp_greedy);
    CHECK(best - lp_greedy < 1e-4); /* only a near-tie may differ */
  }

  whole = score_of(model, ctx, n_ctx, cont, n_cont);
  CHECK(whole < 0.0);
  memcpy(seq, ctx, n_ctx * sizeof *seq);
  for (i = 0; i < n_cont; ++i) {
    incremental += score_of(model, seq, n_ctx + i, cont + i, 1);
    seq[n_ctx + i] = cont[i];
  }
  if (abs_of(whole - incremental) > 1e-3 * (1.0 + abs_of(whole))) {
    fprintf(stderr, "score: whole %.6f != incremental %.6f\n", whole, incremental);
    ++g_failures;
  }
  /* Splitting differently (more context, shorter continuation) gives the tail's share. */
  CHECK(abs_of(score_of(model, seq, n_ctx + 2, cont + 2, n_cont - 2) -
             (whole - score_of(model, ctx, n_ctx, cont, 2))) < 1e-3 * (1.0 + abs_of(whole)));

  /* The same scores on a model no engine uses (its own backend is borrowed) ... */
  mp.n_threads = 2;
  CHECK_OK(llmos_model_load(model_path, &mp, &fresh));
  if (fresh != NULL) {
    CHECK(abs_of(score_of(fresh, ctx, n_ctx, cont, n_cont) - whole) < 1e-4 * (1.0 + abs_of(whole)));
    CHECK_OK(llmos_model_free(fresh));
  }
  /* ... and while the engine generates on the model's backend. */
  g.engine = engine;
  g.status = LLMOS_ERR_INTERNAL;
  CHECK(pthread_create(&thread, NULL, generate_meanwhile, &g) == 0);
  for (i = 0; i < 20; ++i) {
    CHECK(abs_of(score_of(model, ctx, n_ctx, cont, n_cont) - whole) < 1e-4 * (1.0 + abs_of(whole)));
  }
  pthread_join(thread, NULL);
  CHECK(g.status == LLMOS_OK);
}

static void test_stats(llmos_engine *engine) {
  llmos_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  CHECK_OK(llmos_engine_stats(engine, &s));
  CHECK(s.struct_size == sizeof s);
  CHECK(s.total_requests >= 8);
  CHECK(s.finished_requests >= 8);
  CHECK(s.cancelled_requests >= 2);
  CHECK(s.tokens_generated > 100);
  CHECK(s.prompt_tokens_computed > 0);
  CHECK(s.steps > 0);
  CHECK(s.kv_total_blocks > 0 && s.kv_block_bytes > 0);
  CHECK(s.kv_used_blocks + s.kv_cached_blocks + s.kv_free_blocks == s.kv_total_blocks);
  CHECK(s.num_running == 0 && s.num_waiting == 0);
  CHECK(s.prefix_hit_tokens <= s.prefix_query_tokens);
  /* A shorter struct (an older caller) is written only up to its size. */
  {
    unsigned char raw[sizeof(llmos_stats)];
    llmos_stats *p = (llmos_stats *)(void *)raw;
    memset(raw, 0xAB, sizeof raw);
    p->struct_size = sizeof(size_t) + 2 * sizeof(int64_t);
    CHECK_OK(llmos_engine_stats(engine, p));
    CHECK(raw[sizeof(size_t) + 2 * sizeof(int64_t)] == 0xAB);
  }
}

int main(int argc, char **argv) {
  const char *shared = getenv("LLMOS_SHARED_DIR");
  char model_path[1024], ref_path[1024];
  char *garbage = temp_path("garbage.bin");
  Reference refs[8];
  int n_refs, i;
  llmos_model *model = NULL;
  llmos_engine *engine = NULL;
  llmos_model_params mp = llmos_model_params_default();
  llmos_engine_params ep = llmos_engine_params_default();
  FILE *probe;

  if (shared == NULL || *shared == '\0') shared = argc > 1 ? argv[1] : "../shared";
  sprintf(model_path, "%.900s/models/stories260K.gguf", shared);
  sprintf(ref_path, "%.900s/models/stories260K.greedy.json", shared);
  write_file(garbage, "this is not a GGUF file nor a snapshot, just some bytes long enough");

  test_version_and_status();
  test_invalid_input(garbage);

  probe = fopen(model_path, "rb");
  if (probe == NULL) {
    remove(garbage);
    free(garbage);
    printf("SKIPPED real-model checks: shared data not found: %s (set LLMOS_SHARED_DIR)\n",
           model_path);
    return g_failures > 0 ? 1 : 77;
  }
  fclose(probe);
  n_refs = load_references(ref_path, refs, 8);
  CHECK(n_refs > 0);

  CHECK_OK(llmos_set_log_callback(log_sink, &g_log_messages));
  mp.n_threads = 2;
  CHECK_OK(llmos_model_load(model_path, &mp, &model));
  CHECK(g_log_messages > 0); /* the load is logged */
  CHECK_OK(llmos_set_log_callback(NULL, NULL));
  if (model == NULL) return 1;
  ep.kv_cache_blocks = 256;
  CHECK_OK(llmos_engine_create(model, &ep, &engine));
  if (engine == NULL) return 1;

  test_invalid_arguments_on_live_handles(model, engine, garbage);
  test_tokenizer(model);
  if (n_refs > 0) {
    test_generate(engine, refs, n_refs);
    test_streaming_and_cancel(engine, &refs[0]);
    test_callbacks(engine, &refs[0]);
  }
  test_snapshots(model, engine);
  if (n_refs > 0) test_score(model_path, model, engine, &refs[0]);
  test_stats(engine);
  test_free_while_waiting(model);

  /* The model may go first: the engine keeps what it needs. */
  CHECK_OK(llmos_model_free(model));
  CHECK_FAILS(llmos_model_free(model), LLMOS_ERR_INVALID_ARGUMENT, "llmos_model_free");
  if (n_refs > 0) test_generate(engine, refs, 1);
  CHECK_OK(llmos_engine_free(engine));
  CHECK_FAILS(llmos_engine_free(engine), LLMOS_ERR_INVALID_ARGUMENT, "llmos_engine_free");

  for (i = 0; i < n_refs; ++i) {
    free(refs[i].prompt);
    free(refs[i].continuation);
  }
  remove(garbage);
  free(garbage);
  if (g_failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
