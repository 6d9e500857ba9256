// Awaiting work done on other threads without blocking an I/O thread:
//   RunBlocking   runs blocking work (database calls, Argon2id, file I/O) on a bounded pool;
//   AwaitCallback awaits an operation that reports through a callback from a thread it owns
//                 (the store's writer).
// Both resume the awaiting coroutine on its own executor.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <type_traits>

namespace kura::http {

// `f` must not throw (layers below return Status); its result is moved back to the caller.
template <typename F>
auto RunBlocking(boost::asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F&>;
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
      [&pool](auto handler, F work) {
        boost::asio::post(pool, [handler = std::move(handler), work = std::move(work)]() mutable {
          R result = work();
          auto executor = boost::asio::get_associated_executor(handler);
          boost::asio::dispatch(
              executor, [handler = std::move(handler), result = std::move(result)]() mutable {
                std::move(handler)(std::move(result));
              });
        });
      },
      boost::asio::use_awaitable, std::move(f));
}

// `start(callback)` begins the operation and returns; the operation calls `callback(R)` exactly
// once, from any thread (or from inside `start`). The result is posted, never run inline, so the
// coroutine always resumes on its own executor.
template <typename R, typename Start>
auto AwaitCallback(Start start) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
      [](auto handler, Start begin) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        begin([shared](R result) {
          auto executor = boost::asio::get_associated_executor(*shared);
          boost::asio::post(executor, [shared, result = std::move(result)]() mutable {
            std::move (*shared)(std::move(result));
          });
        });
      },
      boost::asio::use_awaitable, std::move(start));
}

}  // namespace kura::http
