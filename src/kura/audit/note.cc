// Signed note formatting, parsing and Ed25519 verification.
#include "kura/audit/note.h"

#include <cstdio>

#include "kura/audit/record.h"
#include "kura/base/random.h"
#include "kura/base/utf8.h"
#include "kura/crypto/hash.h"

namespace kura::audit {
namespace {

constexpr std::string_view kEmDashSpace = "\xe2\x80\x94 ";  // U+2014 then a space.

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Valid UTF-8 with no ASCII control character other than newline.
bool IsNoteSafe(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<uint8_t>(c);
    if ((u < 0x20 && c != '\n') || u == 0x7f) return false;
  }
  return IsValidUtf8(s);
}

Status Malformed(std::string detail) {
  return DataLossError("malformed signed note", std::move(detail));
}

Status CheckText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return InvalidArgumentError("note text must end with a newline");
  }
  if (text.size() > kMaxNoteBytes / 2) return InvalidArgumentError("note text is too long");
  if (!IsNoteSafe(text)) return InvalidArgumentError("note text has forbidden characters");
  if (text.find("\n\n") != std::string_view::npos || text.front() == '\n') {
    return InvalidArgumentError("note text must not contain empty lines");
  }
  return Status::Ok();
}

}  // namespace

uint32_t NoteKeyId(std::string_view key_name, std::string_view public_key) {
  std::string buf(key_name);
  buf.push_back('\n');
  buf.push_back(static_cast<char>(kNoteAlgEd25519));
  buf.append(public_key);
  crypto::Sha256Digest h = crypto::Sha256(buf);
  return (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
}

bool IsValidNoteKeyName(std::string_view name) {
  if (name.empty() || !IsNoteSafe(name)) return false;
  for (char c : name) {
    if (c == ' ' || c == '+' || c == '\n') return false;
  }
  // Unicode spaces outside ASCII: no-break space, the U+2000 block, ideographic space, etc.
  for (std::string_view space :
       {"\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83",
        "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88",
        "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf",
        "\xe2\x81\x9f", "\xe3\x80\x80", "\xc2\x85"}) {
    if (name.find(space) != std::string_view::npos) return false;
  }
  return true;
}

StatusOr<NoteVerifierKey> NoteVerifierKey::Create(std::string name, std::string public_key) {
  if (!IsValidNoteKeyName(name)) return InvalidArgumentError("invalid note key name");
  if (public_key.size() != crypto::kEd25519PublicKeyBytes) {
    return InvalidArgumentError("an Ed25519 public key is 32 bytes");
  }
  uint32_t id = NoteKeyId(name, public_key);
  return NoteVerifierKey(std::move(name), std::move(public_key), id);
}

StatusOr<NoteVerifierKey> NoteVerifierKey::Parse(std::string_view text) {
  // Names cannot hold '+', base64 can: split at the first '+' and expect 8 hex digits after it.
  const size_t first_plus = text.find('+');
  if (first_plus == std::string_view::npos || text.size() < first_plus + 10 ||
      text[first_plus + 9] != '+') {
    return InvalidArgumentError("verifier key is not <name>+<id>+<key>");
  }
  const size_t second_plus = first_plus + 9;
  std::string_view name = text.substr(0, first_plus);
  std::string_view id_hex = text.substr(first_plus + 1, 8);
  std::string key;
  if (!Base64DecodeCanonical(text.substr(second_plus + 1), key) ||
      key.size() != 1 + crypto::kEd25519PublicKeyBytes ||
      static_cast<uint8_t>(key[0]) != kNoteAlgEd25519) {
    return InvalidArgumentError("verifier key does not hold an Ed25519 public key");
  }
  KURA_ASSIGN_OR_RETURN(NoteVerifierKey out, Create(std::string(name), key.substr(1)));
  char expected[9];
  std::snprintf(expected, sizeof(expected), "%08x", out.key_id());
  if (id_hex != expected) return InvalidArgumentError("verifier key id does not match its key");
  return out;
}

std::string NoteVerifierKey::ToString() const {
  char id[9];
  std::snprintf(id, sizeof(id), "%08x", key_id_);
  std::string key(1, static_cast<char>(kNoteAlgEd25519));
  key += public_key_;
  return name_ + "+" + id + "+" + Base64Encode(Bytes(key));
}

StatusOr<std::string> SignNote(std::string_view text, std::string_view key_name,
                               const crypto::Ed25519Signer& signer) {
  KURA_RETURN_IF_ERROR(CheckText(text));
  if (!IsValidNoteKeyName(key_name)) return InvalidArgumentError("invalid note key name");
  const uint32_t id = NoteKeyId(key_name, signer.PublicKey());
  std::string blob;
  for (int shift = 24; shift >= 0; shift -= 8) blob.push_back(static_cast<char>(id >> shift));
  blob += signer.Sign(text);
  std::string note(text);
  note += "\n";
  note += kEmDashSpace;
  note += key_name;
  note += " ";
  note += Base64Encode(Bytes(blob));
  note += "\n";
  return note;
}

StatusOr<ParsedNote> ParseNote(std::string_view note) {
  if (note.size() > kMaxNoteBytes) return Malformed("note too large");
  if (!IsNoteSafe(note)) return Malformed("note is not UTF-8 text without control characters");
  if (note.empty() || note.back() != '\n') return Malformed("note does not end with a newline");
  // The text ends at the last empty line.
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) return Malformed("note has no signature block");
  ParsedNote out;
  out.text = std::string(note.substr(0, split + 1));
  std::string_view rest = note.substr(split + 2);
  if (rest.empty()) return Malformed("note has no signatures");
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');  // Present: the note ends with a newline.
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 1);
    if (line.substr(0, kEmDashSpace.size()) != kEmDashSpace) {
      return Malformed("signature line does not start with an em dash");
    }
    line.remove_prefix(kEmDashSpace.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return Malformed("signature line has no signature");
    std::string_view name = line.substr(0, space);
    std::string_view encoded = line.substr(space + 1);
    std::string blob;
    if (!IsValidNoteKeyName(name) || !Base64DecodeCanonical(encoded, blob) || blob.size() < 5) {
      return Malformed("signature line is malformed");
    }
    NoteSignature sig;
    sig.key_name = std::string(name);
    for (int i = 0; i < 4; ++i) sig.key_id = (sig.key_id << 8) | static_cast<uint8_t>(blob[i]);
    sig.signature = blob.substr(4);
    if (out.signatures.size() == kMaxNoteSignatures) return Malformed("too many signatures");
    out.signatures.push_back(std::move(sig));
  }
  return out;
}

StatusOr<std::string> VerifyNote(std::string_view note, std::span<const NoteVerifierKey> trusted) {
  KURA_ASSIGN_OR_RETURN(ParsedNote parsed, ParseNote(note));
  bool verified = false;
  for (const NoteSignature& sig : parsed.signatures) {
    for (const NoteVerifierKey& key : trusted) {
      if (key.name() != sig.key_name || key.key_id() != sig.key_id) continue;
      if (!crypto::VerifyEd25519(key.public_key(), parsed.text, sig.signature)) {
        return DataLossError("signature invalid",
                             "note signature by trusted key " + key.name() + " does not verify");
      }
      verified = true;
    }
  }
  if (!verified) {
    return DataLossError("signature invalid", "note carries no signature by a trusted key");
  }
  return std::move(parsed.text);
}

}  // namespace kura::audit
