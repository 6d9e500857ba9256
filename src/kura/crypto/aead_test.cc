#include "kura/crypto/aead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "kura/crypto/hash.h"

namespace kura::crypto {
namespace {

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

AeadKey MakeKey(uint64_t id, std::string_view raw) {
  auto secret = SecretBytes::CopyFrom({reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
  return std::move(*AeadKey::Create(id, std::move(*secret)));
}

// McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, with AAD).
TEST(AeadKeyTest, KnownAnswerGcmTestCase16) {
  std::string key = Unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  std::string plain = Unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449"
      "a6b525b16aedf5aa0de657ba637b39");
  std::string aad = Unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  std::string iv = Unhex("cafebabefacedbaddecaf888");
  std::string ct = Unhex(
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
      "56828838c5f61e6393ba7a0abcc9f662");
  std::string tag = Unhex("76fc6ece0f4e1768cddf8853bb2d551b");
  std::string record(1, '\x01');
  record += std::string(7, '\0') + '\x07';  // key id 7, big-endian
  record += iv + ct + tag;
  AeadKey k = MakeKey(7, key);
  auto out = k.Decrypt(record, aad);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, plain);
}

TEST(AeadKeyTest, RoundTripAndLayout) {
  AeadKey k = MakeKey(0x0102030405060708ULL, std::string(32, 'k'));
  auto rec = k.Encrypt("hello health", "tenant|Patient|1|1");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->size(), kRecordOverheadBytes + 12);
  EXPECT_EQ(PeekRecordKeyId(*rec), 0x0102030405060708ULL);
  EXPECT_EQ(rec->find("hello"), std::string::npos);
  EXPECT_EQ(*k.Decrypt(*rec, "tenant|Patient|1|1"), "hello health");
  // Fresh nonce each time.
  EXPECT_NE(*k.Encrypt("hello health", "x"), *k.Encrypt("hello health", "x"));
}

TEST(AeadKeyTest, EveryTamperingFailsWithOneMessage) {
  AeadKey k = MakeKey(1, std::string(32, 'k'));
  std::string rec = *k.Encrypt("payload", "aad");
  for (size_t i = 0; i < rec.size(); ++i) {
    std::string bad = rec;
    bad[i] ^= 0x01;
    auto out = k.Decrypt(bad, "aad");
    ASSERT_FALSE(out.ok()) << "flip at " << i;
    EXPECT_EQ(out.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(out.status().message(), "decryption failed");
  }
  EXPECT_FALSE(k.Decrypt(rec, "other aad").ok());                      // moved to another row
  EXPECT_FALSE(k.Decrypt(rec.substr(0, rec.size() - 1), "aad").ok());  // truncated
  EXPECT_FALSE(k.Decrypt("", "aad").ok());
  AeadKey other = MakeKey(1, std::string(32, 'o'));
  EXPECT_FALSE(other.Decrypt(rec, "aad").ok());  // same id, wrong key
}

// Contexts are kept keyed and reused: reuse after a failure, with and without associated data,
// after a move, and from several threads at once must behave exactly as fresh contexts.
TEST(AeadKeyTest, ReusedContextsKeepEveryOperationIndependent) {
  AeadKey k = MakeKey(7, std::string(32, 'k'));
  std::string rec = *k.Encrypt("first", "aad");
  std::string bad = rec;
  bad.back() ^= 0x01;
  EXPECT_FALSE(k.Decrypt(bad, "aad").ok());
  EXPECT_EQ(*k.Decrypt(rec, "aad"), "first");  // After a failed tag check.
  std::string no_aad = *k.Encrypt("second", "");
  EXPECT_EQ(*k.Decrypt(no_aad, ""), "second");
  EXPECT_FALSE(k.Decrypt(no_aad, "aad").ok());  // No AAD left over from the last use.
  EXPECT_EQ(*k.Decrypt(rec, "aad"), "first");
  EXPECT_EQ(*k.Decrypt(std::string(*k.Encrypt("", "aad")), "aad"), "");

  AeadKey moved = std::move(k);
  EXPECT_EQ(*moved.Decrypt(rec, "aad"), "first");
  AeadKey other = MakeKey(7, std::string(32, 'o'));
  EXPECT_FALSE(other.Decrypt(rec, "aad").ok());  // Pools are per key.
  moved = std::move(other);
  EXPECT_FALSE(moved.Decrypt(rec, "aad").ok());  // The assigned key's pool came along.

  AeadKey shared = MakeKey(8, std::string(32, 's'));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string plain = "record " + std::to_string(t) + "/" + std::to_string(i);
        const std::string aad = "aad " + std::to_string(i % 3);
        StatusOr<std::string> sealed = shared.Encrypt(plain, aad);
        StatusOr<std::string> opened =
            sealed.ok() ? shared.Decrypt(*sealed, aad) : StatusOr<std::string>(sealed.status());
        if (!opened.ok() || *opened != plain) failures.fetch_add(1);
        if (sealed.ok() && shared.Decrypt(*sealed, aad + "!").ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(AeadKeyTest, RejectsWrongKeySize) {
  auto secret = SecretBytes::Random(16);
  EXPECT_EQ(AeadKey::Create(1, std::move(*secret)).status().code(), StatusCode::kInvalidArgument);
}

TEST(AeadKeyTest, MacIsHmacSha256UnderTheKeyFromEveryThread) {
  StatusOr<SecretBytes> raw = SecretBytes::Random(kAesKeyBytes);
  ASSERT_TRUE(raw.ok());
  StatusOr<SecretBytes> copy = SecretBytes::CopyFrom(raw->ExposeSecretForCrypto());
  ASSERT_TRUE(copy.ok());
  StatusOr<AeadKey> key = AeadKey::Create(7, std::move(*copy));
  ASSERT_TRUE(key.ok());
  // The first Mac computes the key schedule; threads racing to it must all see the same one.
  constexpr int kThreads = 8;
  std::vector<std::array<uint8_t, 32>> macs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { macs[t] = key->Mac("kura-blind-v1|name|1|smi"); });
  }
  for (std::thread& thread : threads) thread.join();
  const Sha256Digest expected = HmacSha256(*raw, "kura-blind-v1|name|1|smi");
  for (const auto& mac : macs) EXPECT_EQ(mac, expected);
  EXPECT_EQ(key->Mac("other"), HmacSha256(*raw, "other"));
  EXPECT_NE(key->Mac("other"), expected);
}

}  // namespace
}  // namespace kura::crypto
