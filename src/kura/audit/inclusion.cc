// Record inclusion proofs over checkpoints.
#include "kura/audit/inclusion.h"

#include "kura/audit/record.h"
#include "kura/base/random.h"

namespace kura::audit {

StatusOr<RecordInclusionProof> ProveRecordInclusion(uint64_t sequence, const Checkpoint& checkpoint,
                                                    const SubtreeHashSource& source) {
  if (sequence >= checkpoint.tree_size) {
    return InvalidArgumentError("the record is not covered by this checkpoint");
  }
  KURA_ASSIGN_OR_RETURN(std::vector<Hash> path,
                        InclusionPath(sequence, checkpoint.tree_size, source));
  return RecordInclusionProof{sequence, checkpoint.tree_size, std::move(path)};
}

Status VerifyRecordInclusion(std::string_view canonical_record, const RecordInclusionProof& proof,
                             const Checkpoint& checkpoint) {
  if (proof.tree_size != checkpoint.tree_size) {
    return DataLossError("inclusion proof is for another checkpoint");
  }
  KURA_ASSIGN_OR_RETURN(AuditRecord record, DecodeAuditRecord(canonical_record));
  if (record.sequence != proof.sequence) {
    return DataLossError("inclusion proof is for another record");
  }
  return VerifyInclusion(proof.sequence, proof.tree_size, HashLeaf(canonical_record), proof.path,
                         checkpoint.root);
}

nlohmann::ordered_json InclusionProofToJson(const RecordInclusionProof& proof) {
  nlohmann::ordered_json out;
  out["sequence"] = proof.sequence;
  out["tree_size"] = proof.tree_size;
  out["path"] = nlohmann::ordered_json::array();
  for (const Hash& h : proof.path) out["path"].push_back(Base64Encode(h));
  return out;
}

StatusOr<RecordInclusionProof> InclusionProofFromJson(const nlohmann::ordered_json& json) {
  auto bad = [] { return DataLossError("malformed inclusion proof"); };
  if (!json.is_object() || json.size() != 3 || !json.contains("sequence") ||
      !json.contains("tree_size") || !json.contains("path")) {
    return bad();
  }
  const auto& seq = json["sequence"];
  const auto& size = json["tree_size"];
  const auto& path = json["path"];
  if (!seq.is_number_unsigned() || !size.is_number_unsigned() || !path.is_array() ||
      path.size() > 64) {
    return bad();
  }
  RecordInclusionProof proof;
  proof.sequence = seq.get<uint64_t>();
  proof.tree_size = size.get<uint64_t>();
  for (const auto& item : path) {
    if (!item.is_string()) return bad();
    Hash h{};
    if (!ParseHashBase64(item.get_ref<const std::string&>(), h)) return bad();
    proof.path.push_back(h);
  }
  return proof;
}

}  // namespace kura::audit
