// Known-answer tests for SHA-256 (FIPS 180-2 examples) and HMAC-SHA-256 (RFC 4231), and the
// pooled HMAC's agreement with the one-shot one.
#include "kura/crypto/hash.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "kura/base/random.h"
#include "kura/base/secret_bytes.h"

namespace kura::crypto {
namespace {

std::string Hex(const Sha256Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : digest) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

SecretBytes Key(const std::vector<uint8_t>& bytes) {
  StatusOr<SecretBytes> key = SecretBytes::CopyFrom(bytes);
  EXPECT_TRUE(key.ok());
  return std::move(*key);
}

TEST(HashTest, Sha256KnownAnswers) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(HashTest, HmacSha256Rfc4231Vectors) {
  // Test case 1: a 20-byte key.
  EXPECT_EQ(Hex(HmacSha256(Key(std::vector<uint8_t>(20, 0x0b)), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2: a key shorter than the output.
  EXPECT_EQ(Hex(HmacSha256(Key({'J', 'e', 'f', 'e'}), "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a 131-byte key, longer than the block, is hashed first.
  EXPECT_EQ(Hex(HmacSha256(Key(std::vector<uint8_t>(131, 0xaa)),
                           "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HashTest, PooledHmacSha256MatchesRfc4231Vectors) {
  const SecretBytes jefe = Key({'J', 'e', 'f', 'e'});
  HmacSha256Pool pool;
  // The first MAC keys a context, the next ones reuse it: each starts from the key alone.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Hex(pool.Mac(jefe, "what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }
  HmacSha256Pool long_key_pool;
  const SecretBytes long_key = Key(std::vector<uint8_t>(131, 0xaa));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(
        Hex(long_key_pool.Mac(long_key, "Test Using Larger Than Block-Size Key - Hash Key First")),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
}

TEST(HashTest, PooledHmacSha256AgreesWithTheOneShotMacAcrossThreads) {
  StatusOr<SecretBytes> secret = SecretBytes::Random(32);
  ASSERT_TRUE(secret.ok());
  HmacSha256Pool pool;
  std::vector<std::string> values;
  for (size_t length : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 200u}) {
    std::string value(length, '\0');
    RandomFill({reinterpret_cast<uint8_t*>(value.data()), value.size()});
    values.push_back(value);
  }
  // Several threads at once, so the pool holds several contexts, each reused many times.
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        for (const std::string& value : values) {
          if (pool.Mac(*secret, value) != HmacSha256(*secret, value)) ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace kura::crypto
