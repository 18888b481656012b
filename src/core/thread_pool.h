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

  // Calls fn(thread_index, begin, end) over [0, n) split into at most num_threads contiguous
  // ranges of at least `grain` items; returns when all ranges are done. Range i is passed
  // thread_index i (so per-thread scratch indexed by it is never shared). The calling thread
  // takes the first range, then any range no worker has started yet: on a busy machine a
  // worker that is not scheduled in time does not hold the call up. The first exception thrown
  // by fn is rethrown here after all ranges finish. Not re-entrant: fn must not call
  // parallel_for on the same pool.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int thread, int64_t begin, int64_t end)>& fn);

  static int default_thread_count();
  // How long a worker (and the caller, waiting for workers) spins before sleeping.
  static constexpr int kSpinMicros = 200;

 private:
  void worker_loop(int index);

  int num_threads_;
  bool spin_ = true;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // Published under mutex_ before generation_ is bumped (release); read after observing it.
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_parts_ = 0;
  std::atomic<uint64_t> generation_{0};
  // Per range: the last generation in which it was claimed (a range runs once per job).
  std::unique_ptr<std::atomic<uint64_t>[]> claimed_;
  std::atomic<int> done_{0};  // ranges finished in the current job
  std::atomic<bool> stopping_{false};
  int sleepers_ = 0;          // workers waiting on work_ready_ (guarded by mutex_)
  bool caller_waiting_ = false;  // the caller waits on work_done_ (guarded by mutex_)
  bool claim(int range, uint64_t generation);
  void run_range(int range);  // the claimed range of the current job
  std::exception_ptr first_error_;  // guarded by mutex_
};

}  // namespace llmos
