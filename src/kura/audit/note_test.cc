#include "kura/audit/note.h"

#include <gtest/gtest.h>

#include <string>

#include "kura/audit/test_util.h"
#include "kura/base/random.h"

namespace kura::audit {
namespace {

using testing::SignerFromSeedHex;

// golang.org/x/mod/sumdb/note's documented example: signer key
// "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz" (its base64
// is 0x01 || the seed below), verifier key and signed note as published.
constexpr char kGoSeed[] = "810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173";
constexpr char kGoVerifierKey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr char kGoText[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr char kGoNote[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

constexpr char kOtherSeed[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

TEST(NoteTest, ReproducesTheGoSumdbNoteExample) {
  auto signer = SignerFromSeedHex(kGoSeed);
  auto note = SignNote(kGoText, "PeterNeumann", signer);
  ASSERT_TRUE(note.ok()) << note.status().ToString();
  EXPECT_EQ(*note, kGoNote);

  auto key = NoteVerifierKey::Parse(kGoVerifierKey);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->name(), "PeterNeumann");
  EXPECT_EQ(key->key_id(), 0xc74f20a3u);
  EXPECT_EQ(key->public_key(), signer.PublicKey());
  EXPECT_EQ(key->ToString(), kGoVerifierKey);

  std::vector<NoteVerifierKey> trusted = {*key};
  auto text = VerifyNote(kGoNote, trusted);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, kGoText);
}

TEST(NoteTest, VerifierKeyParsingIsStrict) {
  std::string good = kGoVerifierKey;
  EXPECT_TRUE(NoteVerifierKey::Parse(good).ok());
  // Every proper substring and every single-character change is rejected.
  for (size_t i = 0; i < good.size(); ++i) {
    for (size_t j = i + 1; j <= good.size(); ++j) {
      if (i == 0 && j == good.size()) continue;
      EXPECT_FALSE(NoteVerifierKey::Parse(good.substr(i, j - i)).ok()) << i << "," << j;
    }
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] + 1);
    EXPECT_FALSE(NoteVerifierKey::Parse(bad).ok()) << i;
  }
  // A base64 key containing '+' parses (the split is at the first two '+').
  auto signer = SignerFromSeedHex(kOtherSeed);
  for (int i = 0; i < 200; ++i) {
    auto key = NoteVerifierKey::Create("k" + std::to_string(i), signer.PublicKey());
    ASSERT_TRUE(key.ok());
    auto again = NoteVerifierKey::Parse(key->ToString());
    ASSERT_TRUE(again.ok()) << key->ToString();
    EXPECT_EQ(again->key_id(), key->key_id());
  }
  EXPECT_FALSE(NoteVerifierKey::Create("has space", signer.PublicKey()).ok());
  EXPECT_FALSE(NoteVerifierKey::Create("has+plus", signer.PublicKey()).ok());
  EXPECT_FALSE(NoteVerifierKey::Create("", signer.PublicKey()).ok());
  EXPECT_FALSE(NoteVerifierKey::Create("ok", "short").ok());
}

TEST(NoteTest, SignatureRules) {
  auto other_signer = SignerFromSeedHex(kOtherSeed);
  std::vector<NoteVerifierKey> trusted = {*NoteVerifierKey::Parse(kGoVerifierKey)};

  // Tampered text.
  std::string note = kGoNote;
  note.replace(note.find("cryptography"), 12, "cryptographY");
  EXPECT_EQ(VerifyNote(note, trusted).status().code(), StatusCode::kDataLoss);

  // Every flipped bit in the signature blob (key id or signature) fails.
  const std::string blob_b64 =
      "x08go/ZJkuBS9UG/"
      "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
  std::string blob;
  ASSERT_TRUE(Base64Decode(blob_b64, blob));
  for (size_t i = 0; i < blob.size() * 8; ++i) {
    std::string bad = blob;
    bad[i / 8] = static_cast<char>(bad[i / 8] ^ (1 << (i % 8)));
    std::string bad_note =
        std::string(kGoText) + "\n\xe2\x80\x94 PeterNeumann " +
        Base64Encode({reinterpret_cast<const uint8_t*>(bad.data()), bad.size()}) + "\n";
    EXPECT_FALSE(VerifyNote(bad_note, trusted).ok()) << i;
  }

  // Signed only by an unknown key: rejected. The same name with another key is unknown too.
  auto by_other = SignNote(kGoText, "PeterNeumann", other_signer);
  ASSERT_TRUE(by_other.ok());
  EXPECT_FALSE(VerifyNote(*by_other, trusted).ok());

  // An extra unknown signature is ignored; a failing trusted one rejects the note.
  std::string extra =
      std::string(kGoNote) + "\xe2\x80\x94 Stranger " + by_other->substr(by_other->rfind(' ') + 1);
  EXPECT_TRUE(VerifyNote(extra, trusted).ok());
  std::string forged_line = by_other->substr(std::string(kGoText).size() + 1);
  EXPECT_TRUE(VerifyNote(std::string(kGoNote) + forged_line, trusted).ok())
      << "different key id under the same name is an unknown key";
  auto trusted_other = NoteVerifierKey::Create("PeterNeumann", other_signer.PublicKey());
  std::vector<NoteVerifierKey> both = {trusted[0], *trusted_other};
  EXPECT_TRUE(VerifyNote(std::string(kGoNote) + forged_line, both).ok());
  // A trusted key's line whose signature is over other text fails the whole note.
  auto other_text = SignNote("something else\n", "PeterNeumann", other_signer);
  std::string wrong_line = other_text->substr(std::string("something else\n").size() + 1);
  EXPECT_FALSE(VerifyNote(std::string(kGoNote) + wrong_line, both).ok());
}

TEST(NoteTest, MalformedNotesAreDataLoss) {
  std::vector<NoteVerifierKey> trusted = {*NoteVerifierKey::Parse(kGoVerifierKey)};
  const std::string text = kGoText;
  const std::string sig_line =
      "\xe2\x80\x94 PeterNeumann "
      "x08go/ZJkuBS9UG/"
      "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
  for (const std::string& bad : {
           std::string(),
           text,                                                          // No signature block.
           text + "\n",                                                   // Empty signature block.
           text + "\n" + sig_line,                                        // No final newline.
           text + "\n- PeterNeumann x08go\n",                             // Not an em dash.
           text + "\n" + sig_line + "\n\n",                               // Trailing empty line.
           text + "\n\xe2\x80\x94 PeterNeumann\n",                        // No signature.
           text + "\n\xe2\x80\x94 PeterNeumann !!!!\n",                   // Not base64.
           text + "\n\xe2\x80\x94 PeterNeumann AAAA\n",                   // Too short.
           "a\rb\n\n" + sig_line + "\n",                                  // Control character.
           "\xff\n\n" + sig_line + "\n",                                  // Not UTF-8.
           text + "\n" + sig_line.substr(0, sig_line.size() - 1) + "\n",  // Non-canonical base64.
           std::string(kMaxNoteBytes, 'a') + "\n\n" + sig_line + "\n",
       }) {
    auto parsed = ParseNote(bad);
    EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss) << bad;
    EXPECT_FALSE(VerifyNote(bad, trusted).ok());
  }
  auto signer = SignerFromSeedHex(kGoSeed);
  EXPECT_EQ(SignNote("no newline", "k", signer).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignNote("a\n\nb\n", "k", signer).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignNote("a\n", "bad name", signer).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kura::audit
