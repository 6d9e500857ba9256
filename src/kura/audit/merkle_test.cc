#include "kura/audit/merkle.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kura/audit/test_util.h"

namespace kura::audit {
namespace {

using testing::HashFromHex;
using testing::Hex;
using testing::Unhex;

// The reference tree of RFC 6962 implementations (certificate-transparency, transparency-dev/
// merkle proof/verify_test.go): leaves, and the root for each size 1..8.
const char* const kLeaves[] = {"",
                               "00",
                               "10",
                               "2021",
                               "3031",
                               "40414243",
                               "5051525354555657",
                               "606162636465666768696a6b6c6d6e6f"};
const char* const kRoots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<Hash> ReferenceLeafHashes() {
  std::vector<Hash> out;
  for (const char* leaf : kLeaves) out.push_back(HashLeaf(Unhex(leaf)));
  return out;
}

std::vector<Hash> Hashes(std::initializer_list<const char*> hex) {
  std::vector<Hash> out;
  for (const char* h : hex) out.push_back(HashFromHex(h));
  return out;
}

// Straight from RFC 6962 2.1, as an independent reference for the frontier.
Hash ReferenceMth(std::span<const Hash> leaves) {
  if (leaves.empty()) return EmptyTreeRoot();
  if (leaves.size() == 1) return leaves[0];
  size_t k = 1;
  while (k * 2 < leaves.size()) k *= 2;
  return HashChildren(ReferenceMth(leaves.subspan(0, k)), ReferenceMth(leaves.subspan(k)));
}

std::vector<Hash> SyntheticLeaves(size_t n) {
  std::vector<Hash> out;
  for (size_t i = 0; i < n; ++i) out.push_back(HashLeaf("leaf-" + std::to_string(i)));
  return out;
}

TEST(MerkleTest, EmptyRootAndPrefixes) {
  EXPECT_EQ(Hex(EmptyTreeRoot()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(HashLeaf("")), kRoots[0]);
  auto leaves = ReferenceLeafHashes();
  EXPECT_EQ(Hex(HashChildren(leaves[0], leaves[1])), kRoots[1]);
}

TEST(MerkleTest, RootsMatchTheRfc6962ReferenceTree) {
  auto leaves = ReferenceLeafHashes();
  MerkleFrontier frontier;
  EXPECT_EQ(frontier.Root(), EmptyTreeRoot());
  for (size_t n = 1; n <= leaves.size(); ++n) {
    frontier.Append(leaves[n - 1]);
    EXPECT_EQ(Hex(frontier.Root()), kRoots[n - 1]) << n;
    EXPECT_EQ(Hex(MerkleRoot(std::span(leaves).subspan(0, n))), kRoots[n - 1]) << n;
  }
}

TEST(MerkleTest, FrontierAgreesWithTheRecursiveDefinition) {
  auto leaves = SyntheticLeaves(300);
  MerkleFrontier frontier;
  for (size_t n = 1; n <= leaves.size(); ++n) {
    frontier.Append(leaves[n - 1]);
    ASSERT_EQ(frontier.size(), n);
    ASSERT_EQ(frontier.hashes().size(), static_cast<size_t>(std::popcount(n)));
    ASSERT_EQ(frontier.Root(), ReferenceMth(std::span(leaves).subspan(0, n))) << n;
  }
}

TEST(MerkleTest, FrontierFromHashes) {
  auto leaves = SyntheticLeaves(13);
  MerkleFrontier built;
  for (const Hash& h : leaves) built.Append(h);
  auto restored = MerkleFrontier::FromHashes(13, built.hashes());
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(*restored, built);
  restored->Append(leaves[0]);
  built.Append(leaves[0]);
  EXPECT_EQ(restored->Root(), built.Root());
  EXPECT_EQ(MerkleFrontier::FromHashes(13, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MerkleFrontier::FromHashes(0, {leaves[0]}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(MerkleFrontier::FromHashes(0, {}).ok());
}

struct InclusionVector {
  uint64_t index;
  uint64_t size;
  std::vector<Hash> path;
};

// transparency-dev/merkle proof/verify_test.go inclusionProofs (its leaf numbers are 1-based).
std::vector<InclusionVector> InclusionVectors() {
  return {
      {0, 8,
       Hashes({"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"})},
      {5, 8,
       Hashes({"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"})},
      {2, 3, Hashes({"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"})},
      {1, 5,
       Hashes({"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"})},
  };
}

struct ConsistencyVector {
  uint64_t old_size;
  uint64_t new_size;
  std::vector<Hash> path;
};

// transparency-dev/merkle proof/verify_test.go consistencyProofs.
std::vector<ConsistencyVector> ConsistencyVectors() {
  return {
      {1, 1, {}},
      {1, 8,
       Hashes({"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"})},
      {6, 8,
       Hashes({"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"})},
      {2, 5,
       Hashes({"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"})},
      {6, 7,
       Hashes({"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"})},
  };
}

TEST(MerkleTest, InclusionProofsMatchKnownVectors) {
  auto leaves = ReferenceLeafHashes();
  InMemoryLeafHashes source(leaves);
  for (const auto& v : InclusionVectors()) {
    SCOPED_TRACE(std::to_string(v.index) + "/" + std::to_string(v.size));
    auto path = InclusionPath(v.index, v.size, source);
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    EXPECT_EQ(*path, v.path);
    Hash root = HashFromHex(kRoots[v.size - 1]);
    EXPECT_TRUE(VerifyInclusion(v.index, v.size, leaves[v.index], v.path, root).ok());
  }
}

TEST(MerkleTest, ConsistencyProofsMatchKnownVectors) {
  auto leaves = ReferenceLeafHashes();
  InMemoryLeafHashes source(leaves);
  for (const auto& v : ConsistencyVectors()) {
    SCOPED_TRACE(std::to_string(v.old_size) + "->" + std::to_string(v.new_size));
    auto path = ConsistencyPath(v.old_size, v.new_size, source);
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    EXPECT_EQ(*path, v.path);
    EXPECT_TRUE(VerifyConsistency(v.old_size, v.new_size, HashFromHex(kRoots[v.old_size - 1]),
                                  HashFromHex(kRoots[v.new_size - 1]), v.path)
                    .ok());
  }
}

// The probes of transparency-dev's corruptInclusionProof, on every known vector.
TEST(MerkleTest, CorruptedInclusionProofsFail) {
  auto leaves = ReferenceLeafHashes();
  const Hash some = HashFromHex("abacaba000000000000000000000000000000000000000000060061e00123456");
  for (const auto& v : InclusionVectors()) {
    SCOPED_TRACE(std::to_string(v.index) + "/" + std::to_string(v.size));
    const Hash root = HashFromHex(kRoots[v.size - 1]);
    const Hash& leaf = leaves[v.index];
    auto fails = [](const Status& s) { return s.code() == StatusCode::kDataLoss; };
    EXPECT_TRUE(fails(VerifyInclusion(v.index - 1, v.size, leaf, v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index + 1, v.size, leaf, v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index ^ 2, v.size, leaf, v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index, v.size * 2, leaf, v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index, v.size / 2, leaf, v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index, v.size, HashLeaf("WrongLeaf"), v.path, root)));
    EXPECT_TRUE(fails(VerifyInclusion(v.index, v.size, leaf, v.path, EmptyTreeRoot())));
    EXPECT_TRUE(fails(VerifyInclusion(v.index, v.size, leaf, v.path, some)));
    auto with = [&](std::vector<Hash> p) {
      return VerifyInclusion(v.index, v.size, leaf, p, root);
    };
    std::vector<Hash> p = v.path;
    p.push_back(Hash{});
    EXPECT_TRUE(fails(with(p)));
    p = v.path;
    p.push_back(root);
    EXPECT_TRUE(fails(with(p)));
    p = v.path;
    p.insert(p.begin(), root);
    EXPECT_TRUE(fails(with(p)));
    for (size_t i = 0; i < v.path.size(); ++i) {
      p = v.path;
      p[i][0] ^= 8;
      EXPECT_TRUE(fails(with(p))) << "bit flip in " << i;
    }
    p = v.path;
    p.pop_back();
    EXPECT_TRUE(fails(with(p)));
    if (v.path.size() > 1) {
      p = v.path;
      p.insert(p.begin() + 1, some);
      EXPECT_TRUE(fails(with(p)));
    }
  }
}

TEST(MerkleTest, ConsistencyEdgeCases) {
  const Hash a = HashLeaf("a"), b = HashLeaf("b");
  EXPECT_TRUE(VerifyConsistency(0, 0, a, a, {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 1, a, b, {}).ok());
  EXPECT_TRUE(VerifyConsistency(1, 1, b, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 0, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(2, 1, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 2, a, b, {}).ok());
  std::vector<Hash> one = {EmptyTreeRoot()};
  EXPECT_FALSE(VerifyConsistency(0, 0, EmptyTreeRoot(), EmptyTreeRoot(), one).ok());
  EXPECT_FALSE(VerifyConsistency(0, 1, EmptyTreeRoot(), EmptyTreeRoot(), one).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, EmptyTreeRoot(), EmptyTreeRoot(), one).ok());
  EXPECT_FALSE(VerifyInclusion(0, 0, a, {}, a).ok());
  EXPECT_TRUE(VerifyInclusion(0, 1, a, {}, a).ok());
  EXPECT_FALSE(VerifyInclusion(1, 1, a, {}, a).ok());
}

// Every proof in every tree up to 64 leaves verifies, and any changed byte anywhere fails.
TEST(MerkleTest, AllInclusionProofsUpTo64Leaves) {
  auto leaves = SyntheticLeaves(64);
  InMemoryLeafHashes source(leaves);
  for (uint64_t n = 1; n <= 64; ++n) {
    const Hash root = MerkleRoot(std::span(leaves).subspan(0, n));
    for (uint64_t m = 0; m < n; ++m) {
      auto path = InclusionPath(m, n, source);
      ASSERT_TRUE(path.ok());
      ASSERT_TRUE(VerifyInclusion(m, n, leaves[m], *path, root).ok()) << m << "/" << n;
      if (n > 1) {
        EXPECT_FALSE(VerifyInclusion((m + 1) % n, n, leaves[m], *path, root).ok());
        EXPECT_FALSE(VerifyInclusion(m, n, leaves[(m + 1) % n], *path, root).ok());
      }
      for (size_t i = 0; i < path->size(); ++i) {
        for (size_t byte : {size_t{0}, size_t{17}, size_t{31}}) {
          auto bad = *path;
          bad[i][byte] ^= 0x40;
          ASSERT_FALSE(VerifyInclusion(m, n, leaves[m], bad, root).ok());
        }
      }
      Hash bad_root = root;
      bad_root[5] ^= 1;
      EXPECT_FALSE(VerifyInclusion(m, n, leaves[m], *path, bad_root).ok());
    }
  }
  EXPECT_EQ(InclusionPath(3, 3, source).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(InclusionPath(0, 65, source).status().code(), StatusCode::kNotFound);
}

TEST(MerkleTest, AllConsistencyProofsUpTo64Leaves) {
  auto leaves = SyntheticLeaves(64);
  InMemoryLeafHashes source(leaves);
  std::vector<Hash> roots;
  for (uint64_t n = 0; n <= 64; ++n) roots.push_back(MerkleRoot(std::span(leaves).subspan(0, n)));
  for (uint64_t n = 1; n <= 64; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      auto path = ConsistencyPath(m, n, source);
      ASSERT_TRUE(path.ok());
      ASSERT_TRUE(VerifyConsistency(m, n, roots[m], roots[n], *path).ok()) << m << "->" << n;
      if (m == n) continue;
      EXPECT_FALSE(VerifyConsistency(m, n, roots[n], roots[m], *path).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, roots[m - 1], roots[n], *path).ok());
      for (size_t i = 0; i < path->size(); ++i) {
        auto bad = *path;
        bad[i][9] ^= 0x10;
        ASSERT_FALSE(VerifyConsistency(m, n, roots[m], roots[n], bad).ok());
      }
      auto longer = *path;
      longer.push_back(roots[n]);
      EXPECT_FALSE(VerifyConsistency(m, n, roots[m], roots[n], longer).ok());
      auto shorter = *path;
      shorter.pop_back();
      EXPECT_FALSE(VerifyConsistency(m, n, roots[m], roots[n], shorter).ok());
    }
  }
  EXPECT_EQ(ConsistencyPath(5, 4, source).status().code(), StatusCode::kInvalidArgument);
}

// A source that counts requests: proofs touch O(log n) perfect subtrees, never single leaves
// outside the audit path.
class CountingSource final : public SubtreeHashSource {
 public:
  explicit CountingSource(std::span<const Hash> leaves) : inner_(leaves) {}
  StatusOr<Hash> PerfectSubtreeHash(int level, uint64_t index) const override {
    ++calls_;
    return inner_.PerfectSubtreeHash(level, index);
  }
  mutable int calls_ = 0;

 private:
  InMemoryLeafHashes inner_;
};

TEST(MerkleTest, ProofsAskForLogarithmicallyManySubtrees) {
  auto leaves = SyntheticLeaves(1000);
  CountingSource source(leaves);
  auto path = InclusionPath(777, 1000, source);
  ASSERT_TRUE(path.ok());
  EXPECT_LE(source.calls_, 2 * 10 + 2);
  source.calls_ = 0;
  ASSERT_TRUE(ConsistencyPath(333, 1000, source).ok());
  EXPECT_LE(source.calls_, 2 * 10 + 2);
}

}  // namespace
}  // namespace kura::audit
