// RFC 6962 Merkle tree hashing for the audit log: leaf and node hashes, the compact frontier that
// tracks a growing tree's root in O(log n) space, and inclusion and consistency proofs.
//
// Hashing is RFC 6962 section 2.1 with SHA-256: leaf = SHA-256(0x00 || data), node =
// SHA-256(0x01 || left || right), the empty tree's root = SHA-256(""); a tree of n > 1 leaves
// splits at the largest power of two smaller than n. Proof generation follows RFC 6962 section
// 2.1.1 (PATH) and 2.1.2 (PROOF/SUBPROOF); verification follows RFC 9162 sections 2.1.3.2 and
// 2.1.4.2, so proofs interoperate with Certificate Transparency and transparency-dev tooling.
//
// Proof generation reads hashes through SubtreeHashSource, asking only for perfect, aligned
// subtrees (O(log n) of them per proof), so a store can answer from cached tiles instead of
// rehashing every leaf; InMemoryLeafHashes is the simple implementation over a leaf list.
// Free functions are thread-safe; MerkleFrontier is a thread-compatible value.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "kura/base/status.h"
#include "kura/crypto/hash.h"

namespace kura::audit {

using Hash = crypto::Sha256Digest;
inline constexpr size_t kHashBytes = 32;

// SHA-256(0x00 || leaf_data).
[[nodiscard]] Hash HashLeaf(std::string_view leaf_data);
// SHA-256(0x01 || left || right).
[[nodiscard]] Hash HashChildren(const Hash& left, const Hash& right);
// SHA-256 of the empty string: the root of a tree with no leaves.
[[nodiscard]] Hash EmptyTreeRoot();
// The root of the tree whose leaf hashes are `leaf_hashes` (O(n) time, O(log n) space).
[[nodiscard]] Hash MerkleRoot(std::span<const Hash> leaf_hashes);

// A hash as the audit formats write it: canonical padded base64 of exactly 32 bytes.
[[nodiscard]] bool ParseHashBase64(std::string_view text, Hash& out);

// The right edge of a Merkle tree: the roots of the perfect subtrees that make up a tree of
// `size()` leaves, one per set bit of size(), largest (leftmost) first. Enough to append leaves
// and compute the root; this is what checkpoints commit to and prune anchors carry.
// Thread-compatible value type.
class MerkleFrontier {
 public:
  MerkleFrontier() = default;  // The empty tree.
  // A frontier from its parts, e.g. read from a prune anchor or the store. InvalidArgument
  // unless `hashes` holds exactly popcount(size) entries.
  [[nodiscard]] static StatusOr<MerkleFrontier> FromHashes(uint64_t size, std::vector<Hash> hashes);

  // Called with each perfect subtree an Append completes: (level >= 1, index, hash), lowest first.
  using CompletedSubtree = std::function<void(int level, uint64_t index, const Hash& hash)>;

  // Adds one leaf (its leaf hash, i.e. HashLeaf(data)). Amortized O(1) node hashes. A store that
  // keeps some subtree hashes (so proofs need few reads) learns them from `completed`.
  void Append(const Hash& leaf_hash, const CompletedSubtree& completed = nullptr);
  uint64_t size() const { return size_; }
  // The RFC 6962 root of the first size() leaves. O(log n).
  [[nodiscard]] Hash Root() const;
  const std::vector<Hash>& hashes() const { return hashes_; }

  friend bool operator==(const MerkleFrontier&, const MerkleFrontier&) = default;

 private:
  MerkleFrontier(uint64_t size, std::vector<Hash> hashes)
      : size_(size), hashes_(std::move(hashes)) {}
  uint64_t size_ = 0;
  std::vector<Hash> hashes_;
};

// Supplies the hash of a perfect subtree: height `level` (0 = a single leaf hash), covering the
// leaves [index << level, (index + 1) << level). Implementations decide thread-safety; proof
// functions call it from the calling thread only.
class SubtreeHashSource {
 public:
  virtual ~SubtreeHashSource() = default;
  // NotFound (or any error the backing store reports) when the subtree is not complete.
  [[nodiscard]] virtual StatusOr<Hash> PerfectSubtreeHash(int level, uint64_t index) const = 0;
};

// SubtreeHashSource over leaf hashes held by the caller; recomputes each subtree (O(2^level)).
// Borrows `leaf_hashes`, which must outlive it. Thread-safe (const, stateless).
class InMemoryLeafHashes final : public SubtreeHashSource {
 public:
  explicit InMemoryLeafHashes(std::span<const Hash> leaf_hashes) : leaves_(leaf_hashes) {}
  StatusOr<Hash> PerfectSubtreeHash(int level, uint64_t index) const override;

 private:
  std::span<const Hash> leaves_;
};

// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 PATH), leaf
// level first. InvalidArgument unless index < size; errors from `source` pass through.
[[nodiscard]] StatusOr<std::vector<Hash>> InclusionPath(uint64_t index, uint64_t size,
                                                        const SubtreeHashSource& source);
// The consistency proof from the tree of `old_size` leaves to the tree of `new_size` leaves (RFC
// 6962 PROOF). Empty when old_size is 0 or equals new_size. InvalidArgument when old_size >
// new_size; errors from `source` pass through.
[[nodiscard]] StatusOr<std::vector<Hash>> ConsistencyPath(uint64_t old_size, uint64_t new_size,
                                                          const SubtreeHashSource& source);

// The root that `path` proves for `leaf_hash` at `index` in a tree of `size` leaves (RFC 9162
// 2.1.3.2 without the final comparison). DataLoss when index >= size or the path has the wrong
// length for (index, size).
[[nodiscard]] StatusOr<Hash> RootFromInclusionPath(uint64_t index, uint64_t size,
                                                   const Hash& leaf_hash,
                                                   std::span<const Hash> path);
// OK when `path` proves `leaf_hash` is leaf `index` of the tree of `size` leaves with root
// `root`; DataLoss otherwise.
[[nodiscard]] Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                                     std::span<const Hash> path, const Hash& root);
// OK when `path` proves the tree (old_size, old_root) is a prefix of (new_size, new_root) (RFC
// 9162 2.1.4.2; old_size 0 is consistent with anything given an empty path, equal sizes need an
// empty path and equal roots). DataLoss otherwise.
[[nodiscard]] Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                                       const Hash& new_root, std::span<const Hash> path);

}  // namespace kura::audit
