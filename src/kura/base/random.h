// Random values from the system CSPRNG (libsodium's randombytes): identifiers and tokens.
// Thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kura/base/clock.h"

namespace kura {

void RandomFill(std::span<uint8_t> out);
// A uniformly random 64-bit value other than 0 (so it can name a key, 0 meaning none).
uint64_t RandomNonZeroUint64();
// A random RFC 4122 version-4 UUID in lowercase text form; valid as a FHIR id.
std::string RandomUuid();
// A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds from `now`, then 74 random bits.
// Ids made in time order sort (and insert into B-tree indexes) next to each other.
std::string TimeOrderedUuid(TimePoint now);
// `bytes` random bytes as unpadded base64url text.
std::string RandomToken(size_t bytes);

std::string HexEncode(std::span<const uint8_t> bytes);
std::string Base64UrlEncode(std::span<const uint8_t> bytes);
std::string Base64Encode(std::span<const uint8_t> bytes);
// Decodes standard base64 (with or without padding); false on bad input.
bool Base64Decode(std::string_view text, std::string& out);
// Base64Decode for formats that allow one spelling per value: standard alphabet, padded, and
// exactly what Base64Encode gives for the decoded bytes.
bool Base64DecodeCanonical(std::string_view text, std::string& out);

}  // namespace kura
