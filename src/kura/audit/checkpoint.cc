// Checkpoint and prune anchor bodies, their signing and verification, and the checkpoint policy.
#include "kura/audit/checkpoint.h"

#include <charconv>
#include <vector>

#include "kura/base/random.h"

namespace kura::audit {
namespace {

std::string B64(const Hash& h) { return Base64Encode(h); }

Status Malformed(std::string detail) {
  return DataLossError("malformed audit checkpoint", std::move(detail));
}

// Splits text ending in "\n" into its lines (without the newlines).
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    if (eol == std::string_view::npos) {
      out.push_back(text);
      break;
    }
    out.push_back(text.substr(0, eol));
    text.remove_prefix(eol + 1);
  }
  return out;
}

// Canonical unsigned decimal: digits only, no leading zero unless the value is 0, fits u64.
// from_chars rejects signs, spaces and overflow; the full-length check rejects trailing text.
bool ParseU64(std::string_view s, uint64_t& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Canonical signed decimal: optional '-', no leading zeros, no "-0", fits i64.
bool ParseI64(std::string_view s, int64_t& out) {
  std::string_view digits = s.substr(0, 1) == "-" ? s.substr(1) : s;
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) return false;
  if (s[0] == '-' && digits == "0") return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// "<tag> <value>" with exactly one space.
bool TaggedValue(std::string_view line, std::string_view tag, std::string_view& value) {
  if (line.size() < tag.size() + 1 || line.substr(0, tag.size()) != tag ||
      line[tag.size()] != ' ') {
    return false;
  }
  value = line.substr(tag.size() + 1);
  return true;
}

}  // namespace

bool IsValidOrigin(std::string_view origin) {
  if (!IsValidNoteKeyName(origin) || origin == kPruneAnchorMagic) return false;
  return !(origin[0] >= '0' && origin[0] <= '9');
}

Checkpoint CheckpointOf(const LogHead& head, std::string origin, TimePoint now) {
  return Checkpoint{std::move(origin), head.size(), head.frontier.Root(), head.chain_head,
                    ToMicros(now)};
}

StatusOr<std::string> CheckpointText(const Checkpoint& c) {
  if (!IsValidOrigin(c.origin)) return InvalidArgumentError("invalid audit log origin");
  return c.origin + "\n" + std::to_string(c.tree_size) + "\n" + B64(c.root) + "\nchain " +
         B64(c.chain_head) + "\ntime " + std::to_string(c.time_us) + "\n";
}

StatusOr<Checkpoint> ParseCheckpointText(std::string_view text) {
  if (text.empty() || text.back() != '\n') return Malformed("checkpoint must end with a newline");
  std::vector<std::string_view> lines = Lines(text);
  if (lines.size() != 5) return Malformed("checkpoint must have exactly five lines");
  Checkpoint c;
  c.origin = std::string(lines[0]);
  if (!IsValidOrigin(c.origin)) return Malformed("checkpoint origin is invalid");
  if (!ParseU64(lines[1], c.tree_size)) return Malformed("checkpoint tree size is invalid");
  if (!ParseHashBase64(lines[2], c.root)) return Malformed("checkpoint root is invalid");
  std::string_view value;
  if (!TaggedValue(lines[3], "chain", value) || !ParseHashBase64(value, c.chain_head)) {
    return Malformed("checkpoint chain line is invalid");
  }
  if (!TaggedValue(lines[4], "time", value) || !ParseI64(value, c.time_us)) {
    return Malformed("checkpoint time line is invalid");
  }
  return c;
}

StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                     const crypto::Ed25519Signer& signer) {
  KURA_ASSIGN_OR_RETURN(std::string text, CheckpointText(checkpoint));
  return SignNote(text, checkpoint.origin, signer);
}

StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note, std::string_view origin,
                                      std::span<const NoteVerifierKey> trusted) {
  KURA_ASSIGN_OR_RETURN(std::string text, VerifyNote(note, trusted));
  KURA_ASSIGN_OR_RETURN(Checkpoint c, ParseCheckpointText(text));
  if (c.origin != origin) {
    return DataLossError("checkpoint is for another log",
                         "checkpoint origin " + c.origin + " is not " + std::string(origin));
  }
  return c;
}

StatusOr<NoteVerifierKey> CheckpointVerifierKey(std::string_view origin,
                                                const crypto::Ed25519Signer& signer) {
  if (!IsValidOrigin(origin)) return InvalidArgumentError("invalid audit log origin");
  return NoteVerifierKey::Create(std::string(origin), signer.PublicKey());
}

PruneAnchor PruneAnchorOf(const LogHead& head, std::string origin, TimePoint now) {
  return PruneAnchor{std::move(origin), head.size(), head.chain_head, head.frontier, ToMicros(now)};
}

StatusOr<std::string> PruneAnchorText(const PruneAnchor& a) {
  if (!IsValidOrigin(a.origin)) return InvalidArgumentError("invalid audit log origin");
  if (a.first_sequence == 0) return InvalidArgumentError("a prune anchor needs first > 0");
  if (a.frontier.size() != a.first_sequence) {
    return InvalidArgumentError("prune anchor frontier has the wrong size");
  }
  std::string text = std::string(kPruneAnchorMagic) + "\n" + a.origin + "\nfirst " +
                     std::to_string(a.first_sequence) + "\nchain " + B64(a.chain_head) +
                     "\nfrontier";
  for (const Hash& h : a.frontier.hashes()) text += " " + B64(h);
  text += "\ntime " + std::to_string(a.time_us) + "\n";
  return text;
}

StatusOr<PruneAnchor> ParsePruneAnchorText(std::string_view text) {
  if (text.empty() || text.back() != '\n') return Malformed("anchor must end with a newline");
  std::vector<std::string_view> lines = Lines(text);
  if (lines.size() != 6 || lines[0] != kPruneAnchorMagic) {
    return Malformed("not a v1 prune anchor");
  }
  PruneAnchor a;
  a.origin = std::string(lines[1]);
  if (!IsValidOrigin(a.origin)) return Malformed("prune anchor origin is invalid");
  std::string_view value;
  if (!TaggedValue(lines[2], "first", value) || !ParseU64(value, a.first_sequence) ||
      a.first_sequence == 0) {
    return Malformed("prune anchor first line is invalid");
  }
  if (!TaggedValue(lines[3], "chain", value) || !ParseHashBase64(value, a.chain_head)) {
    return Malformed("prune anchor chain line is invalid");
  }
  // "frontier" then one " <hash>" per set bit of first_sequence.
  std::string_view frontier = lines[4];
  if (frontier.substr(0, 8) != "frontier") return Malformed("prune anchor frontier line missing");
  frontier.remove_prefix(8);
  std::vector<Hash> hashes;
  while (!frontier.empty()) {
    if (frontier[0] != ' ' || hashes.size() >= 64) return Malformed("bad frontier line");
    frontier.remove_prefix(1);
    const size_t end = std::min(frontier.find(' '), frontier.size());
    Hash h{};
    if (!ParseHashBase64(frontier.substr(0, end), h)) return Malformed("bad frontier hash");
    hashes.push_back(h);
    frontier.remove_prefix(end);
  }
  auto restored = MerkleFrontier::FromHashes(a.first_sequence, std::move(hashes));
  if (!restored.ok()) return Malformed("prune anchor frontier has the wrong number of hashes");
  a.frontier = std::move(restored).value();
  if (!TaggedValue(lines[5], "time", value) || !ParseI64(value, a.time_us)) {
    return Malformed("prune anchor time line is invalid");
  }
  return a;
}

StatusOr<std::string> SignPruneAnchor(const PruneAnchor& anchor,
                                      const crypto::Ed25519Signer& signer) {
  KURA_ASSIGN_OR_RETURN(std::string text, PruneAnchorText(anchor));
  return SignNote(text, anchor.origin, signer);
}

StatusOr<PruneAnchor> VerifyPruneAnchor(std::string_view note, std::string_view origin,
                                        std::span<const NoteVerifierKey> trusted) {
  KURA_ASSIGN_OR_RETURN(std::string text, VerifyNote(note, trusted));
  KURA_ASSIGN_OR_RETURN(PruneAnchor a, ParsePruneAnchorText(text));
  if (a.origin != origin) {
    return DataLossError("prune anchor is for another log",
                         "anchor origin " + a.origin + " is not " + std::string(origin));
  }
  return a;
}

bool CheckpointPolicy::Due(uint64_t tree_size, TimePoint now, const CheckpointMark& last) const {
  if (tree_size <= last.tree_size) return false;
  if (every_records > 0 && tree_size - last.tree_size >= every_records) return true;
  return now - last.time >= every;
}

}  // namespace kura::audit
