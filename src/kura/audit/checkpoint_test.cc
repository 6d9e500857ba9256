#include "kura/audit/checkpoint.h"

#include <gtest/gtest.h>

#include <string>

#include "kura/audit/test_util.h"
#include "kura/base/random.h"

namespace kura::audit {
namespace {

using testing::SignerFromSeedHex;

constexpr char kSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kOtherSeed[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kOrigin[] = "kura.test/audit";

// Computed independently (Python `cryptography`, following c2sp.org/signed-note and
// tlog-checkpoint): the empty log's checkpoint at time 1700000000000000, signed with RFC 8032
// TEST 1's key under the name "kura.test/audit".
constexpr char kEmptyCheckpointNote[] =
    "kura.test/audit\n"
    "0\n"
    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    "chain AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "time 1700000000000000\n"
    "\n"
    "\xe2\x80\x94 kura.test/audit "
    "ykDtFXpZDGMaAv9tZLLH0wefyhbW1BDhplXrqm8q/"
    "ObC1S9CRFGoMPRgypkdMDePjSIIvDVBcwSkXnUJEyivTFXHHws=\n";
constexpr char kEmptyCheckpointKey[] =
    "kura.test/audit+ca40ed15+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";

TimePoint At(int64_t micros) { return FromMicros(micros); }

LogHead HeadOf(int n) {
  AuditChain chain;
  for (int i = 0; i < n; ++i) EXPECT_TRUE(chain.Append(testing::SampleRecord(i)).ok());
  return chain.head();
}

TEST(CheckpointTest, KnownAnswerForTheEmptyLog) {
  auto signer = SignerFromSeedHex(kSeed);
  Checkpoint c = CheckpointOf(LogHead{}, kOrigin, At(1700000000000000));
  auto note = SignCheckpoint(c, signer);
  ASSERT_TRUE(note.ok()) << note.status().ToString();
  EXPECT_EQ(*note, kEmptyCheckpointNote);
  auto key = CheckpointVerifierKey(kOrigin, signer);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->ToString(), kEmptyCheckpointKey);
  std::vector<NoteVerifierKey> trusted = {*key};
  auto verified = VerifyCheckpoint(kEmptyCheckpointNote, kOrigin, trusted);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(*verified, c);
}

TEST(CheckpointTest, SignVerifyRoundTripAndRejections) {
  auto signer = SignerFromSeedHex(kSeed);
  auto other = SignerFromSeedHex(kOtherSeed);
  std::vector<NoteVerifierKey> trusted = {*CheckpointVerifierKey(kOrigin, signer)};
  LogHead head = HeadOf(37);
  Checkpoint c = CheckpointOf(head, kOrigin, At(1700000000123456));
  EXPECT_EQ(c.tree_size, 37u);
  EXPECT_EQ(c.root, head.frontier.Root());
  std::string note = *SignCheckpoint(c, signer);
  auto back = VerifyCheckpoint(note, kOrigin, trusted);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, c);

  EXPECT_EQ(VerifyCheckpoint(note, "kura.test/other", trusted).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(VerifyCheckpoint(*SignCheckpoint(c, other), kOrigin, trusted).status().code(),
            StatusCode::kDataLoss);
  std::string bigger = note;
  bigger.replace(bigger.find("\n37\n"), 4, "\n38\n");
  EXPECT_EQ(VerifyCheckpoint(bigger, kOrigin, trusted).status().code(), StatusCode::kDataLoss);
  // Retired keys stay trusted alongside the new one (rotation).
  std::vector<NoteVerifierKey> rotated = {*CheckpointVerifierKey(kOrigin, other), trusted[0]};
  EXPECT_TRUE(VerifyCheckpoint(note, kOrigin, rotated).ok());
}

TEST(CheckpointTest, TextParsingIsStrict) {
  Checkpoint c = CheckpointOf(HeadOf(5), kOrigin, At(-5));
  std::string text = *CheckpointText(c);
  ASSERT_TRUE(ParseCheckpointText(text).ok());
  EXPECT_EQ(*ParseCheckpointText(text), c);
  const std::string root = Base64Encode(c.root);
  const std::string chain = Base64Encode(c.chain_head);
  auto make = [&](std::string size, std::string r, std::string ch, std::string t) {
    return std::string(kOrigin) + "\n" + size + "\n" + r + "\n" + ch + "\n" + t + "\n";
  };
  EXPECT_TRUE(ParseCheckpointText(make("5", root, "chain " + chain, "time -5")).ok());
  for (const std::string& bad : {
           make("05", root, "chain " + chain, "time -5"),
           make("+5", root, "chain " + chain, "time -5"),
           make("5 ", root, "chain " + chain, "time -5"),
           make("18446744073709551616", root, "chain " + chain, "time -5"),
           make("5", root.substr(0, root.size() - 1), "chain " + chain, "time -5"),
           make(
               "5",
               Base64Encode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("short"), 5)),
               "chain " + chain, "time -5"),
           make("5", root, "Chain " + chain, "time -5"),
           make("5", root, "chain  " + chain, "time -5"),
           make("5", root, "chain " + chain, "time -05"),
           make("5", root, "chain " + chain, "time -0"),
           make("5", root, "chain " + chain, "time 1.5"),
           make("5", root, "chain " + chain, "time 99999999999999999999"),
           make("5", root, "chain " + chain, "time -5") + "extra\n",
           text.substr(0, text.size() - 1),
           "1kura\n" + text.substr(text.find('\n') + 1),
           "bad origin\n" + text.substr(text.find('\n') + 1),
       }) {
    EXPECT_EQ(ParseCheckpointText(bad).status().code(), StatusCode::kDataLoss) << bad;
  }
  EXPECT_EQ(ParseCheckpointText(make("18446744073709551615", root, "chain " + chain, "time -5"))
                ->tree_size,
            UINT64_MAX);
  Checkpoint bad_origin = c;
  bad_origin.origin = "has space";
  EXPECT_EQ(CheckpointText(bad_origin).status().code(), StatusCode::kInvalidArgument);
  bad_origin.origin = std::string(kPruneAnchorMagic);
  EXPECT_EQ(CheckpointText(bad_origin).status().code(), StatusCode::kInvalidArgument);
}

TEST(PruneAnchorTest, RoundTripAndStrictness) {
  auto signer = SignerFromSeedHex(kSeed);
  std::vector<NoteVerifierKey> trusted = {*CheckpointVerifierKey(kOrigin, signer)};
  LogHead head = HeadOf(13);  // popcount 3: three frontier hashes.
  PruneAnchor anchor = PruneAnchorOf(head, kOrigin, At(1700000000000000));
  std::string text = *PruneAnchorText(anchor);
  EXPECT_EQ(text.substr(0, text.find('\n')), kPruneAnchorMagic);
  auto parsed = ParsePruneAnchorText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, anchor);
  std::string note = *SignPruneAnchor(anchor, signer);
  auto verified = VerifyPruneAnchor(note, kOrigin, trusted);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(*verified, anchor);

  // Neither kind of note passes for the other.
  std::string checkpoint_note = *SignCheckpoint(CheckpointOf(head, kOrigin, At(0)), signer);
  EXPECT_FALSE(VerifyPruneAnchor(checkpoint_note, kOrigin, trusted).ok());
  EXPECT_FALSE(VerifyCheckpoint(note, kOrigin, trusted).ok());

  // Wrong number of frontier hashes, zero first, bad spacing.
  std::string frontier_line = text.substr(text.find("frontier"));
  frontier_line = frontier_line.substr(0, frontier_line.find('\n'));
  std::string fewer = text;
  fewer.replace(fewer.find(frontier_line), frontier_line.size(),
                frontier_line.substr(0, frontier_line.rfind(' ')));
  EXPECT_EQ(ParsePruneAnchorText(fewer).status().code(), StatusCode::kDataLoss);
  std::string double_space = text;
  double_space.replace(double_space.find("frontier "), 9, "frontier  ");
  EXPECT_EQ(ParsePruneAnchorText(double_space).status().code(), StatusCode::kDataLoss);
  std::string first_zero = text;
  first_zero.replace(first_zero.find("first 13"), 8, "first 0");
  EXPECT_EQ(ParsePruneAnchorText(first_zero).status().code(), StatusCode::kDataLoss);
  std::string other_first = text;
  other_first.replace(other_first.find("first 13"), 8, "first 15");  // popcount 4, not 3
  EXPECT_EQ(ParsePruneAnchorText(other_first).status().code(), StatusCode::kDataLoss);

  PruneAnchor empty = PruneAnchorOf(LogHead{}, kOrigin, At(0));
  EXPECT_EQ(PruneAnchorText(empty).status().code(), StatusCode::kInvalidArgument);
}

TEST(CheckpointPolicyTest, EveryNRecordsOrTSecondsWhenTheLogGrew) {
  CheckpointPolicy policy{.every_records = 100, .every = std::chrono::seconds(30)};
  const TimePoint t0 = At(1700000000000000);
  CheckpointMark last{.tree_size = 1000, .time = t0};
  EXPECT_FALSE(policy.Due(1000, t0 + std::chrono::hours(1), last));  // Nothing new.
  EXPECT_FALSE(policy.Due(999, t0 + std::chrono::hours(1), last));
  EXPECT_FALSE(policy.Due(1099, t0 + std::chrono::seconds(29), last));
  EXPECT_TRUE(policy.Due(1100, t0, last));
  EXPECT_TRUE(policy.Due(1001, t0 + std::chrono::seconds(30), last));
  CheckpointPolicy time_only{.every_records = 0, .every = std::chrono::seconds(5)};
  EXPECT_FALSE(time_only.Due(1000000, t0 + std::chrono::seconds(4), last));
  EXPECT_TRUE(time_only.Due(1001, t0 + std::chrono::seconds(5), last));
}

}  // namespace
}  // namespace kura::audit
