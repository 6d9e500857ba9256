// Tests of the per-thread random generator: distinct output across calls, threads and fork,
// reseeding, and a crude uniformity check that catches a stuck or zeroed buffer.
#include "kura/base/random.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kura {
namespace {

std::string Draw(size_t n) {
  std::string out(n, '\0');
  RandomFill({reinterpret_cast<uint8_t*>(out.data()), out.size()});
  return out;
}

TEST(RandomFillTest, SuccessiveDrawsAcrossRefillsNeverRepeat) {
  std::set<std::string> seen;
  // 12-byte nonces, as AES-GCM uses, across many 512-byte refills.
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(seen.insert(Draw(12)).second) << "draw " << i;
}

TEST(RandomFillTest, DrawsLargerThanTheBufferAreFilledCompletely) {
  const std::string a = Draw(4096 + 7);
  const std::string b = Draw(4096 + 7);
  EXPECT_NE(a, b);
  // A buffer copied short would leave runs of zero bytes; 64 zero bytes in a row has
  // probability 2^-512 for random data.
  EXPECT_EQ(a.find(std::string(64, '\0')), std::string::npos);
  EXPECT_EQ(b.find(std::string(64, '\0')), std::string::npos);
}

TEST(RandomFillTest, ThreadsDrawIndependentStreams) {
  std::array<std::string, 4> drawn;
  std::vector<std::thread> threads;
  for (std::string& out : drawn) threads.emplace_back([&out] { out = Draw(64); });
  for (std::thread& t : threads) t.join();
  const std::set<std::string> distinct(drawn.begin(), drawn.end());
  EXPECT_EQ(distinct.size(), drawn.size());
}

TEST(RandomFillTest, AForkedChildDoesNotRepeatItsParentsNextOutput) {
  Draw(16);  // The parent's generator is keyed and holds buffered output.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string mine = Draw(32);
    const ssize_t written = write(fds[1], mine.data(), mine.size());
    _exit(written == static_cast<ssize_t>(mine.size()) ? 0 : 1);
  }
  close(fds[1]);
  const std::string parents = Draw(32);
  std::string childs(32, '\0');
  size_t got = 0;
  while (got < childs.size()) {
    const ssize_t n = read(fds[0], childs.data() + got, childs.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, childs.size());
  EXPECT_NE(parents, childs);
}

TEST(RandomFillTest, TheGeneratorIsRekeyedFromTheKernelAfterEachMebibyte) {
  Draw(1);
  const uint64_t before = RandomGeneratorReseedsOnThisThread();
  for (int i = 0; i < 3; ++i) Draw(size_t{1} << 20);
  Draw(1);
  EXPECT_GE(RandomGeneratorReseedsOnThisThread() - before, 3u);
}

TEST(RandomFillTest, BytesAreRoughlyUniform) {
  const std::string sample = Draw(size_t{1} << 20);
  std::array<double, 256> counts{};
  for (unsigned char c : sample) counts[c] += 1;
  const double expected = static_cast<double>(sample.size()) / 256;
  double chi2 = 0;
  for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
  // 255 degrees of freedom: the 99.9999th percentile is about 375.
  EXPECT_LT(chi2, 375.0);
}

TEST(SystemRandomFillTest, FillsFromTheKernel) {
  std::array<uint8_t, 32> a{};
  std::array<uint8_t, 32> b{};
  SystemRandomFill(a);
  SystemRandomFill(b);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace kura
