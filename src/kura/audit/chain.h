// The audit log's append path: hash chain plus Merkle frontier, advanced one record at a time.
//
// Record i (0-based sequence) has canonical bytes c_i and leaf hash L_i = HashLeaf(c_i). The
// chain head after n records is
//     H_0 = 32 zero bytes,   H_{i+1} = SHA-256("kura-audit-chain-v1" || H_i || L_i),
// and record i is stored with its chain hash H_{i+1}. The Merkle tree (merkle.h) has the leaves
// L_0 .. L_{n-1}. A LogHead (n, H_n, frontier of n leaves) is all the state needed to append the
// next record, sign a checkpoint or write a prune anchor; it is O(log n) in size.
// (docs/formats/audit-log.md, "Hash chain".)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kura/audit/merkle.h"
#include "kura/audit/record.h"
#include "kura/base/status.h"

namespace kura::audit {

inline constexpr std::string_view kChainDomain = "kura-audit-chain-v1";

// H_0: 32 zero bytes.
[[nodiscard]] Hash ChainStart();
// H_{i+1} = SHA-256("kura-audit-chain-v1" || previous || leaf_hash).
[[nodiscard]] Hash ChainNext(const Hash& previous, const Hash& leaf_hash);

// The state of a log of `size()` records. A plain value: copy it to remember a point to roll
// back to. Thread-compatible.
struct LogHead {
  Hash chain_head = ChainStart();  // H_size.
  MerkleFrontier frontier;         // Of the first size() leaves.
  uint64_t size() const { return frontier.size(); }
  friend bool operator==(const LogHead&, const LogHead&) = default;
};

// One record as the store keeps it. `canonical` is what every hash covers; the store may keep
// `leaf_hash` too (e.g. to answer proofs) but the verifier recomputes it.
struct SealedRecord {
  uint64_t sequence = 0;
  std::string canonical;
  Hash leaf_hash{};
  Hash chain_hash{};  // H_{sequence + 1}.
};

// Appends records to the chain and the tree. The single audit writer owns one; it is
// thread-compatible (callers serialize, as the group-commit writer does anyway).
//
// Integration: for each record in a commit batch call Append and store the SealedRecord in the
// same transaction as the data it describes. Take head() before the batch; if the transaction
// fails, RollBackTo(that head) so sequence numbers and hashes stay gapless. After the commit ask
// the CheckpointPolicy (checkpoint.h) whether to sign a checkpoint of head().
class AuditChain {
 public:
  AuditChain() = default;  // An empty log.
  // Continues a log from a head saved earlier (e.g. read back from the store at start-up).
  explicit AuditChain(LogHead head) : head_(std::move(head)) {}

  // Encodes `record` canonically with sequence size() (whatever record.sequence holds) and
  // advances the chain and the tree. InvalidArgument (and no state change) when the record does
  // not encode. `completed` sees the Merkle subtrees the record completes
  // (MerkleFrontier::Append).
  [[nodiscard]] StatusOr<SealedRecord> Append(
      const AuditRecord& record, const MerkleFrontier::CompletedSubtree& completed = nullptr);
  // The same for a record EncodeAuditRecord encoded earlier, with any sequence: the encoding is
  // numbered size() (SetEncodedSequence) and appended. InvalidArgument (and no state change)
  // when `canonical` is not a v1 encoding.
  [[nodiscard]] StatusOr<SealedRecord> AppendEncoded(
      std::string canonical, const MerkleFrontier::CompletedSubtree& completed = nullptr);

  const LogHead& head() const { return head_; }
  uint64_t size() const { return head_.size(); }
  // The Merkle root of the records appended so far. O(log n).
  [[nodiscard]] Hash Root() const { return head_.frontier.Root(); }
  // Forgets records appended after `head` was taken (their transaction failed).
  void RollBackTo(LogHead head) { head_ = std::move(head); }

 private:
  LogHead head_;
};

}  // namespace kura::audit
