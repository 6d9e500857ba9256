// ConditionalWriteLocks: per-type asynchronous locks with first-come hand-over.
#include "kura/api/conditional_locks.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <utility>

namespace kura::api {
namespace asio = boost::asio;

// One coroutine waiting for a type; `granted` (guarded by the locks' mutex) is set by the
// holder that hands the type over, which then cancels the timer to wake it at once.
struct ConditionalWriteLocks::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
  bool granted = false;
};

ConditionalWriteLocks::Held::Held(Held&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)), types_(std::move(other.types_)) {}

ConditionalWriteLocks::Held& ConditionalWriteLocks::Held::operator=(Held&& other) noexcept {
  if (this != &other) {
    Release();
    locks_ = std::exchange(other.locks_, nullptr);
    types_ = std::move(other.types_);
  }
  return *this;
}

ConditionalWriteLocks::Held::~Held() { Release(); }

void ConditionalWriteLocks::Held::Release() {
  if (locks_ == nullptr) return;
  for (auto it = types_.rbegin(); it != types_.rend(); ++it) locks_->ReleaseOne(*it);
  locks_ = nullptr;
  types_.clear();
}

asio::awaitable<ConditionalWriteLocks::Held> ConditionalWriteLocks::Acquire(
    std::vector<std::string> types) {
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  Held held(this, {});
  for (const std::string& type : types) {
    co_await AcquireOne(type);
    held.types_.push_back(type);  // Released with `held` should a later wait end the coroutine.
  }
  co_return held;
}

asio::awaitable<void> ConditionalWriteLocks::AcquireOne(const std::string& type) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[type];
    if (!slot.held) {
      slot.held = true;
      co_return;
    }
    waiter = std::make_shared<Waiter>(executor);
    slot.waiting.push_back(waiter);
  }
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (waiter->granted) co_return;
    }
    // A cancel that comes before the wait starts is lost; the bound keeps that a short delay.
    waiter->timer.expires_after(std::chrono::milliseconds(5));
    boost::system::error_code ignored;
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

void ConditionalWriteLocks::ReleaseOne(const std::string& type) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(type);
  if (it == slots_.end()) return;
  Slot& slot = it->second;
  if (slot.waiting.empty()) {
    slots_.erase(it);
    return;
  }
  std::shared_ptr<Waiter> next = std::move(slot.waiting.front());
  slot.waiting.pop_front();
  next->granted = true;  // The type passes straight to it: `held` stays true.
  asio::post(next->timer.get_executor(), [next] { next->timer.cancel(); });
}

size_t ConditionalWriteLocks::busy_types() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_.size();
}

}  // namespace kura::api
