// Record inclusion proofs: evidence that one audit record is part of the log a signed
// checkpoint commits to, checkable by anyone holding the record, the proof, the checkpoint note
// and the log's public key (e.g. a patient shown "who accessed my record", or an auditor).
//
// The proof is the RFC 6962 audit path of leaf `sequence` in the tree of `tree_size` leaves.
// JSON form (for the API):
//   {"sequence": 17, "tree_size": 1024, "path": ["<base64 hash>", ...]}
// Thread-safe free functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "kura/audit/checkpoint.h"
#include "kura/audit/merkle.h"
#include "kura/base/status.h"

namespace kura::audit {

struct RecordInclusionProof {
  uint64_t sequence = 0;
  uint64_t tree_size = 0;
  std::vector<Hash> path;
  friend bool operator==(const RecordInclusionProof&, const RecordInclusionProof&) = default;
};

// The proof that record `sequence` is in the tree `checkpoint` commits to, reading hashes from
// `source` (whose leaves are the log's leaf hashes). InvalidArgument when sequence >=
// checkpoint.tree_size; errors from `source` pass through.
[[nodiscard]] StatusOr<RecordInclusionProof> ProveRecordInclusion(uint64_t sequence,
                                                                  const Checkpoint& checkpoint,
                                                                  const SubtreeHashSource& source);

// OK when `canonical_record` is record proof.sequence of the log `checkpoint` commits to.
// `checkpoint` must come from VerifyCheckpoint (this function does not check signatures).
// DataLoss when the record does not decode, names another sequence, the sizes differ or the
// path does not lead to the checkpoint's root.
[[nodiscard]] Status VerifyRecordInclusion(std::string_view canonical_record,
                                           const RecordInclusionProof& proof,
                                           const Checkpoint& checkpoint);

[[nodiscard]] nlohmann::ordered_json InclusionProofToJson(const RecordInclusionProof& proof);
// DataLoss when the JSON does not have exactly the shape above.
[[nodiscard]] StatusOr<RecordInclusionProof> InclusionProofFromJson(
    const nlohmann::ordered_json& json);

}  // namespace kura::audit
