// AuditRecord: one entry of the tamper-evident audit log, and its canonical binary encoding.
//
// A record says who (actor) did what (category + action) to which data (resource, patient
// compartments), from where (source address, request id), why (purpose) and with what result
// (outcome), at which UTC instant. Event kinds without a dedicated field put their facts in
// `details`, so new kinds (token, role, detection events) need no format change.
//
// The canonical encoding (docs/formats/audit-log.md, "Record encoding") is what the hash chain
// and the Merkle tree commit to. It is versioned by its first byte, deterministic (one byte
// string per record value: fixed field order, compartments and detail keys sorted) and strict:
// DecodeAuditRecord rejects anything EncodeAuditRecord would not have produced. Records never
// hold PHI beyond identifiers: no resource content, no secrets, no tokens.
// Thread-safe free functions; AuditRecord is a plain value.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kura/base/status.h"

namespace kura::audit {

// First byte of every canonical record.
inline constexpr uint8_t kRecordFormatV1 = 0x01;
// Upper bounds the encoder enforces and the decoder relies on.
inline constexpr size_t kMaxRecordBytes = 1 << 20;
inline constexpr size_t kMaxFieldBytes = 64 * 1024;

// Event categories. Free-form lowercase strings in the format; these are the ones Kura emits.
namespace category {
inline constexpr std::string_view kFhir = "fhir";      // FHIR REST interactions.
inline constexpr std::string_view kAuth = "auth";      // Login, MFA, sessions, tokens, roles.
inline constexpr std::string_view kAdmin = "admin";    // Administrative CLI and console actions.
inline constexpr std::string_view kSystem = "system";  // Start, stop, verification, retention.
}  // namespace category

// Action codes. FHIR interactions use the FHIR interaction name; operations their "$name".
namespace action {
inline constexpr std::string_view kRead = "read";
inline constexpr std::string_view kVread = "vread";
inline constexpr std::string_view kSearch = "search";
inline constexpr std::string_view kHistory = "history";
inline constexpr std::string_view kCreate = "create";
inline constexpr std::string_view kUpdate = "update";
inline constexpr std::string_view kPatch = "patch";
inline constexpr std::string_view kDelete = "delete";
inline constexpr std::string_view kEverything = "$everything";
inline constexpr std::string_view kBatch = "batch";  // A batch or transaction Bundle as a whole.
inline constexpr std::string_view kAuthenticate = "authenticate";  // A credential check.
inline constexpr std::string_view kLogin = "login";
inline constexpr std::string_view kLogout = "logout";
inline constexpr std::string_view kStart = "start";
inline constexpr std::string_view kStop = "stop";
inline constexpr std::string_view kVerify = "verify";
inline constexpr std::string_view kPrune = "prune";  // Retention deleted the oldest records.
}  // namespace action

// Detail keys with a meaning outside the record (see docs/formats/audit-log.md).
namespace detail {
// On a write record: the lastUpdated of the version it wrote, in microseconds since the Unix
// epoch, which `kura audit verify` holds the stored version to.
inline constexpr std::string_view kVersionLastUpdatedUs = "fhir.version_last_updated_us";
// On a `system`/`prune` record: the prune anchor its step signed (docs/formats/audit-log.md,
// section 7), the note in base64. The record travels to every sink in order, so a SIEM's copy
// keeps every anchor ever signed, also after a later prune has replaced the stored one.
inline constexpr std::string_view kPruneAnchor = "prune.anchor";
}  // namespace detail

// FHIR AuditEvent.outcome codes, so the FHIR rendering is a direct mapping.
enum class Outcome : uint8_t {
  kSuccess = 0,
  kMinorFailure = 4,    // The request failed (e.g. 4xx: denied, not found, invalid).
  kSeriousFailure = 8,  // The request failed and the action was abandoned (e.g. 5xx).
  kMajorFailure = 12,   // The system failed (e.g. audit or storage unavailable).
};
std::string_view OutcomeName(Outcome outcome);  // "success", "minor-failure", ...

// Who acted. `kind` is "account", "client", "api-token", "system" or "anonymous"; `id` the account
// id, OAuth client id or service name; `client_id` the OAuth client an account acted through (empty
// when the account acted directly). Unknown parts stay empty (e.g. the tenant of a failed login).
struct Actor {
  std::string kind;
  std::string id;
  std::string role;
  std::string tenant;
  std::string client_id;
  friend bool operator==(const Actor&, const Actor&) = default;
};

struct AuditRecord {
  // Position in the log, assigned by AuditChain::Append (0-based; equals the Merkle leaf index).
  uint64_t sequence = 0;
  // UTC instant of the event, microseconds since 1970-01-01T00:00:00Z.
  int64_t time_us = 0;
  std::string category;  // Required, see `category::`.
  std::string action;    // Required, see `action::`.
  Outcome outcome = Outcome::kSuccess;
  // Short machine code for a failure ("forbidden", "not-found", "bad-password"); never PHI.
  std::string outcome_reason;
  Actor actor;
  std::string source_address;  // Client IP address as text.
  std::string request_id;
  // Why the access happened, e.g. the break-glass reason. Free text typed by a user: the only
  // field that may hold prose; exporters treat it as sensitive.
  std::string purpose;
  // Ids of the patient compartments the event touched. A set: encoding sorts and deduplicates.
  std::vector<std::string> patient_compartments;
  // The resource (or, with a "kura:" prefix such as "kura:Account", the non-FHIR object) acted
  // on. Empty when none (e.g. a search, whose compartments and details say what it returned).
  std::string resource_type;
  std::string resource_id;
  std::string resource_version;
  // Extra facts for event kinds without a dedicated field ("http.status", "bundle.index",
  // "token.family", ...). Keys are unique and non-empty; encoding sorts them bytewise.
  std::vector<std::pair<std::string, std::string>> details;

  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

// The canonical v1 bytes of `record` (docs/formats/audit-log.md). Compartments are sorted and
// deduplicated and details sorted by key first, so equal records encode equally.
// InvalidArgument when category or action is empty, a string is not valid UTF-8 or longer than
// kMaxFieldBytes, a compartment id or detail key is empty, a detail key repeats, or the whole
// record exceeds kMaxRecordBytes.
[[nodiscard]] StatusOr<std::string> EncodeAuditRecord(const AuditRecord& record);

// Numbers a record encoded before its sequence was known: the sequence is a fixed-width field at
// a fixed offset, so `canonical` becomes exactly what EncodeAuditRecord gives for the record with
// `sequence`. This lets the request's thread encode and check a record and leaves the single
// writer only the numbering. InvalidArgument when `canonical` is not a v1 encoding.
[[nodiscard]] Status SetEncodedSequence(std::string& canonical, uint64_t sequence);

// Parses canonical bytes. DataLoss for anything EncodeAuditRecord cannot have produced: unknown
// format byte, truncation, trailing bytes, over-long fields, invalid UTF-8, unknown outcome code,
// unsorted or repeated compartments or detail keys, empty required fields.
[[nodiscard]] StatusOr<AuditRecord> DecodeAuditRecord(std::string_view canonical);

// The record as a JSON object for exports and the API (field list in docs/formats/audit-log.md,
// "JSON rendering"). Keys in a fixed order; `time` is RFC 3339 UTC with microseconds. Not
// canonical: hashes are always over the binary encoding. Precondition: the record encodes (all
// strings valid UTF-8), e.g. it came from DecodeAuditRecord or AuditChain::Append.
[[nodiscard]] nlohmann::ordered_json AuditRecordToJson(const AuditRecord& record);

// "2024-01-01T00:00:00.123456Z".
[[nodiscard]] std::string FormatMicrosUtc(int64_t time_us);

}  // namespace kura::audit
