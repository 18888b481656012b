// The little the scheduler needs from the KV block manager. Kept abstract here
// so the policy can be written and tested before (and independently of)
// src/kv/: the real manager gets a thin adapter. Every call is per sequence id
// (the request id); the manager owns the block tables.
#pragma once

#include <cstdint>
#include <span>

namespace llmos {

class KvSlots {
 public:
  virtual ~KvSlots() = default;

  // Grows `seq`'s KV by num_new_tokens slots (creating the sequence on first
  // use). Returns false, changing nothing, when the blocks are not available:
  // the scheduler's cue to preempt.
  virtual bool allocate_slots(uint64_t seq, int32_t num_new_tokens) = 0;

  // Attaches cached blocks that hold a prefix of `tokens` to the (new, empty)
  // sequence `seq` and returns how many tokens they cover (0 without prefix
  // caching). Never more than tokens.size(); the scheduler passes all but the
  // last prompt token so one is always computed.
  virtual int32_t cached_prefix_tokens(uint64_t seq, std::span<const int32_t> tokens) = 0;

  // Releases everything `seq` holds (device and host); unknown ids are a no-op.
  virtual void free(uint64_t seq) = 0;
  // Same, for a request that ended (finished or cancelled) rather than one
  // being preempted: the place where a manager may keep the context (a
  // snapshot) before letting it go.
  virtual void free_finished(uint64_t seq) { free(seq); }

  // Admission control: true when a sequence of `num_tokens` tokens may start
  // now, keeping the manager's watermark of free blocks for the growth of
  // running sequences.
  virtual bool can_admit(int32_t num_tokens) const = 0;

  // Tokens per block, used to count a client's blocks for its quota.
  virtual int32_t block_size() const = 0;

  // Swap-mode preemption: moves `seq`'s blocks to host memory / back. false =
  // not possible now (no host space / no device blocks); nothing changed. The
  // scheduler lists the ids in SchedulerOutput so the runner can issue the
  // copies before the step.
  virtual bool swap_out(uint64_t seq) = 0;
  virtual bool swap_in(uint64_t seq) = 0;
};

}  // namespace llmos
