// The posting-list codec of the folded audit indexes: round trips, compactness, and values that
// do not decode (a damaged or edited index) refused rather than read past.
#include "kura/store/sqlite/audit_postings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace kura::store {
namespace {

TEST(AuditPostingsTest, SequencesRoundTripFromTheBlocksFirst) {
  const std::vector<uint64_t> sequences = {4096, 4097, 4100, 4300, 6143};
  const std::string value = EncodeAuditPostingSequences(4096, sequences);
  EXPECT_EQ(DecodeAuditPostingSequences(4096, value), sequences);
  // Read against another block start, the same bytes name other records.
  EXPECT_EQ(DecodeAuditPostingSequences(0, value), (std::vector<uint64_t>{0, 1, 4, 204, 2047}));
  EXPECT_EQ(DecodeAuditPostingSequences(7, ""), std::vector<uint64_t>());
}

TEST(AuditPostingsTest, ABlockOfOneActorTakesAByteARecord) {
  std::vector<uint64_t> sequences;
  for (uint64_t s = 1'000'000; s < 1'002'048; ++s) sequences.push_back(s);
  const std::string value = EncodeAuditPostingSequences(1'000'000, sequences);
  EXPECT_EQ(value.size(), sequences.size());
  EXPECT_EQ(DecodeAuditPostingSequences(1'000'000, value), sequences);
}

TEST(AuditPostingsTest, LargeSequencesRoundTrip) {
  const uint64_t max = std::numeric_limits<int64_t>::max();
  const std::vector<uint64_t> sequences = {0, 1u << 20, max - 1, max};
  EXPECT_EQ(DecodeAuditPostingSequences(0, EncodeAuditPostingSequences(0, sequences)), sequences);
}

TEST(AuditPostingsTest, DamagedValuesDoNotDecode) {
  EXPECT_EQ(DecodeAuditPostingSequences(0, "\x80"), std::nullopt);  // Cut inside a varint.
  EXPECT_EQ(DecodeAuditPostingSequences(0, std::string(10, '\xff') + "\x01"), std::nullopt);
  // Past the largest sequence the store keeps.
  const uint64_t max = std::numeric_limits<int64_t>::max();
  const std::string at_max = EncodeAuditPostingSequences(0, {max});
  EXPECT_EQ(DecodeAuditPostingSequences(1, at_max), std::nullopt);
  EXPECT_EQ(DecodeAuditPostingSequences(0, at_max + std::string(1, '\0')), std::nullopt);
}

TEST(AuditPostingsTest, GroupingKeepsOrderAndDropsRepeats) {
  AuditPostings postings;
  AddAuditPosting(postings, AuditPostingKind::kPatient, "p1", 10);
  AddAuditPosting(postings, AuditPostingKind::kPatient, "p1", 10);
  AddAuditPosting(postings, AuditPostingKind::kActor, "p1", 10);
  AddAuditPosting(postings, AuditPostingKind::kPatient, "p1", 12);
  AddAuditPosting(postings, AuditPostingKind::kPatient, "p2", 11);
  ASSERT_EQ(postings.size(), 3u);
  EXPECT_THAT((postings[{AuditPostingKind::kPatient, "p1"}]), ::testing::ElementsAre(10, 12));
  EXPECT_THAT((postings[{AuditPostingKind::kActor, "p1"}]), ::testing::ElementsAre(10));
  EXPECT_THAT((postings[{AuditPostingKind::kPatient, "p2"}]), ::testing::ElementsAre(11));
}

}  // namespace
}  // namespace kura::store
