// Posting lists of the folded audit search indexes: grouping and the value codec.
#include "kura/store/sqlite/audit_postings.h"

#include <limits>

#include "kura/store/varint.h"

namespace kura::store {
namespace {

// Sequence numbers are stored as SQLite integers.
constexpr uint64_t kMaxSequence = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

}  // namespace

void AddAuditPosting(AuditPostings& postings, AuditPostingKind kind, std::string_view key,
                     uint64_t sequence) {
  std::vector<uint64_t>& list = postings[{kind, std::string(key)}];
  if (list.empty() || list.back() != sequence) list.push_back(sequence);
}

std::string EncodeAuditPostingSequences(uint64_t first_sequence,
                                        const std::vector<uint64_t>& sequences) {
  std::string out;
  out.reserve(sequences.size() + 8);
  uint64_t next = first_sequence;  // The smallest value the next sequence may take.
  for (uint64_t sequence : sequences) {
    PutVarint(out, sequence - next);
    next = sequence + 1;
  }
  return out;
}

std::optional<std::vector<uint64_t>> DecodeAuditPostingSequences(uint64_t first_sequence,
                                                                 std::string_view value) {
  std::vector<uint64_t> out;
  out.reserve(value.size());
  uint64_t next = first_sequence;
  while (!value.empty()) {
    uint64_t gap = 0;
    if (!GetVarint(value, gap) || next > kMaxSequence || gap > kMaxSequence - next) {
      return std::nullopt;
    }
    out.push_back(next + gap);
    next = out.back() + 1;
  }
  return out;
}

}  // namespace kura::store
