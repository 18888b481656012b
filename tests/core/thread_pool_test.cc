#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace llmos {
namespace {

struct Range {
  int thread;
  int64_t begin;
  int64_t end;
};

// Runs one parallel_for, recording the ranges it was split into (sorted by begin).
std::vector<Range> record_ranges(ThreadPool& pool, int64_t n, int64_t grain) {
  std::mutex mu;
  std::vector<Range> ranges;
  pool.parallel_for(n, grain, [&](int thread, int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mu);
    ranges.push_back({thread, begin, end});
  });
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  return ranges;
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {1, 2, 3, 5, 7, 8, 9, 31, 100, 1000, 4097}) {
      for (int64_t grain : {0, 1, 2, 3, 7, 64, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, grain, [&](int, int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1)
              << "index " << i << " n " << n << " grain " << grain << " threads " << threads;
        }
      }
    }
  }
}

TEST(ThreadPool, ChunksAreContiguousAndRespectGrain) {
  for (int threads : {2, 3, 4, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 4, 5, 7, 10, 16, 33, 257}) {
      for (int64_t grain : {1, 2, 3, 4, 5, 16}) {
        const auto ranges = record_ranges(pool, n, grain);
        const std::string where = "n " + std::to_string(n) + " grain " + std::to_string(grain) +
                                  " threads " + std::to_string(threads);
        // As many threads as the grain allows take part, each with up to kChunksPerThread chunks.
        const int64_t taking_part = std::max<int64_t>(1, std::min<int64_t>(threads, n / grain));
        const int64_t expected_chunks =
            taking_part == 1 ? 1
                             : std::min<int64_t>(taking_part * ThreadPool::kChunksPerThread, n / grain);
        ASSERT_EQ(static_cast<int64_t>(ranges.size()), expected_chunks) << where;
        EXPECT_EQ(ranges.front().begin, 0) << where;
        EXPECT_EQ(ranges.back().end, n) << where;
        for (size_t i = 0; i < ranges.size(); ++i) {
          EXPECT_LT(ranges[i].begin, ranges[i].end) << where;  // no empty calls
          if (i > 0) {
            EXPECT_EQ(ranges[i].begin, ranges[i - 1].end) << where;
          }
          // More than one chunk only when each can have at least `grain` items.
          if (ranges.size() > 1) {
            EXPECT_GE(ranges[i].end - ranges[i].begin, grain) << where;
          }
          EXPECT_GE(ranges[i].thread, 0) << where;
          EXPECT_LT(ranges[i].thread, taking_part) << where;
        }
      }
    }
  }
}

// Per-thread scratch indexed by the thread index is safe: no index is ever in two calls at once,
// however the chunks are shared out. And a slowed thread's share is taken over by the others:
// the caller's first chunk waits (bounded) until every other chunk has run, which only works
// if the other threads run the shared chunks without it.
TEST(ThreadPool, ThreadIndexIsNeverInTwoCallsAtOnceAndSlowThreadsAreHelped) {
  const int threads = 4;
  const int chunks = threads * ThreadPool::kChunksPerThread;
  ThreadPool pool(threads);
  std::vector<std::atomic<int>> in_use(threads);
  std::atomic<bool> overlap{false};
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> finished{0};
    std::atomic<bool> helped{true};
    pool.parallel_for(64, 1, [&](int thread, int64_t begin, int64_t) {
      if (in_use[static_cast<size_t>(thread)].fetch_add(1) != 0) overlap = true;
      if (begin == 0) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (finished.load() < chunks - 1) {
          if (std::chrono::steady_clock::now() > deadline) {
            helped = false;
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
      }
      in_use[static_cast<size_t>(thread)].fetch_sub(1);
      finished.fetch_add(1);
    });
    EXPECT_TRUE(helped.load()) << "round " << round;
    EXPECT_EQ(finished.load(), chunks);
  }
  EXPECT_FALSE(overlap.load());
}

TEST(ThreadPool, NothingToDo) {
  ThreadPool pool(4);
  int calls = 0;
  pool.parallel_for(0, 1, [&](int, int64_t, int64_t) { ++calls; });
  pool.parallel_for(-5, 1, [&](int, int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, HugeCountsDoNotOverflow) {
  ThreadPool pool(4);
  const int64_t max = std::numeric_limits<int64_t>::max();
  // Only the ranges are recorded; nothing iterates over them.
  auto one = record_ranges(pool, max, max);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].begin, 0);
  EXPECT_EQ(one[0].end, max);
  auto many = record_ranges(pool, max, 1);
  ASSERT_EQ(many.size(), static_cast<size_t>(4 * ThreadPool::kChunksPerThread));
  EXPECT_EQ(many.back().end, max);
  for (size_t i = 1; i < many.size(); ++i) EXPECT_EQ(many[i].begin, many[i - 1].end);
}

TEST(ThreadPool, CallerRunsTheFirstRangeAndWorkersRunConcurrently) {
  const int threads = 4;
  ThreadPool pool(threads);
  const auto caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::thread::id first_range_thread;
  std::atomic<int> arrived{0};
  std::atomic<bool> all_met{true};
  pool.parallel_for(threads, 1, [&](int, int64_t begin, int64_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
      if (begin == 0) first_range_thread = std::this_thread::get_id();
    }
    // A rendezvous: only possible if all ranges run at the same time. Bounded, so a serial
    // pool fails instead of hanging.
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (arrived.load() < threads) {
      if (std::chrono::steady_clock::now() > deadline) {
        all_met = false;
        return;
      }
      std::this_thread::yield();
    }
  });
  EXPECT_TRUE(all_met.load());
  EXPECT_EQ(ids.size(), static_cast<size_t>(threads));
  EXPECT_EQ(first_range_thread, caller);
}

TEST(ThreadPool, PoolOfOneRunsInline) {
  ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(1000, 1, [&](int thread, int64_t begin, int64_t end) {
    ++calls;  // no synchronisation needed: inline
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(thread, 0);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 1000);
  });
  EXPECT_EQ(calls, 1);
  // An exception from an inline run propagates unchanged.
  EXPECT_THROW(
      pool.parallel_for(3, 1, [](int, int64_t, int64_t) { throw std::runtime_error("x"); }),
      std::runtime_error);
}

TEST(ThreadPool, ExceptionsPropagateAndPoolStaysUsable) {
  ThreadPool pool(4);
  for (int thrower = 0; thrower < 4; ++thrower) {
    std::vector<std::atomic<int>> hits(400);
    try {
      // The chunk holding item 100 * thrower throws (whichever thread runs it).
      pool.parallel_for(400, 1, [&](int, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        if (begin <= 100 * thrower && 100 * thrower < end) {
          throw_error(StatusCode::kIo, "failure at item ", 100 * thrower);
        }
      });
      ADD_FAILURE() << "no exception from the chunk of item " << 100 * thrower;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kIo);
      EXPECT_EQ(e.message(), "failure at item " + std::to_string(100 * thrower));
    }
    // Every other chunk still ran to completion before parallel_for returned.
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
    // And the pool still works.
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, 1, [&](int, int64_t begin, int64_t end) {
      int64_t local = 0;
      for (int64_t i = begin; i < end; ++i) local += i;
      sum += local;
    });
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  }
  // All chunks throwing: exactly one exception comes out.
  EXPECT_THROW(
      pool.parallel_for(8, 1, [](int, int64_t, int64_t) { throw std::logic_error("all"); }),
      std::logic_error);
  // A non-std exception type is carried too.
  EXPECT_THROW(pool.parallel_for(8, 1,
                                 [](int, int64_t begin, int64_t) {
                                   if (begin == 3) throw 42;
                                 }),
               int);
  std::atomic<int> calls{0};
  pool.parallel_for(4, 1, [&](int, int64_t, int64_t) { calls++; });
  EXPECT_EQ(calls.load(), 4);
}

TEST(ThreadPool, DestructionWithIdleWorkers) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool idle(1 + i % 6);  // never given work
  }
  for (int i = 0; i < 50; ++i) {
    ThreadPool used(1 + i % 6);
    std::atomic<int> n{0};
    used.parallel_for(10, 1, [&](int, int64_t b, int64_t e) { n += static_cast<int>(e - b); });
    EXPECT_EQ(n.load(), 10);
    // Destroyed right after a job, while workers go back to sleep.
  }
  auto heap = std::make_unique<ThreadPool>(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers are really asleep
  heap.reset();
}

TEST(ThreadPool, ManyRapidConsecutiveJobs) {
  ThreadPool pool(4);
  std::vector<int64_t> data(64);
  int64_t expected = 0;
  for (int job = 0; job < 20000; ++job) {
    const int64_t n = 1 + job % 64;
    pool.parallel_for(n, 1, [&](int, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) data[static_cast<size_t>(i)] += 1;
    });
    expected += n;
  }
  int64_t total = 0;
  for (int64_t v : data) total += v;
  EXPECT_EQ(total, expected);
  // Each index was written by exactly one chunk per job, so counts are exact per index too.
  for (size_t i = 0; i < data.size(); ++i) {
    int64_t want = 0;
    for (int job = 0; job < 20000; ++job) want += (static_cast<int64_t>(i) < 1 + job % 64) ? 1 : 0;
    ASSERT_EQ(data[i], want) << i;
  }
}

TEST(ThreadPool, ConstructorValidatesCount) {
  EXPECT_THROW(ThreadPool(-1), Error);
  EXPECT_THROW(ThreadPool(1025), Error);
  ThreadPool automatic(0);
  EXPECT_EQ(automatic.num_threads(), ThreadPool::default_thread_count());
  EXPECT_GE(ThreadPool::default_thread_count(), 1);
}

}  // namespace
}  // namespace llmos
