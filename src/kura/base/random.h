// Random values: identifiers, tokens and nonces from a per-thread generator seeded by the
// kernel, key material straight from the kernel. Thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kura/base/clock.h"

namespace kura {

// Fills `out` from this thread's generator: ChaCha20 with fast key erasure (libsodium's
// randombytes_buf_deterministic, the construction of libsodium's own internal generator),
// keyed from the kernel on first use, again after every 1 MiB drawn and in a forked child.
// Each refill replaces the key with the first 32 bytes of the new keystream and every byte
// handed out is wiped from the buffer, so the state never reveals earlier output. A system
// call costs about a microsecond on a virtual machine, and a request draws several values.
void RandomFill(std::span<uint8_t> out);
// Fills `out` straight from the kernel (getrandom): for long-lived key material.
void SystemRandomFill(std::span<uint8_t> out);
// How often this thread's generator has been keyed from the kernel (for tests).
uint64_t RandomGeneratorReseedsOnThisThread();
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
