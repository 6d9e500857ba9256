// Helpers shared by the audit tests: hex, hashes from hex, deterministic signers, sample records.
#pragma once

#include <string>
#include <string_view>

#include "kura/audit/merkle.h"
#include "kura/audit/record.h"
#include "kura/base/random.h"
#include "kura/crypto/signature.h"

namespace kura::audit::testing {

inline std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

inline std::string Hex(std::string_view bytes) {
  return HexEncode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

inline std::string Hex(const Hash& h) { return HexEncode(h); }

inline Hash HashFromHex(std::string_view hex) {
  std::string raw = Unhex(hex);
  Hash h{};
  std::copy(raw.begin(), raw.end(), h.begin());
  return h;
}

// A signer from a fixed 32-byte seed, so tests are reproducible.
inline crypto::Ed25519Signer SignerFromSeedHex(std::string_view seed_hex) {
  std::string raw = Unhex(seed_hex);
  auto seed = SecretBytes::CopyFrom({reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
  return std::move(*crypto::Ed25519Signer::FromSeed(std::move(*seed)));
}

// A plausible FHIR read event with every field set.
inline AuditRecord SampleRecord(uint64_t i) {
  AuditRecord r;
  r.sequence = i;
  r.time_us = 1700000000000000 + static_cast<int64_t>(i) * 1000;
  r.category = "fhir";
  r.action = i % 3 == 0 ? "read" : (i % 3 == 1 ? "search" : "create");
  r.outcome = i % 7 == 0 ? Outcome::kMinorFailure : Outcome::kSuccess;
  r.outcome_reason = i % 7 == 0 ? "forbidden" : "";
  r.actor = {"account", "acct-" + std::to_string(i % 5), "clinician", "tenant-1", "app-42"};
  r.source_address = "192.0.2." + std::to_string(i % 250);
  r.request_id = "req-" + std::to_string(i);
  r.purpose = i % 11 == 0 ? "break-glass: unconscious patient in ER" : "";
  r.patient_compartments = {"pat-" + std::to_string(i % 13), "pat-" + std::to_string(i % 4)};
  r.resource_type = "Observation";
  r.resource_id = "obs-" + std::to_string(i);
  r.resource_version = std::to_string(1 + i % 3);
  r.details = {{"http.status", i % 7 == 0 ? "403" : "200"}, {"bundle.index", std::to_string(i)}};
  return r;
}

}  // namespace kura::audit::testing
