// RunBlocking: runs blocking work (database calls, Argon2id, file I/O) on a bounded thread pool
// and resumes the awaiting coroutine on its own executor, so I/O threads never block.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
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
          boost::asio::dispatch(executor, [handler = std::move(handler),
                                           result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      boost::asio::use_awaitable, std::move(f));
}

}  // namespace kura::http
