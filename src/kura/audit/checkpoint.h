// Checkpoints and prune anchors: signed statements about the audit log's state, and the policy
// for when to sign one.
//
// A checkpoint commits to the first `tree_size` records: their Merkle root (RFC 6962), the chain
// head H_tree_size and the signing time. It is a c2sp.org/tlog-checkpoint signed note with two
// extension lines, so tlog tooling understands the first three lines as usual:
//
//   <origin>
//   <tree size, decimal>
//   <base64 root>
//   chain <base64 chain head>
//   time <microseconds since the Unix epoch, UTC, decimal>
//
//   — <key name> <base64(key id || Ed25519 signature)>
//
// A prune anchor lets the log drop records [0, first_sequence) and stay verifiable: it carries
// what a verifier would have computed from the dropped records (the chain head and the Merkle
// frontier at first_sequence) under the same signature:
//
//   kura-audit-prune-anchor/v1
//   <origin>
//   first <first retained sequence, decimal, > 0>
//   chain <base64 chain head H_first>
//   frontier <base64 hash> ... (popcount(first) hashes, largest subtree first, one space apart)
//   time <microseconds since the Unix epoch, UTC>
//
// docs/formats/audit-log.md has the full grammar. Thread-safe free functions; plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kura/audit/chain.h"
#include "kura/audit/merkle.h"
#include "kura/audit/note.h"
#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/crypto/signature.h"

namespace kura::audit {

inline constexpr std::string_view kPruneAnchorMagic = "kura-audit-prune-anchor/v1";

// True when `origin` can name a log: a valid note key name (no spaces, '+' or control
// characters; origins double as key names) that is not the prune anchor header and does not
// start with a digit (so no note body can be read both as a checkpoint and as something else).
[[nodiscard]] bool IsValidOrigin(std::string_view origin);

struct Checkpoint {
  std::string origin;
  uint64_t tree_size = 0;
  Hash root{};        // Merkle root of records [0, tree_size).
  Hash chain_head{};  // H_tree_size.
  int64_t time_us = 0;
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// The checkpoint of a log whose state is `head`.
[[nodiscard]] Checkpoint CheckpointOf(const LogHead& head, std::string origin, TimePoint now);

// The note text (body) of a checkpoint. InvalidArgument for an invalid origin.
[[nodiscard]] StatusOr<std::string> CheckpointText(const Checkpoint& checkpoint);
// Parses a checkpoint body strictly (exactly the five lines above, canonical numbers and
// base64). DataLoss when malformed.
[[nodiscard]] StatusOr<Checkpoint> ParseCheckpointText(std::string_view text);
// The signed note for `checkpoint`. The key name is the origin (tlog-checkpoint convention).
// InvalidArgument for an invalid origin.
[[nodiscard]] StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                                   const crypto::Ed25519Signer& signer);
// The checkpoint a signed note states, when it is signed by a key in `trusted` (VerifyNote
// rules) and names `origin`. DataLoss otherwise (malformed, bad or missing signature, other
// origin).
[[nodiscard]] StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note, std::string_view origin,
                                                    std::span<const NoteVerifierKey> trusted);
// The verifier key for checkpoints of `origin` signed by `signer`.
[[nodiscard]] StatusOr<NoteVerifierKey> CheckpointVerifierKey(std::string_view origin,
                                                              const crypto::Ed25519Signer& signer);

struct PruneAnchor {
  std::string origin;
  uint64_t first_sequence = 0;  // Records before this one may be deleted; > 0.
  Hash chain_head{};            // H_first_sequence.
  MerkleFrontier frontier;      // Of the first first_sequence leaves.
  int64_t time_us = 0;
  friend bool operator==(const PruneAnchor&, const PruneAnchor&) = default;
};

// The prune anchor for dropping every record before the log's state `head`.
[[nodiscard]] PruneAnchor PruneAnchorOf(const LogHead& head, std::string origin, TimePoint now);
// The note text (body). InvalidArgument for an invalid origin, first_sequence 0 or a frontier
// of another size.
[[nodiscard]] StatusOr<std::string> PruneAnchorText(const PruneAnchor& anchor);
[[nodiscard]] StatusOr<PruneAnchor> ParsePruneAnchorText(std::string_view text);
[[nodiscard]] StatusOr<std::string> SignPruneAnchor(const PruneAnchor& anchor,
                                                    const crypto::Ed25519Signer& signer);
[[nodiscard]] StatusOr<PruneAnchor> VerifyPruneAnchor(std::string_view note,
                                                      std::string_view origin,
                                                      std::span<const NoteVerifierKey> trusted);

// The last checkpoint signed: its size and when.
struct CheckpointMark {
  uint64_t tree_size = 0;
  TimePoint time{};
};

// When to sign a checkpoint: after `every_records` new records or once `every` has passed
// since the last one, whichever comes first, and only when the log grew. Call Due after each
// commit and from a timer (period <= every) so a quiet log still gets its tail signed.
struct CheckpointPolicy {
  uint64_t every_records = 1000;
  std::chrono::microseconds every = std::chrono::seconds(60);

  [[nodiscard]] bool Due(uint64_t tree_size, TimePoint now, const CheckpointMark& last) const;
};

}  // namespace kura::audit
