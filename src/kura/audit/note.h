// Signed notes (c2sp.org/signed-note) with Ed25519: the envelope of audit checkpoints and prune
// anchors, so standard transparency-log tooling (and a few lines of any language) can check them.
//
//   <text: one or more lines, each ending in "\n">
//   <empty line>
//   — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature (64 bytes))>
//
// The signature covers the text including its final newline. The key id is the first four
// bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key). A verifier trusts keys by
// (name, id, public key); signatures from unknown keys are ignored, a signature from a trusted
// key that fails rejects the note, and at least one trusted signature must verify.
// Thread-safe free functions; NoteVerifierKey is an immutable value.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"
#include "kura/crypto/signature.h"

namespace kura::audit {

inline constexpr size_t kMaxNoteBytes = 64 * 1024;
inline constexpr size_t kMaxNoteSignatures = 64;
inline constexpr uint8_t kNoteAlgEd25519 = 0x01;

// The key id of an Ed25519 note key (see the header comment).
[[nodiscard]] uint32_t NoteKeyId(std::string_view key_name, std::string_view public_key);
// True when `name` is a valid key name: non-empty printable ASCII or UTF-8 without spaces,
// control characters or '+'.
[[nodiscard]] bool IsValidNoteKeyName(std::string_view name);

// A public key a verifier trusts, under the name its signature lines carry.
class NoteVerifierKey {
 public:
  // InvalidArgument for a bad name or a public key that is not 32 bytes.
  [[nodiscard]] static StatusOr<NoteVerifierKey> Create(std::string name, std::string public_key);
  // Parses the text form "<name>+<8 hex digits of key id>+<base64(0x01 || public key)>" (the
  // golang.org/x/mod/sumdb/note verifier format). InvalidArgument when malformed or when the id
  // does not match the name and key.
  [[nodiscard]] static StatusOr<NoteVerifierKey> Parse(std::string_view text);

  const std::string& name() const { return name_; }
  const std::string& public_key() const { return public_key_; }
  uint32_t key_id() const { return key_id_; }
  // The text form Parse accepts; safe to publish and pin in sinks and `kura audit verify`.
  [[nodiscard]] std::string ToString() const;

 private:
  NoteVerifierKey(std::string name, std::string public_key, uint32_t key_id)
      : name_(std::move(name)), public_key_(std::move(public_key)), key_id_(key_id) {}
  std::string name_;
  std::string public_key_;
  uint32_t key_id_;
};

struct NoteSignature {
  std::string key_name;
  uint32_t key_id = 0;
  std::string signature;  // The bytes after the key id.
};

struct ParsedNote {
  std::string text;  // Including the final newline.
  std::vector<NoteSignature> signatures;
};

// `text` (which must end in "\n", be valid UTF-8 without control characters other than
// newline, and have no empty last line) signed by `signer` under `key_name`, as a full note.
// InvalidArgument when the text or the key name is not valid.
[[nodiscard]] StatusOr<std::string> SignNote(std::string_view text, std::string_view key_name,
                                             const crypto::Ed25519Signer& signer);

// Splits a note into text and signature lines without checking any signature. DataLoss when
// the note is not well-formed (size, encoding, separator, signature line syntax).
[[nodiscard]] StatusOr<ParsedNote> ParseNote(std::string_view note);

// The note's text when at least one signature by a key in `trusted` verifies and none by a
// trusted key fails. DataLoss otherwise: "malformed signed note" when ParseNote fails,
// "signature invalid" (which key and why in the internal detail) when no trusted signature
// verifies or one fails.
[[nodiscard]] StatusOr<std::string> VerifyNote(std::string_view note,
                                               std::span<const NoteVerifierKey> trusted);

}  // namespace kura::audit
