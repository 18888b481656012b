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

namespace {

// The shared-chunk counter: the job's generation (low 32 bits) | chunk count | next chunk.
constexpr uint64_t kCountMask = 0xffff;
static_assert(1024 * ThreadPool::kChunksPerThread <= kCountMask, "chunk counts fit 16 bits");

uint64_t shared_counter(uint64_t generation, int chunks, int next) {
  return (generation << 32) | (static_cast<uint64_t>(chunks) << 16) | static_cast<uint64_t>(next);
}

}  // namespace

// Claims thread `thread`'s starting chunk of job `generation`; false if someone already did.
// Generations only grow, so a worker that wakes up late, after its job ended, can never claim a
// chunk of it (all its chunks were claimed) nor of a later job (its generation is older).
bool ThreadPool::claim_start(int thread, uint64_t generation) {
  uint64_t seen = claimed_[thread].load(std::memory_order_acquire);
  while (seen < generation) {
    if (claimed_[thread].compare_exchange_weak(seen, generation, std::memory_order_acq_rel)) {
      return true;
    }
  }
  return false;
}

// Claims the next shared chunk of job `generation`, if any is left.
bool ThreadPool::claim_shared(uint64_t generation, int* chunk) {
  uint64_t seen = next_shared_.load(std::memory_order_acquire);
  for (;;) {
    if ((seen >> 32) != (generation & 0xffffffffu)) return false;  // another job's counter
    const int next = static_cast<int>(seen & kCountMask);
    if (next >= static_cast<int>((seen >> 16) & kCountMask)) return false;
    if (next_shared_.compare_exchange_weak(seen, seen + 1, std::memory_order_acq_rel)) {
      *chunk = next;
      return true;
    }
  }
}

void ThreadPool::run_chunk(int thread, int chunk) {
  // Read the job before finishing it: once the last chunk is counted the caller may return
  // and publish the next job.
  const int chunks = job_chunks_;
  const std::function<void(int, int64_t, int64_t)>& job = *job_;
  int64_t begin, end;
  part_range(job_n_, chunks, chunk, &begin, &end);
  try {
    job(thread, begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!first_error_) first_error_ = std::current_exception();
  }
  if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (caller_waiting_) work_done_.notify_one();
  }
}

void ThreadPool::run_chunks(int thread, uint64_t generation, int threads) {
  if (claim_start(thread, generation)) run_chunk(thread, thread);
  int chunk;
  while (claim_shared(generation, &chunk)) run_chunk(thread, chunk);
  // Starting chunks of threads that have not begun (asleep, or not scheduled on a busy host).
  for (int other = 0; other < threads; ++other) {
    if (other != thread && claim_start(other, generation)) run_chunk(thread, other);
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
    int threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_acquire);
      threads = job_threads_;
    }
    // A successful claim means job `seen` is still running (its caller waits for every chunk),
    // so the job's fields stay those of `seen` while the chunk runs.
    if (index < threads) run_chunks(index, seen, threads);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  // Floor division: every chunk then gets at least `grain` items (n / chunks >= grain), as the
  // header promises; rounding up would split 10 items with grain 4 into 4 + 3 + 3.
  const int threads = static_cast<int>(std::min<int64_t>(num_threads_, n / grain));
  if (threads <= 1 || workers_.empty()) {
    fn(0, 0, n);
    return;
  }
  const int chunks =
      static_cast<int>(std::min<int64_t>(int64_t{threads} * kChunksPerThread, n / grain));
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation = generation_.load(std::memory_order_relaxed) + 1;
    // The counter first: a late worker of the previous job sees another generation in it.
    next_shared_.store(shared_counter(generation, chunks, threads), std::memory_order_release);
    job_ = &fn;
    job_n_ = n;
    job_threads_ = threads;
    job_chunks_ = chunks;
    done_.store(0, std::memory_order_relaxed);
    first_error_ = nullptr;
    generation_.store(generation, std::memory_order_release);
    if (sleepers_ > 0) work_ready_.notify_all();
  }
  run_chunks(0, generation, threads);
  auto done = [&] { return done_.load(std::memory_order_acquire) == chunks; };
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
