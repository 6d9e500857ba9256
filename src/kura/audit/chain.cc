// Hash chain links and the AuditChain appender.
#include "kura/audit/chain.h"

#include <array>
#include <cstring>

namespace kura::audit {

Hash ChainStart() { return Hash{}; }

Hash ChainNext(const Hash& previous, const Hash& leaf_hash) {
  std::array<char, kChainDomain.size() + 2 * kHashBytes> buf;
  std::memcpy(buf.data(), kChainDomain.data(), kChainDomain.size());
  std::memcpy(buf.data() + kChainDomain.size(), previous.data(), kHashBytes);
  std::memcpy(buf.data() + kChainDomain.size() + kHashBytes, leaf_hash.data(), kHashBytes);
  return crypto::Sha256(std::string_view(buf.data(), buf.size()));
}

StatusOr<SealedRecord> AuditChain::Append(const AuditRecord& record,
                                          const MerkleFrontier::CompletedSubtree& completed) {
  KURA_ASSIGN_OR_RETURN(std::string canonical, EncodeAuditRecord(record));
  return AppendEncoded(std::move(canonical), completed);
}

StatusOr<SealedRecord> AuditChain::AppendEncoded(
    std::string canonical, const MerkleFrontier::CompletedSubtree& completed) {
  KURA_RETURN_IF_ERROR(SetEncodedSequence(canonical, head_.size()));
  SealedRecord sealed;
  sealed.sequence = head_.size();
  sealed.leaf_hash = HashLeaf(canonical);
  sealed.chain_hash = ChainNext(head_.chain_head, sealed.leaf_hash);
  sealed.canonical = std::move(canonical);
  head_.chain_head = sealed.chain_hash;
  head_.frontier.Append(sealed.leaf_hash, completed);
  return sealed;
}

}  // namespace kura::audit
