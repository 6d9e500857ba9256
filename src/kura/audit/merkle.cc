// RFC 6962 / RFC 9162 Merkle hashing, frontier, and proof generation and verification.
#include "kura/audit/merkle.h"

#include <array>
#include <bit>
#include <cstring>
#include <string>

#include "kura/base/random.h"

namespace kura::audit {
namespace {

// The largest power of two strictly smaller than n. Precondition: n > 1.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// Perfect subtree roots, largest (leftmost) first, joined right to left into one root.
Hash FoldRight(std::span<const Hash> parts) {
  if (parts.empty()) return EmptyTreeRoot();
  Hash acc = parts.back();
  for (size_t i = parts.size() - 1; i-- > 0;) acc = HashChildren(parts[i], acc);
  return acc;
}

// MTH of the `n` leaves starting at `begin`, where `begin` is a multiple of the smallest power
// of two >= n (always true for the ranges RFC 6962's recursion produces): the fold, right to
// left, of one perfect subtree per set bit of n.
StatusOr<Hash> RangeHash(const SubtreeHashSource& source, uint64_t begin, uint64_t n) {
  std::vector<Hash> parts;
  uint64_t pos = begin;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((n & width) == 0) continue;
    KURA_ASSIGN_OR_RETURN(Hash h, source.PerfectSubtreeHash(level, pos >> level));
    parts.push_back(h);
    pos += width;
  }
  return FoldRight(parts);
}

// RFC 6962 2.1.1 PATH(m, D[begin:begin+n]).
Status Path(const SubtreeHashSource& source, uint64_t m, uint64_t begin, uint64_t n,
            std::vector<Hash>& out) {
  if (n <= 1) return Status::Ok();
  const uint64_t k = SplitPoint(n);
  if (m < k) {
    KURA_RETURN_IF_ERROR(Path(source, m, begin, k, out));
    KURA_ASSIGN_OR_RETURN(Hash right, RangeHash(source, begin + k, n - k));
    out.push_back(right);
  } else {
    KURA_RETURN_IF_ERROR(Path(source, m - k, begin + k, n - k, out));
    KURA_ASSIGN_OR_RETURN(Hash left, RangeHash(source, begin, k));
    out.push_back(left);
  }
  return Status::Ok();
}

// RFC 6962 2.1.2 SUBPROOF(m, D[begin:begin+n], b).
Status SubProof(const SubtreeHashSource& source, uint64_t m, uint64_t begin, uint64_t n,
                bool complete_subtree, std::vector<Hash>& out) {
  if (m == n) {
    if (!complete_subtree) {
      KURA_ASSIGN_OR_RETURN(Hash h, RangeHash(source, begin, n));
      out.push_back(h);
    }
    return Status::Ok();
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    KURA_RETURN_IF_ERROR(SubProof(source, m, begin, k, complete_subtree, out));
    KURA_ASSIGN_OR_RETURN(Hash right, RangeHash(source, begin + k, n - k));
    out.push_back(right);
  } else {
    KURA_RETURN_IF_ERROR(SubProof(source, m - k, begin + k, n - k, false, out));
    KURA_ASSIGN_OR_RETURN(Hash left, RangeHash(source, begin, k));
    out.push_back(left);
  }
  return Status::Ok();
}

Status ProofFailed(std::string detail) {
  return DataLossError("Merkle proof does not verify", std::move(detail));
}

bool HashEquals(const Hash& a, const Hash& b) {
  return ConstantTimeEquals(std::span<const uint8_t>(a), std::span<const uint8_t>(b));
}

}  // namespace

Hash HashLeaf(std::string_view leaf_data) {
  std::string buf;
  buf.reserve(leaf_data.size() + 1);
  buf.push_back('\x00');
  buf.append(leaf_data);
  return crypto::Sha256(buf);
}

Hash HashChildren(const Hash& left, const Hash& right) {
  std::array<char, 1 + 2 * kHashBytes> buf;
  buf[0] = '\x01';
  std::memcpy(buf.data() + 1, left.data(), kHashBytes);
  std::memcpy(buf.data() + 1 + kHashBytes, right.data(), kHashBytes);
  return crypto::Sha256(std::string_view(buf.data(), buf.size()));
}

Hash EmptyTreeRoot() {
  static const Hash kEmpty = crypto::Sha256("");
  return kEmpty;
}

bool ParseHashBase64(std::string_view text, Hash& out) {
  std::string raw;
  if (!Base64DecodeCanonical(text, raw) || raw.size() != kHashBytes) return false;
  std::copy(raw.begin(), raw.end(), out.begin());
  return true;
}

Hash MerkleRoot(std::span<const Hash> leaf_hashes) {
  MerkleFrontier frontier;
  for (const Hash& leaf : leaf_hashes) frontier.Append(leaf);
  return frontier.Root();
}

StatusOr<MerkleFrontier> MerkleFrontier::FromHashes(uint64_t size, std::vector<Hash> hashes) {
  if (hashes.size() != static_cast<size_t>(std::popcount(size))) {
    return InvalidArgumentError("a Merkle frontier of size " + std::to_string(size) + " has " +
                                std::to_string(std::popcount(size)) + " hashes");
  }
  return MerkleFrontier(size, std::move(hashes));
}

void MerkleFrontier::Append(const Hash& leaf_hash, const CompletedSubtree& completed) {
  // Each trailing one bit of the old size is a perfect subtree the new leaf completes.
  Hash carry = leaf_hash;
  int level = 0;
  for (uint64_t s = size_; s & 1; s >>= 1) {
    carry = HashChildren(hashes_.back(), carry);
    hashes_.pop_back();
    ++level;
    if (completed) completed(level, size_ >> level, carry);
  }
  hashes_.push_back(carry);
  ++size_;
}

Hash MerkleFrontier::Root() const { return FoldRight(hashes_); }

StatusOr<Hash> InMemoryLeafHashes::PerfectSubtreeHash(int level, uint64_t index) const {
  if (level < 0 || level > 63) return InvalidArgumentError("bad subtree level");
  const uint64_t width = uint64_t{1} << level;
  if (index >= leaves_.size() / width) return NotFoundError("subtree is not complete");
  return MerkleRoot(leaves_.subspan(index * width, width));
}

StatusOr<std::vector<Hash>> InclusionPath(uint64_t index, uint64_t size,
                                          const SubtreeHashSource& source) {
  if (index >= size) return InvalidArgumentError("leaf index is outside the tree");
  std::vector<Hash> out;
  KURA_RETURN_IF_ERROR(Path(source, index, 0, size, out));
  return out;
}

StatusOr<std::vector<Hash>> ConsistencyPath(uint64_t old_size, uint64_t new_size,
                                            const SubtreeHashSource& source) {
  if (old_size > new_size) return InvalidArgumentError("old tree is larger than the new tree");
  std::vector<Hash> out;
  if (old_size == 0 || old_size == new_size) return out;
  KURA_RETURN_IF_ERROR(SubProof(source, old_size, 0, new_size, true, out));
  return out;
}

StatusOr<Hash> RootFromInclusionPath(uint64_t index, uint64_t size, const Hash& leaf_hash,
                                     std::span<const Hash> path) {
  if (index >= size) return ProofFailed("leaf index is outside the tree");
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : path) {
    if (sn == 0) return ProofFailed("inclusion path is too long");
    if ((fn & 1) == 1 || fn == sn) {
      r = HashChildren(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return ProofFailed("inclusion path is too short");
  return r;
}

Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                       std::span<const Hash> path, const Hash& root) {
  KURA_ASSIGN_OR_RETURN(Hash computed, RootFromInclusionPath(index, size, leaf_hash, path));
  if (!HashEquals(computed, root)) return ProofFailed("inclusion path leads to another root");
  return Status::Ok();
}

Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                         const Hash& new_root, std::span<const Hash> path) {
  if (old_size > new_size) return ProofFailed("old tree is larger than the new tree");
  if (old_size == new_size) {
    if (!path.empty()) return ProofFailed("equal sizes need an empty proof");
    if (!HashEquals(old_root, new_root)) return ProofFailed("equal sizes, different roots");
    return Status::Ok();
  }
  if (old_size == 0) {
    if (!path.empty()) return ProofFailed("an empty old tree needs an empty proof");
    return Status::Ok();
  }
  if (path.empty()) return ProofFailed("consistency proof is empty");
  // RFC 9162 2.1.4.2. When old_size is a power of two the old root is itself the first node.
  std::vector<Hash> c;
  c.reserve(path.size() + 1);
  if (std::has_single_bit(old_size)) c.push_back(old_root);
  c.insert(c.end(), path.begin(), path.end());
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = c[0];
  Hash sr = c[0];
  for (size_t i = 1; i < c.size(); ++i) {
    if (sn == 0) return ProofFailed("consistency proof is too long");
    if ((fn & 1) == 1 || fn == sn) {
      fr = HashChildren(c[i], fr);
      sr = HashChildren(c[i], sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = HashChildren(sr, c[i]);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return ProofFailed("consistency proof is too short");
  if (!HashEquals(fr, old_root)) return ProofFailed("consistency proof does not match old root");
  if (!HashEquals(sr, new_root)) return ProofFailed("consistency proof does not match new root");
  return Status::Ok();
}

}  // namespace kura::audit
