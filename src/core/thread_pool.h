// A persistent pool of worker threads. One per engine; kernels split work with parallel_for.
// Workers sleep on a condition variable between jobs (they never spin), so a library that
// runs its own threads (oneDNN) is not starved while ours are idle.
#pragma once

#include <condition_variable>
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
  // ranges of at least `grain` items; returns when all ranges are done. The calling thread
  // takes the first range. The first exception thrown by fn is rethrown here after all ranges
  // finish. Not re-entrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int thread, int64_t begin, int64_t end)>& fn);

  static int default_thread_count();

 private:
  void worker_loop(int index);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_parts_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr first_error_;
};

}  // namespace llmos
