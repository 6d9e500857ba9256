#include "kura/crypto/signature.h"

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

Ed25519Signer SignerFromHexSeed(std::string_view hex) {
  std::string raw = Unhex(hex);
  auto seed = SecretBytes::CopyFrom({reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
  auto signer = Ed25519Signer::FromSeed(std::move(*seed));
  EXPECT_TRUE(signer.ok()) << signer.status().ToString();
  return std::move(signer).value();
}

struct Rfc8032Vector {
  const char* name;
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1, TEST 2 and TEST 3 (Ed25519, pure).
constexpr Rfc8032Vector kVectors[] = {
    {"test1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
     "b46bd25bf5f0595bbe24655141438e7a100b"},
    {"test2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f1"
     "1d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"test3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984d"
     "c6594a7c15e9716ed28dc027beceea1ec40a"},
};

TEST(Ed25519Test, Rfc8032KnownAnswers) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.name);
    Ed25519Signer signer = SignerFromHexSeed(v.seed);
    EXPECT_EQ(signer.PublicKey(), Unhex(v.public_key));
    std::string message = Unhex(v.message);
    EXPECT_EQ(signer.Sign(message), Unhex(v.signature));
    EXPECT_TRUE(VerifyEd25519(Unhex(v.public_key), message, Unhex(v.signature)));
  }
}

TEST(Ed25519Test, EveryFlippedBitOfTheSignatureFails) {
  const auto& v = kVectors[1];
  std::string pk = Unhex(v.public_key), msg = Unhex(v.message), sig = Unhex(v.signature);
  for (size_t i = 0; i < sig.size() * 8; ++i) {
    std::string bad = sig;
    bad[i / 8] = static_cast<char>(bad[i / 8] ^ (1 << (i % 8)));
    EXPECT_FALSE(VerifyEd25519(pk, msg, bad)) << "bit " << i;
  }
}

TEST(Ed25519Test, TamperedMessageKeyOrLengthsFail) {
  const auto& v = kVectors[1];
  std::string pk = Unhex(v.public_key), msg = Unhex(v.message), sig = Unhex(v.signature);
  EXPECT_FALSE(VerifyEd25519(pk, "", sig));
  EXPECT_FALSE(VerifyEd25519(pk, msg + "x", sig));
  EXPECT_FALSE(VerifyEd25519(pk, "\x73", sig));
  EXPECT_FALSE(VerifyEd25519(Unhex(kVectors[0].public_key), msg, sig));  // Another key.
  std::string bad_pk = pk;
  bad_pk[5] = static_cast<char>(bad_pk[5] ^ 0x01);
  EXPECT_FALSE(VerifyEd25519(bad_pk, msg, sig));
  EXPECT_FALSE(VerifyEd25519(pk.substr(1), msg, sig));
  EXPECT_FALSE(VerifyEd25519(pk, msg, sig.substr(0, 63)));
  EXPECT_FALSE(VerifyEd25519(pk, msg, sig + "x"));
  EXPECT_FALSE(VerifyEd25519("", msg, ""));
  EXPECT_FALSE(VerifyEd25519(std::string(32, '\0'), msg, std::string(64, '\0')));  // Small order.
}

TEST(Ed25519Test, SeedLengthIsChecked) {
  for (size_t size : {0, 16, 31, 33, 64}) {
    auto seed = SecretBytes::Allocate(size);
    ASSERT_TRUE(seed.ok());
    auto signer = Ed25519Signer::FromSeed(std::move(*seed));
    EXPECT_EQ(signer.status().code(), StatusCode::kInvalidArgument) << size;
  }
}

TEST(Ed25519Test, GeneratedKeysSignAndVerifyAndExportTheirSeed) {
  auto a = Ed25519Signer::Generate();
  auto b = Ed25519Signer::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->PublicKey().size(), kEd25519PublicKeyBytes);
  EXPECT_NE(a->PublicKey(), b->PublicKey());
  std::string sig = a->Sign("checkpoint");
  ASSERT_EQ(sig.size(), kEd25519SignatureBytes);
  EXPECT_EQ(a->Sign("checkpoint"), sig);  // Deterministic.
  EXPECT_TRUE(VerifyEd25519(a->PublicKey(), "checkpoint", sig));
  EXPECT_FALSE(VerifyEd25519(b->PublicKey(), "checkpoint", sig));

  auto seed = a->ExportSeedForWrapping();
  ASSERT_TRUE(seed.ok());
  auto again = Ed25519Signer::FromSeed(std::move(*seed));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->PublicKey(), a->PublicKey());
  EXPECT_EQ(again->Sign("checkpoint"), sig);
}

TEST(Ed25519Test, SignerIsMovable) {
  Ed25519Signer signer = SignerFromHexSeed(kVectors[0].seed);
  Ed25519Signer moved = std::move(signer);
  EXPECT_EQ(moved.Sign(""), Unhex(kVectors[0].signature));
}

}  // namespace
}  // namespace kura::crypto
