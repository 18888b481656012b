#include "kv/free_block_queue.h"

#include "core/error.h"

namespace llmos {

FreeBlockQueue::FreeBlockQueue() {
  head_.next_free = &tail_;
  tail_.prev_free = &head_;
}

KvBlock* FreeBlockQueue::front() const { return size_ == 0 ? nullptr : head_.next_free; }

KvBlock* FreeBlockQueue::pop_front() {
  LLMOS_ASSERT(size_ > 0);
  KvBlock* block = head_.next_free;
  remove(block);
  return block;
}

void FreeBlockQueue::remove(KvBlock* block) {
  LLMOS_ASSERT(block != nullptr && block != &head_ && block != &tail_);
  LLMOS_ASSERT(block->prev_free != nullptr && block->next_free != nullptr);
  block->prev_free->next_free = block->next_free;
  block->next_free->prev_free = block->prev_free;
  block->prev_free = nullptr;
  block->next_free = nullptr;
  --size_;
}

void FreeBlockQueue::push_back(KvBlock* block) {
  LLMOS_ASSERT(block != nullptr && block != &head_ && block != &tail_);
  LLMOS_ASSERT(block->prev_free == nullptr && block->next_free == nullptr);
  KvBlock* last = tail_.prev_free;
  last->next_free = block;
  block->prev_free = last;
  block->next_free = &tail_;
  tail_.prev_free = block;
  ++size_;
}

void FreeBlockQueue::push_front(KvBlock* block) {
  LLMOS_ASSERT(block != nullptr && block != &head_ && block != &tail_);
  LLMOS_ASSERT(block->prev_free == nullptr && block->next_free == nullptr);
  KvBlock* first = head_.next_free;
  first->prev_free = block;
  block->next_free = first;
  block->prev_free = &head_;
  head_.next_free = block;
  ++size_;
}

std::vector<int32_t> FreeBlockQueue::ids() const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(size_));
  for (const KvBlock* b = head_.next_free; b != &tail_; b = b->next_free) out.push_back(b->id);
  return out;
}

}  // namespace llmos
