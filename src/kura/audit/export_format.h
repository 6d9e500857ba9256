// Export formats of the audit log: how a record or a signed checkpoint looks to a SIEM.
//
// Three wire formats (docs/formats/audit-export.md is the normative description):
//  - RFC 5424 syslog, the facts in one structured-data element (SD-ID `kura@<PEN>`), a short
//    human summary as MSG; or, with SyslogPayload::kCef, a CEF line as MSG;
//  - ArcSight CEF:0 lines, mapped onto the standard CEF extension keys;
//  - JSON lines: the record's JSON rendering (record.h) plus a "type" key.
// Checkpoints travel in the same formats so that a copy of every signed tree head lives outside
// Kura's database; each format carries the signed note so that a verifier can rebuild its exact
// bytes (ExtractCheckpointNote does that for all three).
//
// Exports are for people and SIEM rules: they never feed the hash chain. Where a format cannot
// hold a character losslessly (control characters in syslog and CEF, bytes outside PRINTUSASCII
// in syslog names) the text is replaced as documented; the JSON line is lossless. Records come
// from the chain, so their strings are valid UTF-8; invalid UTF-8 is still replaced by U+FFFD
// rather than passed on, because receivers choke on it.
//
// Thread-safe free functions over plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kura/audit/record.h"
#include "kura/base/status.h"

namespace kura::audit {

// RFC 5424 section 6.2.1 facility codes that suit an audit trail. Kura defaults to authpriv: on
// common receivers it is routed to a file only root can read, which matches records that name
// accounts and patients. "log audit" (13) is the other natural choice.
inline constexpr uint8_t kSyslogFacilityAuthpriv = 10;
inline constexpr uint8_t kSyslogFacilityLogAudit = 13;
inline constexpr uint8_t kSyslogFacilityLocal0 = 16;
inline constexpr uint8_t kSyslogMaxFacility = 23;

// The IANA Private Enterprise Number reserved for documentation and examples (RFC 5612). Kura has
// no PEN of its own; operators who own one may set it so the SD-IDs become theirs.
inline constexpr uint32_t kExampleEnterpriseNumber = 32473;

// RFC 5424 field limits (section 6).
inline constexpr size_t kSyslogMaxHostname = 255;
inline constexpr size_t kSyslogMaxAppName = 48;
inline constexpr size_t kSyslogMaxProcId = 128;
inline constexpr size_t kSyslogMaxMsgId = 32;
inline constexpr size_t kSyslogMaxParamName = 32;

// What the MSG part of a syslog export carries.
enum class SyslogPayload {
  // The facts in one SD-ELEMENT, a short human summary as MSG.
  kStructuredData,
  // No structured data (NILVALUE); MSG is the CEF line (FormatCef / FormatCheckpointCef), for
  // SIEMs that parse CEF out of syslog.
  kCef,
};

struct CefFormatOptions {
  // Device Version in the CEF header. Empty: the version this binary was built as.
  std::string product_version;
};

struct SyslogFormatOptions {
  uint8_t facility = kSyslogFacilityAuthpriv;  // 0..kSyslogMaxFacility.
  // HOSTNAME, APP-NAME and PROCID. Empty gives NILVALUE "-". Characters outside PRINTUSASCII
  // become '_', and each is cut to its RFC 5424 limit. The server sets `hostname` to its FQDN.
  std::string hostname;
  std::string app_name = "kura";
  std::string procid;
  // The enterprise number in the SD-IDs `kura@<n>` and `kuraCheckpoint@<n>`.
  uint32_t enterprise_number = kExampleEnterpriseNumber;
  SyslogPayload payload = SyslogPayload::kStructuredData;
  CefFormatOptions cef;  // Used when payload is kCef.
};

// A facility by its conventional name ("authpriv", "auth", "daemon", "audit" or "logaudit",
// "local0".."local7", ...) or its number "0".."23". InvalidArgument otherwise.
[[nodiscard]] StatusOr<uint8_t> ParseSyslogFacility(std::string_view name);

// InvalidArgument when the facility is above kSyslogMaxFacility or the app name is empty. The
// formatters' precondition; config loading calls this so a bad value fails at start.
[[nodiscard]] Status ValidateSyslogFormatOptions(const SyslogFormatOptions& options);

// RFC 5424 severity of a record: success 6 (informational), minor failure 5 (notice), serious
// failure 4 (warning), major failure 3 (error).
[[nodiscard]] uint8_t SyslogSeverity(Outcome outcome);
// CEF severity (0..10) of a record: success 3, minor failure 5, serious failure 7, major
// failure 9.
[[nodiscard]] int CefSeverity(Outcome outcome);

// One RFC 5424 message for `record`, without transport framing:
//   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [kura@PEN seq="..." ...] MSG
// TIMESTAMP is the record's time (UTC, microseconds); MSGID is "<category>.<action>". MSG is
// plain ASCII when the text is ASCII and "BOM + UTF-8" (RFC 5424 MSG-UTF8) otherwise.
// Precondition: ValidateSyslogFormatOptions(options) is OK.
[[nodiscard]] std::string FormatSyslog5424(const AuditRecord& record,
                                           const SyslogFormatOptions& options);

// One RFC 5424 message shipping a signed checkpoint: MSGID "audit.checkpoint", severity notice,
// TIMESTAMP the checkpoint's signing time, and (payload kStructuredData)
//   [kuraCheckpoint@PEN tree_size="N" time_us="T" note="<base64 of the signed note>"]
// or (payload kCef) FormatCheckpointCef as MSG. Same precondition as FormatSyslog5424.
[[nodiscard]] std::string FormatCheckpointSyslog5424(std::string_view signed_note,
                                                     uint64_t tree_size, int64_t time_us,
                                                     const SyslogFormatOptions& options);

// One CEF:0 line for `record`, without a trailing newline:
//   CEF:0|Kura|Kura|<version>|<category>.<action>|<category> <action>|<severity>|<extension>
// The extension mapping is in the .cc and docs/formats/audit-export.md.
[[nodiscard]] std::string FormatCef(const AuditRecord& record, const CefFormatOptions& options);

// One CEF:0 line shipping a signed checkpoint: signature id "audit.checkpoint", severity 3,
// extension `rt=<ms> cn1Label=treeSize cn1=N cn2Label=timeMicros cn2=T
// cs1Label=checkpointNote cs1=<base64 of the signed note>` (with CEF's `\=` escapes).
[[nodiscard]] std::string FormatCheckpointCef(std::string_view signed_note, uint64_t tree_size,
                                              int64_t time_us, const CefFormatOptions& options);

// The record's JSON rendering (AuditRecordToJson) with "type":"record" as the first key, compact,
// followed by "\n".
[[nodiscard]] std::string FormatJsonLine(const AuditRecord& record);

// {"type":"checkpoint","tree_size":N,"time":"<RFC 3339>","time_us":T,"note":"<signed note>"}
// followed by "\n". The note is a JSON string, so it decodes to the exact bytes.
[[nodiscard]] std::string FormatCheckpointJsonLine(std::string_view signed_note, uint64_t tree_size,
                                                   int64_t time_us);

// RFC 6587 section 3.4.1 / RFC 5425 section 4.3 octet counting: "<byte length> <message>".
[[nodiscard]] std::string FrameOctetCounting(std::string_view message);

// The signed note bytes from a checkpoint as a receiver stored it: a JSON line from
// FormatCheckpointJsonLine, or a line holding the RFC 5424 message (kuraCheckpoint SD element,
// any enterprise number) or the CEF line of FormatCheckpointCef. The caller still verifies the
// note (VerifyCheckpoint): this only undoes the transport encoding. InvalidArgument when `line`
// holds no well-formed checkpoint.
[[nodiscard]] StatusOr<std::string> ExtractCheckpointNote(std::string_view line);

// The prune anchor note a `system`/`prune` record carries (detail prune.anchor), from the line a
// receiver stored for the record: FormatJsonLine, the RFC 5424 message of FormatSyslog5424 (the
// `kura` SD element, any enterprise number) or the CEF line of FormatCef. Like
// ExtractCheckpointNote it only undoes the transport encoding; the caller verifies the note.
// InvalidArgument when `line` holds no record with an anchor.
[[nodiscard]] StatusOr<std::string> ExtractPruneAnchorNote(std::string_view line);

}  // namespace kura::audit
