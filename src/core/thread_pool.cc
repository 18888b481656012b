#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace llmos {
namespace {

// Range [begin, end) of part `part` when n items are split into `parts` near-equal pieces.
void part_range(int64_t n, int parts, int part, int64_t* begin, int64_t* end) {
  const int64_t base = n / parts;
  const int64_t extra = n % parts;
  *begin = part * base + std::min<int64_t>(part, extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until pred() holds or kSpinMicros pass; true if pred() held. Yields between rounds so
// that on a busy machine the thread we wait for gets the core.
template <typename Pred>
bool spin_until(bool enabled, Pred pred) {
  if (!enabled) return pred();
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (Clock::now() >= deadline) return pred();
    std::this_thread::yield();
  }
}

}  // namespace

int ThreadPool::default_thread_count() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool::ThreadPool(int num_threads) {
  LLMOS_CHECK_ARG(num_threads >= 0 && num_threads <= 1024, "thread count ", num_threads,
                  " must be between 0 (auto) and 1024");
  num_threads_ = num_threads == 0 ? default_thread_count() : num_threads;
  // Spinning only pays when every thread has a core of its own.
  spin_ = num_threads_ <= default_thread_count();
  claimed_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(num_threads_));
  for (int i = 0; i < num_threads_; ++i) claimed_[i].store(0, std::memory_order_relaxed);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  work_ready_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims range `range` of job `generation`; false if someone already did. Generations only
// grow, so a worker that wakes up late, after its job ended, can never claim a range of it
// (all its ranges were claimed) nor of a later job (its generation is older).
bool ThreadPool::claim(int range, uint64_t generation) {
  uint64_t seen = claimed_[range].load(std::memory_order_acquire);
  while (seen < generation) {
    if (claimed_[range].compare_exchange_weak(seen, generation, std::memory_order_acq_rel)) {
      return true;
    }
  }
  return false;
}

void ThreadPool::run_range(int range) {
  // Read the job before finishing it: once the last range is counted the caller may return
  // and publish the next job.
  const int parts = job_parts_;
  const std::function<void(int, int64_t, int64_t)>& job = *job_;
  int64_t begin, end;
  part_range(job_n_, parts, range, &begin, &end);
  try {
    job(range, begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!first_error_) first_error_ = std::current_exception();
  }
  if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == parts) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (caller_waiting_) work_done_.notify_one();
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto has_work = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(spin_, has_work)) {
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleepers_;
      work_ready_.wait(lock, has_work);
      --sleepers_;
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    int parts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_acquire);
      parts = job_parts_;
    }
    // A successful claim means job `seen` is still running (its caller waits for every range),
    // so job_, job_n_ and job_parts_ stay those of `seen` while the range runs.
    if (index < parts && claim(index, seen)) run_range(index);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  // Floor division: every part then gets at least `grain` items (n / parts >= grain), as the
  // header promises; rounding up would split 10 items with grain 4 into 4 + 3 + 3.
  const int parts = static_cast<int>(std::min<int64_t>(num_threads_, n / grain));
  if (parts <= 1 || workers_.empty()) {
    fn(0, 0, n);
    return;
  }
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_parts_ = parts;
    done_.store(0, std::memory_order_relaxed);
    first_error_ = nullptr;
    generation = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (sleepers_ > 0) work_ready_.notify_all();
  }
  // The first range, then whatever no worker has started.
  for (int r = 0; r < parts; ++r) {
    if (claim(r, generation)) run_range(r);
  }
  auto done = [&] { return done_.load(std::memory_order_acquire) == parts; };
  if (!spin_until(spin_, done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    caller_waiting_ = true;
    work_done_.wait(lock, done);
    caller_waiting_ = false;
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
    error = first_error_;
    first_error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace llmos
