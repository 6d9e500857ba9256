// The folded audit search indexes as posting lists (schema 10): for each fold block (the records
// one FoldAuditIndexes filed, named by the block's first sequence number) and each key that the
// block's records name (a patient or an actor), the ascending sequence numbers of those records,
// in one value. One row per key and block instead of one per key and record: a fold of 2,048
// read records by one app over 100 patients writes about a hundred rows instead of 4,096 B-tree
// entries, which took the writer as long as the records themselves.
//
// Value format (`seqs` column): LEB128 varints, the first the distance of the first sequence from
// the block's first, each later one the distance from its predecessor minus one (so strictly
// ascending by construction). Thread-safe free functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::store {

// What a posting list files records under (the `kind` column).
enum class AuditPostingKind : int64_t { kPatient = 0, kActor = 1 };

// Key -> ascending sequence numbers, for one block.
using AuditPostings = std::map<std::pair<AuditPostingKind, std::string>, std::vector<uint64_t>>;

// What the fold needs of one record, kept by the writer for the records it inserted itself so
// that a fold can file them without reading them back.
struct AuditFoldEntry {
  int64_t sequence = 0;
  int64_t time_us = 0;
  std::string actor;
  std::vector<std::string> patient_ids;
};

// Files `sequence` under `key`. Sequences must arrive in ascending order; a repeat of the last
// one (a record naming a patient twice) is dropped.
void AddAuditPosting(AuditPostings& postings, AuditPostingKind kind, std::string_view key,
                     uint64_t sequence);

// `sequences` ascending, none below `first_sequence`.
std::string EncodeAuditPostingSequences(uint64_t first_sequence,
                                        const std::vector<uint64_t>& sequences);

// nullopt when `value` is not a list this format can hold (truncated or overlong varint, a
// sequence past the largest one the store keeps).
std::optional<std::vector<uint64_t>> DecodeAuditPostingSequences(uint64_t first_sequence,
                                                                 std::string_view value);

}  // namespace kura::store
