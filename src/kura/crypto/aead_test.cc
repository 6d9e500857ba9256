#include "kura/crypto/aead.h"

#include <gtest/gtest.h>

#include <string>

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
  EXPECT_FALSE(k.Decrypt(rec, "other aad").ok());           // moved to another row
  EXPECT_FALSE(k.Decrypt(rec.substr(0, rec.size() - 1), "aad").ok());  // truncated
  EXPECT_FALSE(k.Decrypt("", "aad").ok());
  AeadKey other = MakeKey(1, std::string(32, 'o'));
  EXPECT_FALSE(other.Decrypt(rec, "aad").ok());  // same id, wrong key
}

TEST(AeadKeyTest, RejectsWrongKeySize) {
  auto secret = SecretBytes::Random(16);
  EXPECT_EQ(AeadKey::Create(1, std::move(*secret)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kura::crypto
