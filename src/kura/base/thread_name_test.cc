// NameThisThread: the name reaches the kernel, cut to 15 characters.
#include "kura/base/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <string>
#include <thread>

namespace kura {
namespace {

std::string NameOfThisThread() {
  char name[16] = {};
  EXPECT_EQ(pthread_getname_np(pthread_self(), name, sizeof(name)), 0);
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = NameOfThisThread();
  std::string seen;
  std::thread([&seen] {
    NameThisThread("kura-writer");
    seen = NameOfThisThread();
  }).join();
  EXPECT_EQ(seen, "kura-writer");
  EXPECT_EQ(NameOfThisThread(), before);
}

TEST(ThreadNameTest, LongNamesAreCutToFifteenCharacters) {
  std::string seen;
  std::thread([&seen] {
    NameThisThread("kura-a-name-far-too-long-for-linux");
    seen = NameOfThisThread();
  }).join();
  EXPECT_EQ(seen, "kura-a-name-far");
}

}  // namespace
}  // namespace kura
