// FreeBlockQueue: an intrusive doubly-linked list of free KV blocks in LRU
// order. The front is the least recently used block (the next one handed out or
// evicted); released blocks go to the back. pop_front, remove (from anywhere: a
// cached block reused by a prefix hit) and push_back are O(1) and never
// allocate.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/kv_block.h"

namespace llmos {

class FreeBlockQueue {
 public:
  FreeBlockQueue();
  // The sentinels' addresses are linked into the blocks, so the queue cannot
  // move.
  FreeBlockQueue(const FreeBlockQueue&) = delete;
  FreeBlockQueue& operator=(const FreeBlockQueue&) = delete;

  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  KvBlock* front() const;          // nullptr when empty
  KvBlock* pop_front();            // kInternal error when empty
  void remove(KvBlock* block);     // kInternal error if the block is not queued
  void push_back(KvBlock* block);  // kInternal error if the block is already queued
  void push_front(KvBlock* block);  // same; the block is handed out next

  // Block ids front to back (for tests and debugging; O(n)).
  std::vector<int32_t> ids() const;

 private:
  KvBlock head_;  // sentinels: head_.next_free is the front, tail_.prev_free the
                  // back
  KvBlock tail_;
  int64_t size_ = 0;
};

}  // namespace llmos
