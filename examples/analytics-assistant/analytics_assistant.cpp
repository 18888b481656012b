// An analytics assistant serving three clients of different priority from ONE llmos engine:
//
//   dashboard  realtime     short live queries arriving one by one while the others run
//   analyst    interactive  a burst of medium answers; quota max_running = 1 (the rest wait)
//   reports    background   a burst of long reports; quota max_running = 2, max_outstanding = 3
//                           (a submission beyond that gets LLMOS_ERR_BUSY: the client backs off
//                           until one of its reports finishes, then retries)
//
// The KV budget is deliberately small, so running requests outgrow it and the scheduler
// preempts the lowest class (recompute); aging lets waiting background work climb in priority
// so it still finishes. Every client submits from its own thread and streams through callbacks.
// A monitor thread prints the engine's statistics periodically; the end prints a per-client
// summary (requests, tokens, time to first token, BUSY refusals) and the engine's totals.
//
//   analytics_assistant MODEL.gguf [--kv-blocks N] [--scale N] [--stats-ms N]
//
// --scale multiplies every client's request count (1 by default).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llmos/llmos.hpp"

namespace {

namespace api = llmos::api;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct ClientSpec {
  std::string id;
  llmos_priority priority;
  int requests;
  int max_tokens;
  int start_delay_ms;  // before the first submission
  int interval_ms;     // between submissions; 0: a burst
  llmos_client_quota quota;
  std::vector<std::string> prompts;
};

const char* priority_name(llmos_priority p) {
  switch (p) {
    case LLMOS_PRIORITY_REALTIME: return "realtime";
    case LLMOS_PRIORITY_INTERACTIVE: return "interactive";
    case LLMOS_PRIORITY_BACKGROUND: return "background";
  }
  return "?";
}

// What one client observed; written by its thread and by the engine's callbacks.
struct ClientLog {
  std::mutex mu;
  std::condition_variable cv;
  int submitted = 0;
  int finished = 0;
  int failed = 0;  // cancelled or error
  int busy = 0;    // submissions refused with LLMOS_ERR_BUSY
  int64_t tokens = 0;
  int64_t preemptions = 0;  // summed over the client's requests (from their final events)
  std::vector<double> ttft_ms;
  std::vector<double> latency_ms;
};

// Runs one client: submits its requests (retrying after BUSY once one of its own finishes),
// then waits for all of them to end.
void run_client(api::Engine& engine, const ClientSpec& spec, ClientLog& log) {
  std::this_thread::sleep_for(std::chrono::milliseconds(spec.start_delay_ms));
  for (int i = 0; i < spec.requests; ++i) {
    api::Request r;
    r.prompt = spec.prompts[static_cast<size_t>(i) % spec.prompts.size()];
    r.priority = spec.priority;
    r.client_id = spec.id;
    r.sampling.max_tokens = spec.max_tokens;
    r.sampling.seed = static_cast<uint64_t>(i) + 1;
    r.sampling.ignore_eos = 1;  // fixed lengths make the load, and the demo, reproducible
    // Per-request state lives in the callback: it runs on the engine's step thread.
    struct Timing {
      Clock::time_point submitted;
      bool first = true;
    };
    auto timing = std::make_shared<Timing>();
    r.on_event = [&log, timing](const api::Event& ev) {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lk(log.mu);
      if (!ev.finished) {
        ++log.tokens;
        if (timing->first) {
          timing->first = false;
          log.ttft_ms.push_back(ms_between(timing->submitted, now));
        }
        return true;
      }
      log.preemptions += ev.num_preemptions;
      if (ev.finish_reason == LLMOS_FINISH_LENGTH || ev.finish_reason == LLMOS_FINISH_EOS ||
          ev.finish_reason == LLMOS_FINISH_STOP) {
        ++log.finished;
      } else {
        ++log.failed;
      }
      log.latency_ms.push_back(ms_between(timing->submitted, now));
      log.cv.notify_all();
      return true;
    };
    for (;;) {
      timing->submitted = Clock::now();
      try {
        engine.submit(r);
        std::lock_guard<std::mutex> lk(log.mu);
        ++log.submitted;
        break;
      } catch (const api::Error& e) {
        if (e.status() != LLMOS_ERR_BUSY) throw;
        // Over max_outstanding: wait until one of this client's requests ends, then retry.
        std::unique_lock<std::mutex> lk(log.mu);
        ++log.busy;
        const int ended = log.finished + log.failed;
        log.cv.wait_for(lk, std::chrono::milliseconds(200),
                        [&] { return log.finished + log.failed > ended; });
      }
    }
    if (spec.interval_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(spec.interval_ms));
  }
  std::unique_lock<std::mutex> lk(log.mu);
  log.cv.wait(lk, [&] { return log.finished + log.failed == log.submitted; });
}

void print_stats_line(const api::Stats& s, double t_ms, int64_t planned) {
  std::cout << "STATS t=" << std::fixed << std::setprecision(2) << t_ms / 1000.0 << "s"
            << " running=" << s.num_running << " waiting=" << s.num_waiting
            << " preempted=" << s.num_preempted << " kv=" << s.kv_used_blocks << "/"
            << s.kv_total_blocks << " preemptions=" << s.total_preemptions
            << " finished=" << s.finished_requests << "/" << planned
            << " tok/s=" << std::setprecision(0) << s.decode_tokens_per_second << "\n";
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double sum = 0.0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  int64_t kv_blocks = 16;
  int scale = 1;
  int stats_ms = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--kv-blocks" && i + 1 < argc) {
      kv_blocks = std::atoll(argv[++i]);
    } else if (a == "--scale" && i + 1 < argc) {
      scale = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--stats-ms" && i + 1 < argc) {
      stats_ms = std::max(10, std::atoi(argv[++i]));
    } else if (path.empty()) {
      path = a;
    } else {
      std::cerr << "analytics_assistant: unexpected argument '" << a << "'\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: analytics_assistant MODEL.gguf [--kv-blocks N] [--scale N] "
                 "[--stats-ms N]\n";
    return 2;
  }

  const std::vector<ClientSpec> clients = {
      {"dashboard",
       LLMOS_PRIORITY_REALTIME,
       10 * scale,
       16,
       40,
       50,
       {"dashboard", 0, 0, 0},
       {"The sun was", "Tom and Lily went to the", "Once upon a time"}},
      {"analyst",
       LLMOS_PRIORITY_INTERACTIVE,
       5 * scale,
       64,
       0,
       0,
       {"analyst", 1, 0, 0},
       {"Lily wanted to", "The little dog", "One day, Ben"}},
      {"reports",
       LLMOS_PRIORITY_BACKGROUND,
       8 * scale,
       160,
       0,
       0,
       {"reports", 2, 0, 3},
       {"Once upon a time, there was a", "The big tree", "A girl named Sue"}},
  };
  int64_t planned = 0;
  for (const ClientSpec& c : clients) planned += c.requests;

  try {
    api::ModelParams mp;
    mp.n_threads = 2;
    const api::Model model(path, mp);
    std::vector<llmos_client_quota> quotas;
    for (const ClientSpec& c : clients) quotas.push_back(c.quota);
    api::EngineParams ep;
    ep.kv_cache_blocks = kv_blocks;
    ep.block_size = 16;
    ep.preemption_mode = LLMOS_PREEMPT_RECOMPUTE;
    ep.aging_steps = 16;
    ep.quotas = quotas.data();
    ep.n_quotas = quotas.size();
    ep.reject_unknown_clients = 1;
    api::Engine engine(model, ep);
    std::cout << "engine: " << kv_blocks << " KV blocks of 16 tokens, recompute preemption, aging "
              << ep.aging_steps << " steps; clients:";
    for (const ClientSpec& c : clients) {
      std::cout << " " << c.id << "(" << priority_name(c.priority) << ", " << c.requests << " x "
                << c.max_tokens << " tokens, max_running " << c.quota.max_running
                << ", max_outstanding " << c.quota.max_outstanding << ")";
    }
    std::cout << "\n";

    const auto start = Clock::now();
    std::vector<ClientLog> logs(clients.size());
    std::atomic<bool> done{false};
    std::thread monitor([&] {
      while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(stats_ms));
        print_stats_line(engine.stats(), ms_between(start, Clock::now()), planned);
      }
    });
    std::vector<std::thread> threads;
    std::vector<std::string> errors(clients.size());
    for (size_t i = 0; i < clients.size(); ++i) {
      threads.emplace_back([&, i] {
        try {
          run_client(engine, clients[i], logs[i]);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    done.store(true);
    monitor.join();
    const double wall_ms = ms_between(start, Clock::now());
    for (size_t i = 0; i < clients.size(); ++i) {
      if (!errors[i].empty()) {
        std::cerr << "analytics_assistant: client " << clients[i].id << ": " << errors[i] << "\n";
        return 1;
      }
    }

    const api::Stats s = engine.stats();
    print_stats_line(s, wall_ms, planned);
    std::cout << std::fixed << std::setprecision(1);
    for (size_t i = 0; i < clients.size(); ++i) {
      const ClientLog& l = logs[i];
      std::cout << "CLIENT " << clients[i].id << " priority=" << priority_name(clients[i].priority)
                << " planned=" << clients[i].requests << " submitted=" << l.submitted
                << " finished=" << l.finished << " failed=" << l.failed << " busy=" << l.busy
                << " tokens=" << l.tokens << " preemptions=" << l.preemptions
                << " ttft_mean_ms=" << mean(l.ttft_ms)
                << " ttft_max_ms=" << max_of(l.ttft_ms) << " latency_mean_ms=" << mean(l.latency_ms)
                << "\n";
    }
    std::cout << "ENGINE requests=" << s.total_requests << " finished=" << s.finished_requests
              << " preemptions=" << s.total_preemptions << " steps=" << s.steps
              << " tokens=" << s.tokens_generated
              << " recomputed_prompt_tokens=" << s.prompt_tokens_computed << " wall_ms=" << wall_ms
              << "\n";
    return 0;
  } catch (const api::Error& e) {
    std::cerr << "analytics_assistant: " << e.what() << " (" << llmos_status_string(e.status())
              << ")\n";
    return 1;
  }
}
