// A persistent pool of worker threads. One per engine; kernels split work with parallel_for.
// A forward pass issues ~10 parallel_for calls per layer a few microseconds apart, so waking a
// sleeping thread each time (tens of microseconds) would dominate a decode step. Workers
// therefore spin briefly (kSpinMicros) after each job before they sleep on a condition
// variable; idle for longer, they cost nothing, so a library that runs its own threads
// (oneDNN) is not starved while ours are idle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llmos {

class ThreadPool {
 public:
  // num_threads counts the calling thread: a pool of 1 runs everything inline.
  // 0 means "one per hardware thread".
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(thread_index, begin, end) over [0, n) split into contiguous chunks of at least
  // `grain` items; returns when all chunks are done. At most num_threads threads take part (as
  // many as n / grain allows), and thread_index is the index of the thread running the chunk,
  // in [0, that number): a thread runs its chunks one after another, so per-thread scratch
  // indexed by it is never shared. Each taking part has a chunk of its own to start with (the
  // calling thread the first); the rest (up to kChunksPerThread per thread in all) go to
  // whichever thread is free first, and the caller also runs any starting chunk whose worker
  // has not begun yet. On a busy host, where one core is slowed by a neighbour, the faster
  // thread then takes over part of its share instead of waiting for it. The first exception
  // thrown by fn is rethrown here after all chunks finish. Not re-entrant: fn must not call
  // parallel_for on the same pool.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int thread, int64_t begin, int64_t end)>& fn);

  // Chunks per taking-part thread when the items allow; 1 is the static split.
  static constexpr int kChunksPerThread = 4;
  static int default_thread_count();
  // How long a worker (and the caller, waiting for workers) spins before sleeping.
  static constexpr int kSpinMicros = 200;

 private:
  void worker_loop(int index);
  // Runs chunks of job `generation` as thread `thread`: its own starting chunk if still
  // unclaimed, then shared chunks, then the starting chunks of the job's other `threads` that
  // nobody has claimed.
  void run_chunks(int thread, uint64_t generation, int threads);
  bool claim_start(int thread, uint64_t generation);
  bool claim_shared(uint64_t generation, int* chunk);
  void run_chunk(int thread, int chunk);

  int num_threads_;
  bool spin_ = true;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // Published under mutex_ before generation_ is bumped (release); read after claiming a chunk
  // of that generation (its caller waits for every chunk, so they stay valid meanwhile).
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_threads_ = 0;  // threads taking part; chunk t < job_threads_ is thread t's to start
  int job_chunks_ = 0;
  std::atomic<uint64_t> generation_{0};
  // Per thread: the last generation whose starting chunk was claimed (each runs once per job).
  std::unique_ptr<std::atomic<uint64_t>[]> claimed_;
  // The next shared chunk, tagged with its job: (generation << 32) | (chunks << 16) | next.
  // A claim succeeds only while the tag is the claimer's generation, so a worker that wakes
  // after its job ended can never take a chunk of a later job, and the count travels with the
  // tag (a stale worker never reads another job's fields to decide).
  std::atomic<uint64_t> next_shared_{0};
  std::atomic<int> done_{0};  // chunks finished in the current job
  std::atomic<bool> stopping_{false};
  int sleepers_ = 0;          // workers waiting on work_ready_ (guarded by mutex_)
  bool caller_waiting_ = false;  // the caller waits on work_done_ (guarded by mutex_)
  std::exception_ptr first_error_;  // guarded by mutex_
};

}  // namespace llmos
