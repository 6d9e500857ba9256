// ConditionalWriteLocks: one holder per type at a time, hand-over in arrival order, release on
// destruction (also of a moved-to holder), and no deadlock between overlapping sets.
#include "kura/api/conditional_locks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <thread>
#include <vector>

namespace kura::api {
namespace {
namespace asio = boost::asio;

asio::awaitable<void> Pause(std::chrono::microseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

// Runs `count` coroutines, each on its own strand, over two threads.
template <typename Body>
void RunConcurrently(int count, Body body) {
  asio::io_context ioc;
  for (int i = 0; i < count; ++i) {
    asio::co_spawn(asio::make_strand(ioc), body(i), asio::detached);
  }
  std::thread second([&ioc] { ioc.run(); });
  ioc.run();
  second.join();
}

TEST(ConditionalWriteLocksTest, OneHolderPerTypeAndEveryWaiterGetsItsTurn) {
  ConditionalWriteLocks locks;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::atomic<int> done{0};
  RunConcurrently(16, [&](int) -> asio::awaitable<void> {
    for (int round = 0; round < 5; ++round) {
      std::vector<std::string> types{"Patient"};
      ConditionalWriteLocks::Held held = co_await locks.Acquire(std::move(types));
      const int now = inside.fetch_add(1) + 1;
      int seen = most_inside.load();
      while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
      }
      co_await Pause(std::chrono::microseconds(200));  // Check, then write: others must wait.
      inside.fetch_sub(1);
    }
    done.fetch_add(1);
  });
  EXPECT_EQ(done.load(), 16);
  EXPECT_EQ(most_inside.load(), 1);
  EXPECT_EQ(locks.busy_types(), 0u);  // Everything released, nothing left behind.
}

TEST(ConditionalWriteLocksTest, OtherTypesDoNotWait) {
  ConditionalWriteLocks locks;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  RunConcurrently(2, [&](int i) -> asio::awaitable<void> {
    std::vector<std::string> types{i == 0 ? "Patient" : "Observation"};
    ConditionalWriteLocks::Held held = co_await locks.Acquire(std::move(types));
    const int now = inside.fetch_add(1) + 1;
    int seen = most_inside.load();
    while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
    }
    co_await Pause(std::chrono::milliseconds(50));
    inside.fetch_sub(1);
  });
  EXPECT_EQ(most_inside.load(), 2);
}

TEST(ConditionalWriteLocksTest, OverlappingSetsInAnyOrderDoNotDeadlock) {
  ConditionalWriteLocks locks;
  std::atomic<int> done{0};
  RunConcurrently(12, [&](int i) -> asio::awaitable<void> {
    for (int round = 0; round < 10; ++round) {
      // Listed in opposite orders and with a duplicate: acquisition sorts and dedupes them.
      std::vector<std::string> types =
          i % 2 == 0 ? std::vector<std::string>{"B", "A", "B"} : std::vector<std::string>{"A", "B"};
      ConditionalWriteLocks::Held held = co_await locks.Acquire(std::move(types));
      co_await Pause(std::chrono::microseconds(50));
    }
    done.fetch_add(1);
  });
  EXPECT_EQ(done.load(), 12);
  EXPECT_EQ(locks.busy_types(), 0u);
}

TEST(ConditionalWriteLocksTest, AMovedHolderReleasesOnce) {
  ConditionalWriteLocks locks;
  bool reacquired = false;
  RunConcurrently(1, [&](int) -> asio::awaitable<void> {
    std::vector<std::string> types{"Patient"};
    ConditionalWriteLocks::Held first = co_await locks.Acquire(std::move(types));
    ConditionalWriteLocks::Held second = std::move(first);
    EXPECT_EQ(locks.busy_types(), 1u);
    second = ConditionalWriteLocks::Held();  // Released here, not again when `first` goes.
    EXPECT_EQ(locks.busy_types(), 0u);
    std::vector<std::string> again{"Patient"};
    ConditionalWriteLocks::Held third = co_await locks.Acquire(std::move(again));
    reacquired = true;
  });
  EXPECT_TRUE(reacquired);
  EXPECT_EQ(locks.busy_types(), 0u);
}

}  // namespace
}  // namespace kura::api
