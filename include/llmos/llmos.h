/* llmos C API: a stable C99 ABI over the llmos engine, usable from any FFI.
 *
 * Rules that hold for every function (docs/c-api.md has the per-function detail):
 *  - Every function that can fail returns llmos_status; LLMOS_OK is 0. After a failure,
 *    llmos_last_error() returns a message for it on the calling thread.
 *  - Every function is safe on NULL, freed or otherwise invalid handles and arguments: it
 *    reports LLMOS_ERR_INVALID_ARGUMENT (or the status named below) instead of crashing.
 *  - Param structs start with `size_t struct_size`. Get one from llmos_*_default() (which sets
 *    struct_size and every default) and change the fields you need; a NULL params pointer means
 *    the defaults. Output structs (llmos_event, llmos_stats, llmos_model_info) are written up
 *    to the struct_size the caller set, so set it to sizeof the struct before the call.
 *  - Text is UTF-8. Output text buffers are NUL-terminated; when a buffer is too small the call
 *    returns LLMOS_ERR_BUFFER_TOO_SMALL and *n_out holds the capacity needed.
 *  - Handles may be used from any thread. A freed or never-created handle is reported, never
 *    dereferenced; calls in progress keep their object alive until they return.
 *  - Only llmos_* symbols are exported; no C++ exception ever crosses this boundary.
 */
#ifndef LLMOS_LLMOS_H
#define LLMOS_LLMOS_H

#include <stddef.h>
#include <stdint.h>

#include "llmos/version.h"

#if defined(__GNUC__) || defined(__clang__)
#define LLMOS_API __attribute__((visibility("default")))
#else
#define LLMOS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Basic types                                                                              */

typedef int32_t llmos_token;

/* Opaque handles. */
typedef struct llmos_model llmos_model;
typedef struct llmos_engine llmos_engine;

typedef enum llmos_status {
  LLMOS_OK = 0,
  LLMOS_ERR_INVALID_ARGUMENT = 1, /* a NULL/invalid handle or argument, a bad param field */
  LLMOS_ERR_IO = 2,               /* a file could not be opened, read or written */
  LLMOS_ERR_FORMAT = 3,           /* a file is malformed (GGUF model, snapshot) */
  LLMOS_ERR_UNSUPPORTED = 4,      /* valid but not supported (architecture, device, ...) */
  LLMOS_ERR_OUT_OF_MEMORY = 5,
  LLMOS_ERR_CANCELLED = 6,        /* the request was cancelled */
  LLMOS_ERR_NOT_FOUND = 7,        /* unknown or already released request id, no snapshot */
  LLMOS_ERR_BUSY = 8,             /* a limit was reached, or the call would deadlock */
  LLMOS_ERR_INTERNAL = 9,         /* a bug in llmos */
  LLMOS_ERR_BUFFER_TOO_SMALL = 10, /* *n_out holds the capacity needed */
  LLMOS_ERR_TIMEOUT = 11           /* no event arrived within timeout_ms */
} llmos_status;

typedef enum llmos_finish_reason {
  LLMOS_FINISH_NONE = 0, /* not finished */
  LLMOS_FINISH_LENGTH = 1, /* max_tokens or the context length reached */
  LLMOS_FINISH_EOS = 2,    /* an end-of-generation token */
  LLMOS_FINISH_STOP = 3,   /* a stop string or stop token */
  LLMOS_FINISH_CANCELLED = 4,
  LLMOS_FINISH_ERROR = 5   /* see llmos_event.error */
} llmos_finish_reason;

typedef enum llmos_priority {
  LLMOS_PRIORITY_REALTIME = 0,
  LLMOS_PRIORITY_INTERACTIVE = 1,
  LLMOS_PRIORITY_BACKGROUND = 2
} llmos_priority;

typedef enum llmos_kv_dtype {
  LLMOS_KV_F16 = 0,
  LLMOS_KV_BF16 = 1,
  LLMOS_KV_F32 = 2
} llmos_kv_dtype;

typedef enum llmos_preemption_mode {
  LLMOS_PREEMPT_RECOMPUTE = 0, /* a preempted request drops its KV and recomputes it */
  LLMOS_PREEMPT_SWAP = 1       /* its KV moves to host memory and back */
} llmos_preemption_mode;

typedef enum llmos_log_level {
  LLMOS_LOG_DEBUG = 0,
  LLMOS_LOG_INFO = 1,
  LLMOS_LOG_WARN = 2,
  LLMOS_LOG_ERROR = 3
} llmos_log_level;

/* ---------------------------------------------------------------------------------------- */
/* Version, errors, logging                                                                 */

/* The library's version, "MAJOR.MINOR.PATCH" (compare with LLMOS_VERSION_STRING). Static. */
LLMOS_API const char *llmos_version(void);

/* A fixed name for a status ("LLMOS_ERR_IO", ...; "unknown status" otherwise). Static. */
LLMOS_API const char *llmos_status_string(llmos_status status);

/* The message of the last failed call on this thread ("" if none). Not cleared by successful
 * calls. Valid until the next failing llmos call on this thread. */
LLMOS_API const char *llmos_last_error(void);

/* Receives the library's log messages (none are produced without a callback). `message` is
 * valid during the call only. The callback may run on any thread, one call at a time, and must
 * not call llmos_set_log_callback. NULL removes the callback. Process-wide. */
typedef void (*llmos_log_callback)(llmos_log_level level, const char *message, void *user_data);
LLMOS_API llmos_status llmos_set_log_callback(llmos_log_callback callback, void *user_data);

/* ---------------------------------------------------------------------------------------- */
/* Models                                                                                   */

typedef struct llmos_model_params {
  size_t struct_size;
  int32_t n_threads;             /* CPU threads of the model's backend; 0: one per hardware thread */
  const char *device;            /* "cpu" (default; NULL or "" mean "cpu") or "cuda[:N]" */
  int32_t use_reference_kernels; /* nonzero: the scalar double-precision kernels (slow oracle) */
} llmos_model_params;

LLMOS_API llmos_model_params llmos_model_params_default(void);

/* Loads a GGUF model (weights are mapped, not copied). On success *out owns the model; free it
 * with llmos_model_free. On failure *out is set to NULL. Errors: IO, FORMAT, UNSUPPORTED. */
LLMOS_API llmos_status llmos_model_load(const char *path, const llmos_model_params *params,
                                        llmos_model **out);

/* Frees a model. NULL is a no-op; a freed or unknown handle is LLMOS_ERR_INVALID_ARGUMENT.
 * Engines created from it keep what they need alive, so a model may be freed before its engines;
 * calls already running on other threads finish on the object they started with. */
LLMOS_API llmos_status llmos_model_free(llmos_model *model);

typedef struct llmos_model_info {
  size_t struct_size;
  const char *architecture; /* "llama", "qwen2"; owned by the model */
  const char *name;         /* general.name, may be ""; owned by the model */
  int64_t vocab_size;
  int64_t context_length;
  int64_t n_layers;
  int64_t n_heads;
  int64_t n_kv_heads;
  int64_t dim;
  llmos_token bos; /* -1 when the vocabulary has none */
  llmos_token eos; /* -1 when the vocabulary has none */
  int32_t add_bos; /* nonzero when prompts start with BOS */
  int32_t n_threads; /* threads of the model's backend */
} llmos_model_info;

/* Fills *info (set info->struct_size = sizeof(llmos_model_info) first). */
LLMOS_API llmos_status llmos_model_get_info(const llmos_model *model, llmos_model_info *info);

/* Text -> tokens. `text` holds text_len bytes (it may be NULL when text_len is 0). add_bos
 * nonzero adds the vocabulary's special tokens (BOS when it asks for one), as prompts get.
 * On success *n_out is the number of tokens written. When capacity is too small (tokens_out
 * may then be NULL) the call returns LLMOS_ERR_BUFFER_TOO_SMALL and *n_out is the count needed.
 * Thread-safe, also while engines run. */
LLMOS_API llmos_status llmos_tokenize(const llmos_model *model, const char *text, size_t text_len,
                                      int add_bos, llmos_token *tokens_out, size_t capacity,
                                      size_t *n_out);

/* Tokens -> text (the inverse of llmos_tokenize for ordinary text: the leading space the
 * tokenizer adds is removed; control tokens print as ""). text_out receives NUL-terminated text
 * and *n_out its length without the NUL. When capacity is too small (text_out may then be NULL)
 * the call returns LLMOS_ERR_BUFFER_TOO_SMALL and *n_out is the capacity needed (with the NUL).
 * A token outside the vocabulary is LLMOS_ERR_INVALID_ARGUMENT. Thread-safe. */
LLMOS_API llmos_status llmos_detokenize(const llmos_model *model, const llmos_token *tokens,
                                        size_t n_tokens, char *text_out, size_t capacity,
                                        size_t *n_out);

/* The text of one token as it is printed when generated (no space removed); buffer rules as
 * llmos_detokenize. */
LLMOS_API llmos_status llmos_token_to_piece(const llmos_model *model, llmos_token token,
                                            char *text_out, size_t capacity, size_t *n_out);

/* Scores a continuation: *logprob receives the sum, over the continuation's tokens, of the
 * natural-log probability the model assigns to each token given every token before it
 * (context first, then the continuation's earlier tokens), so it is <= 0. Both sequences are
 * token ids used as is (no BOS added: start `context` with one when the vocabulary asks, as
 * llmos_tokenize(..., add_bos = 1) gives). n_context >= 1, n_continuation >= 1 and together at
 * most the model's context length. Runs one forward pass on a private KV cache, independent of
 * any engine: while an engine runs on the model's own backend, scoring uses a second backend
 * over the same mapped weights (built at the first such call and kept with the model). Calls
 * on one model are serialised; thread-safe. On failure *logprob is 0. Errors: INVALID_ARGUMENT
 * (NULL pointers, empty or too long sequences, a token outside the vocabulary), OUT_OF_MEMORY. */
LLMOS_API llmos_status llmos_score(const llmos_model *model, const llmos_token *context,
                                   size_t n_context, const llmos_token *continuation,
                                   size_t n_continuation, double *logprob);

/* ---------------------------------------------------------------------------------------- */
/* Engines                                                                                  */

/* A per-client limit (a fixed-layout struct used in arrays; it has no struct_size). */
typedef struct llmos_client_quota {
  const char *client_id;   /* NULL means "" */
  int32_t max_running;     /* sequences running at once; 0: unlimited */
  int64_t max_kv_blocks;   /* KV blocks of its running sequences; 0: unlimited */
  int32_t max_outstanding; /* queued + running requests; over it submit returns BUSY; 0: none */
} llmos_client_quota;

typedef struct llmos_engine_params {
  size_t struct_size;
  int32_t n_threads;   /* 0: the model's backend; else a backend with this many threads */
  const char *device;  /* NULL or "": the model's device; else "cpu" or "cuda[:N]" */
  int64_t kv_cache_blocks; /* KV budget in blocks when > 0 */
  int64_t kv_cache_bytes;  /* else in bytes when > 0; else room for max_sequences contexts */
  int32_t block_size;      /* tokens per KV block (16) */
  int32_t kv_dtype;        /* llmos_kv_dtype (LLMOS_KV_F16) */
  int32_t enable_prefix_caching; /* share KV blocks of common prompt prefixes (1) */
  int32_t max_batched_tokens;    /* tokens computed per engine step (512) */
  int32_t max_sequences;         /* sequences running at once (64) */
  int32_t max_model_len;         /* 0: the model's context length */
  int32_t chunked_prefill;       /* split long prompts over steps (1) */
  int32_t preemption_mode;       /* llmos_preemption_mode (LLMOS_PREEMPT_RECOMPUTE) */
  int64_t swap_space_bytes;      /* host memory for swapped-out sequences (256 MiB) */
  double watermark;              /* fraction of KV blocks kept free when admitting (0.01) */
  int32_t aging_steps;           /* steps a waiting request waits per priority level gained (64) */
  int32_t reject_unknown_clients;             /* nonzero: only clients listed in quotas submit */
  const llmos_client_quota *default_quota;    /* NULL: unlimited */
  const llmos_client_quota *quotas;           /* n_quotas entries, one per client id */
  size_t n_quotas;
} llmos_engine_params;

LLMOS_API llmos_engine_params llmos_engine_params_default(void);

/* Creates an engine serving `model` (a step thread starts). The engine shares the model's
 * weights; it shares the model's backend too when n_threads and device ask for nothing else and
 * no other engine uses it (otherwise it builds its own backend over the same mapped file). On
 * failure *out is set to NULL. */
LLMOS_API llmos_status llmos_engine_create(llmos_model *model, const llmos_engine_params *params,
                                           llmos_engine **out);

/* Cancels every request still running, waits for calls in progress on other threads to return,
 * joins the step thread and frees the engine. NULL is a no-op. Returns LLMOS_ERR_BUSY when
 * called from one of this engine's callbacks (which run on its step thread). */
LLMOS_API llmos_status llmos_engine_free(llmos_engine *engine);

/* ---------------------------------------------------------------------------------------- */
/* Generation                                                                               */

typedef struct llmos_sampling_params {
  size_t struct_size;
  float temperature;    /* 0: greedy (0.8) */
  int32_t top_k;        /* <= 0: off (40) */
  float top_p;          /* 1: off (0.95) */
  float min_p;          /* 0: off (0.05) */
  float repeat_penalty; /* 1: off (1.0) */
  int32_t repeat_last_n; /* tokens the penalty looks back over (64) */
  uint64_t seed;        /* the request's random seed (0) */
  int32_t max_tokens;   /* tokens to generate at most (128) */
  int32_t ignore_eos;   /* nonzero: end-of-generation tokens do not end the request (0) */
} llmos_sampling_params;

LLMOS_API llmos_sampling_params llmos_sampling_params_default(void);

/* Blocking convenience: runs one prompt (BOS added as the vocabulary asks) through the engine's
 * scheduler and writes the continuation only (not the prompt), NUL-terminated, to text_out;
 * *n_out is its length without the NUL. When capacity is too small the call returns
 * LLMOS_ERR_BUFFER_TOO_SMALL, *n_out is the capacity needed, and text_out (when capacity > 0)
 * holds the continuation truncated to capacity - 1 bytes. A request that fails returns its
 * status. Runs concurrently with other calls on the engine. */
LLMOS_API llmos_status llmos_generate(llmos_engine *engine, const char *prompt,
                                      const llmos_sampling_params *sampling, char *text_out,
                                      size_t capacity, size_t *n_out);

/* One streaming event. */
typedef struct llmos_event {
  size_t struct_size;
  uint64_t request_id;
  int32_t finished;      /* nonzero on the last event of a request */
  llmos_token token;     /* the generated token (-1 on the last event) */
  const char *text;      /* new text, NUL-terminated (may be "" while a UTF-8 character is
                            incomplete; the last event may carry held-back text) */
  size_t text_len;
  int32_t finish_reason; /* llmos_finish_reason, on the last event */
  const char *error;     /* "" unless finish_reason is LLMOS_FINISH_ERROR */
  /* On the last event, the request's summary (0 on the others): */
  int32_t num_generated;            /* tokens generated */
  int32_t num_preemptions;          /* times the scheduler preempted it */
  int32_t num_cached_prompt_tokens; /* prompt tokens served by the prefix cache */
  double time_to_first_token;       /* seconds from submit to the first token (0: none came) */
  double total_time;                /* seconds from submit to the end */
} llmos_event;

/* Push streaming: called on the engine's step thread for every event of the request, the last
 * included; `event` and its strings are valid during the call only. Return 0 to go on, nonzero
 * to cancel the request (its last event follows). It must return quickly: it may call
 * llmos_cancel, llmos_engine_stats, llmos_snapshot_save and non-blocking
 * llmos_next_event (timeout 0), but not llmos_generate, blocking llmos_next_event or
 * llmos_engine_free on its own engine (those return LLMOS_ERR_BUSY there). */
typedef int (*llmos_event_callback)(const llmos_event *event, void *user_data);

typedef struct llmos_request {
  size_t struct_size;
  const char *prompt;                   /* NUL-terminated; ignored when n_prompt_tokens > 0 */
  const llmos_token *prompt_tokens;     /* used as the prompt as is (no BOS added) */
  size_t n_prompt_tokens;
  const llmos_sampling_params *sampling; /* NULL: llmos_sampling_params_default() */
  int32_t priority;                     /* llmos_priority (LLMOS_PRIORITY_INTERACTIVE) */
  const char *client_id;                /* quota key; NULL means "" */
  const char *const *stop_strings;      /* generation ends before any of these; text excludes it */
  size_t n_stop_strings;
  const llmos_token *stop_tokens;       /* generation ends after any of these */
  size_t n_stop_tokens;
  int32_t keep_context;  /* nonzero: keep the context when the request ends (llmos_snapshot_save) */
  llmos_event_callback callback; /* NULL: pull events with llmos_next_event */
  void *user_data;
} llmos_request;

LLMOS_API llmos_request llmos_request_default(void);

/* Validates and queues a request; *request_id identifies it (ids start at 1). Every string and
 * array in *req is copied before the call returns. Errors: INVALID_ARGUMENT naming the bad field
 * (empty prompt, prompt too long for the context, bad sampling, unknown client...), BUSY when
 * the client's max_outstanding is reached. */
LLMOS_API llmos_status llmos_submit(llmos_engine *engine, const llmos_request *req,
                                    uint64_t *request_id);

/* Pulls the next event of a request submitted without a callback, waiting up to timeout_ms
 * (0: do not wait; negative: wait as long as it takes). Set event->struct_size first. The
 * strings in *event stay valid until this thread's next llmos_next_event call. After the last
 * event (finished != 0) the id is released and further calls return LLMOS_ERR_NOT_FOUND.
 * Errors: TIMEOUT (no event yet), NOT_FOUND (unknown or released id, or a callback request).
 * Events of one request may be pulled by one thread at a time. */
LLMOS_API llmos_status llmos_next_event(llmos_engine *engine, uint64_t request_id,
                                        llmos_event *event, int timeout_ms);

/* Asks the engine to end a request at its next step; its last event has finish reason
 * LLMOS_FINISH_CANCELLED. LLMOS_ERR_NOT_FOUND when the id is unknown or already ended. Any
 * thread, callbacks included. */
LLMOS_API llmos_status llmos_cancel(llmos_engine *engine, uint64_t request_id);

typedef struct llmos_stats {
  size_t struct_size;
  int64_t num_waiting;   /* queued, never run */
  int64_t num_running;
  int64_t num_preempted; /* queued again after preemption */
  int64_t num_swapped;   /* of those, with their KV in host memory */
  int64_t total_preemptions;
  int64_t total_requests;
  int64_t finished_requests;
  int64_t cancelled_requests;
  int64_t steps;
  int64_t prompt_tokens_computed;
  int64_t tokens_generated;
  double decode_tokens_per_second; /* over the last seconds of steps */
  double busy_seconds;             /* time spent in steps */
  int64_t kv_total_blocks;
  int64_t kv_used_blocks;
  int64_t kv_cached_blocks; /* free, holding a reusable prefix */
  int64_t kv_free_blocks;
  int64_t kv_block_bytes;
  int64_t prefix_query_tokens; /* prompt tokens looked up in the prefix cache */
  int64_t prefix_hit_tokens;   /* of those, served from it */
  int64_t swap_used_bytes;
} llmos_stats;

/* A consistent copy of the engine's counters as of its last step. Set stats->struct_size first. */
LLMOS_API llmos_status llmos_engine_stats(const llmos_engine *engine, llmos_stats *stats);

/* ---------------------------------------------------------------------------------------- */
/* Context snapshots: switch a conversation out of the engine and resume it later           */

/* Writes the context kept by an ended request that was submitted with keep_context (its token
 * history and K/V) to `path`, and releases it from the engine. Errors: NOT_FOUND (no kept
 * context: not submitted with keep_context, not ended yet, or already saved), IO. */
LLMOS_API llmos_status llmos_snapshot_save(llmos_engine *engine, uint64_t request_id,
                                           const char *path);

/* Loads a snapshot file and submits *req resuming from it: req's prompt (text, tokenized without
 * BOS, or tokens; it may be empty) is appended to the saved history and only new tokens are
 * computed. The engine must serve the same model with the same block size and KV dtype.
 * Otherwise as llmos_submit. Errors: IO, FORMAT (a damaged file), INVALID_ARGUMENT (another
 * model or KV layout). */
LLMOS_API llmos_status llmos_snapshot_restore(llmos_engine *engine, const char *path,
                                              const llmos_request *req, uint64_t *request_id);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LLMOS_LLMOS_H */
