// ConditionalWriteLocks: serializes conditional writes (If-None-Exist creates, conditional
// updates and deletes, and Bundles holding any) per resource type, so two of them cannot both
// find no match and both create. A check and the write it decides are one step for every other
// conditional write of that type; unconditional writes are not held up.
//
// Per type rather than per criteria: two different conditions can match the same resource
// (identifier=A and identifier=A&status=final), so only a lock covering the type makes the
// check-then-write atomic with respect to every other conditional write.
//
// Waiting never blocks an I/O thread: a waiter's coroutine sleeps on a timer that the releasing
// holder cancels (and that, at worst, wakes on its own every few milliseconds).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kura::api {

class ConditionalWriteLocks {
 public:
  // Released when destroyed; movable, so a coroutine can hold it across awaits.
  class Held {
   public:
    Held() = default;
    Held(Held&& other) noexcept;
    Held& operator=(Held&& other) noexcept;
    ~Held();

   private:
    friend class ConditionalWriteLocks;
    Held(ConditionalWriteLocks* locks, std::vector<std::string> types)
        : locks_(locks), types_(std::move(types)) {}
    void Release();
    ConditionalWriteLocks* locks_ = nullptr;
    std::vector<std::string> types_;  // Sorted, unique.
  };

  // Waits until this caller alone holds every type in `types` (in sorted order, so two callers
  // needing overlapping sets cannot deadlock).
  boost::asio::awaitable<Held> Acquire(std::vector<std::string> types);

  // Types held or waited for right now (for tests and metrics).
  size_t busy_types() const;

 private:
  struct Waiter;
  struct Slot {
    bool held = false;
    std::deque<std::shared_ptr<Waiter>> waiting;
  };
  boost::asio::awaitable<void> AcquireOne(const std::string& type);
  void ReleaseOne(const std::string& type);

  mutable std::mutex mu_;
  std::map<std::string, Slot> slots_;  // Guarded by mu_; a slot goes when free and unwanted.
};

}  // namespace kura::api
