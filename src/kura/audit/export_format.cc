// Export formats: RFC 5424, CEF and JSON lines renderings of records and checkpoints.
#include "kura/audit/export_format.h"

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <utility>
#include <vector>

#include "kura/base/random.h"
#include "kura/base/utf8.h"

#ifndef KURA_VERSION
#define KURA_VERSION "unknown"
#endif

namespace kura::audit {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kNil = "-";
constexpr std::string_view kCheckpointMsgId = "audit.checkpoint";
constexpr std::string_view kCheckpointSdName = "kuraCheckpoint";
constexpr std::string_view kCefNoteLabel = "checkpointNote";

// Length of the well-formed UTF-8 sequence at the start of non-empty `s`, 0 if none: the
// length its lead byte announces, when IsValidUtf8 (base/utf8.h) accepts that many bytes.
size_t Utf8SequenceLength(std::string_view s) {
  const auto lead = static_cast<uint8_t>(s[0]);
  if (lead < 0x80) return 1;
  const size_t n = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  return IsValidUtf8(s.substr(0, n)) ? n : 0;
}

// Calls emit(bytes) for each character of `text`; an invalid byte becomes U+FFFD so no format
// ever carries invalid UTF-8 on to a receiver.
template <typename Emit>
void ForEachChar(std::string_view text, Emit&& emit) {
  while (!text.empty()) {
    size_t n = Utf8SequenceLength(text);
    if (n == 0) {
      emit(kReplacement);
      n = 1;
    } else {
      emit(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
}

bool IsControl(std::string_view ch) {
  return ch.size() == 1 && (static_cast<uint8_t>(ch[0]) < 0x20 || ch[0] == 0x7F);
}

bool IsAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<uint8_t>(c) < 0x80; });
}

// A PRINTUSASCII token (RFC 5424 HOSTNAME, APP-NAME, PROCID, MSGID, PARAM-NAME): each other
// character and each of `forbidden` becomes '_'; cut to `max_len`; NILVALUE when empty.
std::string SyslogToken(std::string_view text, size_t max_len, std::string_view forbidden = {}) {
  std::string out;
  ForEachChar(text, [&](std::string_view ch) {
    if (out.size() >= max_len) return;
    char c = ch[0];
    bool printable = ch.size() == 1 && c >= 33 && c <= 126;
    out.push_back(printable && forbidden.find(c) == std::string_view::npos ? c : '_');
  });
  return out.empty() ? std::string(kNil) : out;
}

// RFC 5424 section 6.3.3 PARAM-VALUE: '"', '\' and ']' escaped with a backslash. Control
// characters become a space: the grammar would allow them, but receivers rewrite or split on
// them, and a newline in a SIEM line is an injection vector.
void AppendSdValue(std::string_view value, std::string& out) {
  ForEachChar(value, [&](std::string_view ch) {
    if (IsControl(ch)) {
      out.push_back(' ');
      return;
    }
    if (ch == "\"" || ch == "\\" || ch == "]") out.push_back('\\');
    out.append(ch);
  });
}

// MSG text: control characters become spaces; BOM-prefixed (MSG-UTF8) only when not ASCII, so
// the common ASCII summary stays readable on receivers that do not strip the BOM.
std::string SyslogMsg(std::string_view text) {
  std::string clean;
  ForEachChar(text, [&](std::string_view ch) {
    if (IsControl(ch)) {
      clean.push_back(' ');
    } else {
      clean.append(ch);
    }
  });
  if (IsAscii(clean)) return clean;
  return std::string(kBom) + clean;
}

// CEF header field: '\' and '|' escaped; control characters (newlines are not allowed in the
// header) become spaces.
std::string CefHeader(std::string_view text) {
  std::string out;
  ForEachChar(text, [&](std::string_view ch) {
    if (IsControl(ch)) {
      out.push_back(' ');
      return;
    }
    if (ch == "\\" || ch == "|") out.push_back('\\');
    out.append(ch);
  });
  return out;
}

// CEF extension value: '\' and '=' escaped, CR and LF as the two-character sequences "\r" and
// "\n"; other control characters have no CEF escape and become spaces.
std::string CefValue(std::string_view text) {
  std::string out;
  ForEachChar(text, [&](std::string_view ch) {
    if (ch == "\n") {
      out.append("\\n");
    } else if (ch == "\r") {
      out.append("\\r");
    } else if (IsControl(ch)) {
      out.push_back(' ');
    } else {
      if (ch == "\\" || ch == "=") out.push_back('\\');
      out.append(ch);
    }
  });
  return out;
}

std::vector<std::string> SortedUnique(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

std::string Join(const std::vector<std::string>& values, char separator) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out.push_back(separator);
    out += v;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> SortedDetails(const AuditRecord& record) {
  auto details = record.details;
  std::sort(details.begin(), details.end());
  return details;
}

std::string Base64Of(std::string_view bytes) {
  return Base64Encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

// RFC 5424 HEADER up to and including MSGID, without a trailing space.
std::string SyslogHeader(uint8_t severity, int64_t time_us, std::string_view msgid,
                         const SyslogFormatOptions& options) {
  KURA_CHECK(options.facility <= kSyslogMaxFacility);
  std::string out = "<" + std::to_string(options.facility * 8 + severity) + ">1 ";
  out += FormatMicrosUtc(time_us);
  out += ' ';
  out += SyslogToken(options.hostname, kSyslogMaxHostname);
  out += ' ';
  out += SyslogToken(options.app_name, kSyslogMaxAppName);
  out += ' ';
  out += SyslogToken(options.procid, kSyslogMaxProcId);
  out += ' ';
  out += SyslogToken(msgid, kSyslogMaxMsgId);
  return out;
}

// Builds one SD-ELEMENT; empty values are left out.
class SdElement {
 public:
  SdElement(std::string_view name, uint32_t enterprise_number) {
    text_ = "[" + std::string(name) + "@" + std::to_string(enterprise_number);
  }
  void Add(std::string_view param_name, std::string_view value) {
    if (value.empty()) return;
    text_ += ' ';
    // PARAM-NAME = SD-NAME: PRINTUSASCII except '=', SP, ']' and '"', 1 to 32 characters.
    text_ += SyslogToken(param_name, kSyslogMaxParamName, "= ]\"");
    text_ += "=\"";
    AppendSdValue(value, text_);
    text_ += '"';
  }
  std::string Finish() && { return std::move(text_) + "]"; }

 private:
  std::string text_;
};

std::string Summary(const AuditRecord& record) {
  std::string out = record.category + " " + record.action;
  if (!record.resource_type.empty()) {
    out += " " + record.resource_type;
    if (!record.resource_id.empty()) out += "/" + record.resource_id;
  }
  out += " ";
  out += OutcomeName(record.outcome);
  if (!record.outcome_reason.empty()) out += " " + record.outcome_reason;
  return out;
}

std::string MsgId(const AuditRecord& record) { return record.category + "." + record.action; }

std::string ProductVersion(const CefFormatOptions& options) {
  return options.product_version.empty() ? std::string(KURA_VERSION) : options.product_version;
}

// CEF "rt": milliseconds since the epoch (floor, so a time never moves into the next ms).
int64_t EpochMillis(int64_t time_us) {
  return time_us >= 0 ? time_us / 1000 : -((-time_us + 999) / 1000);
}

class CefExtension {
 public:
  void Add(std::string_view key, std::string_view value) {
    if (value.empty()) return;
    if (!text_.empty()) text_ += ' ';
    text_ += key;
    text_ += '=';
    text_ += CefValue(value);
  }
  // A custom field: the label first, so a reader knows the meaning before the value.
  void AddLabeled(std::string_view key, std::string_view label, std::string_view value) {
    if (value.empty()) return;
    Add(std::string(key) + "Label", label);
    Add(key, value);
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

std::string CefLine(std::string_view signature_id, std::string_view name, int severity,
                    const std::string& extension, const CefFormatOptions& options) {
  std::string out = "CEF:0|Kura|Kura|";
  out += CefHeader(ProductVersion(options));
  out += '|';
  out += CefHeader(signature_id);
  out += '|';
  out += CefHeader(name);
  out += '|';
  out += std::to_string(severity);
  out += '|';
  out += extension;
  return out;
}

std::string DumpJsonLine(const Json& json) {
  // Replace rather than throw on invalid UTF-8: an export must not take the exporter down.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

// --- Reading a checkpoint back (ExtractCheckpointNote). ---

// What a line was expected to hold, for the error when it does not.
constexpr std::string_view kCheckpoint = "exported checkpoint";
constexpr std::string_view kAnchorRecord = "exported prune record with an anchor";

Status NotA(std::string_view what, std::string_view why) {
  return InvalidArgumentError("not an " + std::string(what) + ": " + std::string(why));
}

Status NotACheckpoint(std::string_view why) { return NotA(kCheckpoint, why); }

StatusOr<std::string> DecodeNote(std::string_view base64, std::string_view what = kCheckpoint) {
  std::string note;
  if (base64.empty() || !Base64DecodeCanonical(base64, note)) {
    return NotA(what, "the note is not canonical base64");
  }
  return note;
}

// A stored line without its line ending.
std::string_view WithoutLineEnd(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

// A line of the JSON-lines sink (a JSON object) rather than a syslog or CEF message.
bool IsJsonLine(std::string_view line) {
  const size_t first = line.find_first_not_of(' ');
  return first != std::string_view::npos && line[first] == '{';
}

StatusOr<std::string> NoteFromJsonLine(std::string_view line) {
  Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return NotACheckpoint("not a JSON object");
  auto type = json.find("type");
  auto note = json.find("note");
  if (type == json.end() || *type != "checkpoint") return NotACheckpoint("type is not checkpoint");
  if (note == json.end() || !note->is_string()) return NotACheckpoint("no note string");
  return note->get<std::string>();
}

// Parses the SD-PARAMs of the SD element starting at `pos` (just after the "@" of its SD-ID) per
// RFC 5424 section 6.3.3 and returns the base64 note in parameter `wanted`, decoded.
StatusOr<std::string> NoteFromSyslog(std::string_view line, size_t pos,
                                     std::string_view wanted = "note",
                                     std::string_view what = kCheckpoint) {
  while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') ++pos;
  std::string note;
  bool found = false;
  while (true) {
    if (pos >= line.size()) return NotA(what, "unterminated structured data");
    if (line[pos] == ']') break;
    if (line[pos] != ' ') return NotA(what, "malformed structured data");
    ++pos;
    size_t eq = line.find('=', pos);
    if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
      return NotA(what, "malformed structured data parameter");
    }
    std::string_view name = line.substr(pos, eq - pos);
    std::string value;
    pos = eq + 2;
    while (true) {
      if (pos >= line.size()) return NotA(what, "unterminated parameter value");
      char c = line[pos];
      if (c == '"') break;
      if (c == '\\' && pos + 1 < line.size() &&
          (line[pos + 1] == '"' || line[pos + 1] == '\\' || line[pos + 1] == ']')) {
        c = line[++pos];
      }
      value.push_back(c);
      ++pos;
    }
    ++pos;  // Closing quote.
    if (name == wanted) {
      if (found) return NotA(what, "two notes");
      note = std::move(value);
      found = true;
    }
  }
  if (!found) return NotA(what, "no " + std::string(wanted) + " parameter");
  return DecodeNote(note, what);
}

// Splits a CEF extension into (key, unescaped value) pairs: a key is the word before an
// unescaped '=', its value runs to the space before the next key.
std::vector<std::pair<std::string, std::string>> ParseCefExtension(std::string_view ext) {
  std::vector<size_t> equals;
  for (size_t i = 0; i < ext.size(); ++i) {
    if (ext[i] == '\\') {
      ++i;
    } else if (ext[i] == '=') {
      equals.push_back(i);
    }
  }
  std::vector<size_t> key_starts;
  for (size_t i = 0; i < equals.size(); ++i) {
    size_t lower = i == 0 ? 0 : equals[i - 1] + 1;
    size_t space = ext.rfind(' ', equals[i]);
    key_starts.push_back(space == std::string_view::npos || space < lower ? lower : space + 1);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < equals.size(); ++i) {
    size_t end = i + 1 < equals.size() ? key_starts[i + 1] : ext.size();
    if (i + 1 < equals.size() && end > equals[i] + 1 && ext[end - 1] == ' ') --end;
    std::string_view raw = ext.substr(equals[i] + 1, end - equals[i] - 1);
    std::string value;
    for (size_t j = 0; j < raw.size(); ++j) {
      if (raw[j] == '\\' && j + 1 < raw.size()) {
        char next = raw[++j];
        value.push_back(next == 'n' ? '\n' : next == 'r' ? '\r' : next);
      } else {
        value.push_back(raw[j]);
      }
    }
    out.emplace_back(std::string(ext.substr(key_starts[i], equals[i] - key_starts[i])),
                     std::move(value));
  }
  return out;
}

// The extension of the CEF line starting at `start` ("CEF:0|..."), parsed.
StatusOr<std::vector<std::pair<std::string, std::string>>> CefExtensionOf(std::string_view line,
                                                                          size_t start,
                                                                          std::string_view what) {
  // Skip "CEF:0" and the six further header fields; '\|' does not end a field.
  size_t pos = start;
  for (int pipes = 0; pipes < 7; ++pos) {
    if (pos >= line.size()) return NotA(what, "truncated CEF header");
    if (line[pos] == '\\') {
      ++pos;
    } else if (line[pos] == '|') {
      ++pipes;
    }
  }
  return ParseCefExtension(line.substr(pos));
}

StatusOr<std::string> NoteFromCef(std::string_view line, size_t start) {
  KURA_ASSIGN_OR_RETURN(auto extension, CefExtensionOf(line, start, kCheckpoint));
  std::string label, cs1;
  for (auto& [key, value] : extension) {
    if (key == "cs1Label") label = value;
    if (key == "cs1") cs1 = value;
  }
  if (label != kCefNoteLabel) return NotACheckpoint("no checkpointNote field");
  return DecodeNote(cs1);
}

// The prune anchor in a JSON object of record details ({"prune.anchor": "<base64>", ...}).
StatusOr<std::string> AnchorFromDetails(const Json& details) {
  if (!details.is_object()) return NotA(kAnchorRecord, "no details object");
  auto anchor = details.find(std::string(detail::kPruneAnchor));
  if (anchor == details.end() || !anchor->is_string()) {
    return NotA(kAnchorRecord, "no prune.anchor detail");
  }
  return DecodeNote(anchor->get<std::string>(), kAnchorRecord);
}

StatusOr<std::string> AnchorFromJsonLine(std::string_view line) {
  Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return NotA(kAnchorRecord, "not a JSON object");
  auto type = json.find("type");
  auto details = json.find("details");
  if (type == json.end() || *type != "record") return NotA(kAnchorRecord, "type is not record");
  if (details == json.end()) return NotA(kAnchorRecord, "no details object");
  return AnchorFromDetails(*details);
}

}  // namespace

StatusOr<uint8_t> ParseSyslogFacility(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, uint8_t>, 24> kNames = {{
      {"kern", 0},      {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},
      {"syslog", 5},    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},
      {"authpriv", 10}, {"ftp", 11},    {"ntp", 12},    {"audit", 13},  {"alert", 14},
      {"clock", 15},    {"local0", 16}, {"local1", 17}, {"local2", 18}, {"local3", 19},
      {"local4", 20},   {"local5", 21}, {"local6", 22}, {"local7", 23},
  }};
  for (const auto& [n, code] : kNames) {
    if (n == name) return code;
  }
  if (name == "logaudit") return kSyslogFacilityLogAudit;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), value);
  if (!name.empty() && ec == std::errc() && end == name.data() + name.size() &&
      value <= kSyslogMaxFacility && (name.size() == 1 || name[0] != '0')) {
    return static_cast<uint8_t>(value);
  }
  return InvalidArgumentError("unknown syslog facility \"" + std::string(name) +
                              "\": use a name such as authpriv or local0, or a number 0..23");
}

Status ValidateSyslogFormatOptions(const SyslogFormatOptions& options) {
  if (options.facility > kSyslogMaxFacility) {
    return InvalidArgumentError("syslog facility must be 0..23");
  }
  if (options.app_name.empty()) return InvalidArgumentError("syslog app name must not be empty");
  return Status::Ok();
}

uint8_t SyslogSeverity(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return 6;
    case Outcome::kMinorFailure:
      return 5;
    case Outcome::kSeriousFailure:
      return 4;
    case Outcome::kMajorFailure:
      return 3;
  }
  return 3;  // Not a valid outcome: report loudly rather than hide it.
}

int CefSeverity(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return 3;
    case Outcome::kMinorFailure:
      return 5;
    case Outcome::kSeriousFailure:
      return 7;
    case Outcome::kMajorFailure:
      return 9;
  }
  return 9;
}

std::string FormatSyslog5424(const AuditRecord& record, const SyslogFormatOptions& options) {
  std::string out =
      SyslogHeader(SyslogSeverity(record.outcome), record.time_us, MsgId(record), options);
  if (options.payload == SyslogPayload::kCef) {
    out += " - ";
    out += SyslogMsg(FormatCef(record, options.cef));
    return out;
  }
  SdElement sd("kura", options.enterprise_number);
  sd.Add("seq", std::to_string(record.sequence));
  sd.Add("category", record.category);
  sd.Add("action", record.action);
  sd.Add("outcome", OutcomeName(record.outcome));
  sd.Add("outcome_reason", record.outcome_reason);
  sd.Add("actor_kind", record.actor.kind);
  sd.Add("actor_id", record.actor.id);
  sd.Add("actor_role", record.actor.role);
  sd.Add("tenant", record.actor.tenant);
  sd.Add("client_id", record.actor.client_id);
  sd.Add("src", record.source_address);
  sd.Add("request_id", record.request_id);
  sd.Add("resource_type", record.resource_type);
  sd.Add("resource_id", record.resource_id);
  sd.Add("resource_version", record.resource_version);
  sd.Add("patients", Join(SortedUnique(record.patient_compartments), ','));
  sd.Add("purpose", record.purpose);
  for (const auto& [key, value] : SortedDetails(record)) sd.Add("d." + key, value);
  out += ' ';
  out += std::move(sd).Finish();
  out += ' ';
  out += SyslogMsg(Summary(record));
  return out;
}

std::string FormatCheckpointSyslog5424(std::string_view signed_note, uint64_t tree_size,
                                       int64_t time_us, const SyslogFormatOptions& options) {
  std::string out = SyslogHeader(/*notice*/ 5, time_us, kCheckpointMsgId, options);
  if (options.payload == SyslogPayload::kCef) {
    out += " - ";
    out += SyslogMsg(FormatCheckpointCef(signed_note, tree_size, time_us, options.cef));
    return out;
  }
  SdElement sd(kCheckpointSdName, options.enterprise_number);
  sd.Add("tree_size", std::to_string(tree_size));
  sd.Add("time_us", std::to_string(time_us));
  sd.Add("note", Base64Of(signed_note));
  out += ' ';
  out += std::move(sd).Finish();
  out += " audit checkpoint tree_size=" + std::to_string(tree_size);
  return out;
}

// CEF extension mapping (docs/formats/audit-export.md, "CEF"):
//   rt        record time, ms since the epoch    externalId, cn1 (label "sequence")  sequence
//   cat       category                           act                                 action
//   outcome   outcome name                       reason                              reason code
//   suser     actor id                           spriv                               actor role
//   flexString1 (label "actorKind")              actor kind
//   cs5 (label "tenant")  tenant                 cs6 (label "clientId")              OAuth client
//   src       source address when IPv4           c6a2 (label "Source IPv6 Address")  when IPv6
//   cs1 (label "requestId")  request id          cs2 (label "resource")   Type/id/_history/version
//   cs3 (label "patients")   compartments, comma-joined
//   cs4 (label "purpose")    purpose             msg     details as a compact JSON object
// A source address that is not an IP address is left out: SIEMs type src as an address.
std::string FormatCef(const AuditRecord& record, const CefFormatOptions& options) {
  CefExtension ext;
  ext.Add("rt", std::to_string(EpochMillis(record.time_us)));
  ext.Add("externalId", std::to_string(record.sequence));
  ext.AddLabeled("cn1", "sequence", std::to_string(record.sequence));
  ext.Add("cat", record.category);
  ext.Add("act", record.action);
  ext.Add("outcome", OutcomeName(record.outcome));
  ext.Add("reason", record.outcome_reason);
  ext.Add("suser", record.actor.id);
  ext.Add("spriv", record.actor.role);
  ext.AddLabeled("flexString1", "actorKind", record.actor.kind);
  ext.AddLabeled("cs5", "tenant", record.actor.tenant);
  ext.AddLabeled("cs6", "clientId", record.actor.client_id);
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(record.source_address, ec);
  if (!ec && address.is_v4()) {
    ext.Add("src", address.to_string());
  } else if (!ec && address.is_v6()) {
    ext.AddLabeled("c6a2", "Source IPv6 Address", address.to_string());
  }
  ext.AddLabeled("cs1", "requestId", record.request_id);
  std::string resource = record.resource_type;
  if (!record.resource_id.empty()) resource += "/" + record.resource_id;
  if (!record.resource_version.empty()) resource += "/_history/" + record.resource_version;
  ext.AddLabeled("cs2", "resource", resource);
  ext.AddLabeled("cs3", "patients", Join(SortedUnique(record.patient_compartments), ','));
  ext.AddLabeled("cs4", "purpose", record.purpose);
  if (!record.details.empty()) {
    Json details = Json::object();
    for (const auto& [key, value] : SortedDetails(record)) details[key] = value;
    ext.Add("msg", details.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  return CefLine(MsgId(record), record.category + " " + record.action, CefSeverity(record.outcome),
                 ext.text(), options);
}

std::string FormatCheckpointCef(std::string_view signed_note, uint64_t tree_size, int64_t time_us,
                                const CefFormatOptions& options) {
  CefExtension ext;
  ext.Add("rt", std::to_string(EpochMillis(time_us)));
  ext.AddLabeled("cn1", "treeSize", std::to_string(tree_size));
  ext.AddLabeled("cn2", "timeMicros", std::to_string(time_us));
  ext.AddLabeled("cs1", kCefNoteLabel, Base64Of(signed_note));
  return CefLine(kCheckpointMsgId, "audit checkpoint", 3, ext.text(), options);
}

std::string FormatJsonLine(const AuditRecord& record) {
  Json out = Json::object();
  out["type"] = "record";
  Json body = AuditRecordToJson(record);
  for (auto& [key, value] : body.items()) out[key] = std::move(value);
  return DumpJsonLine(out);
}

std::string FormatCheckpointJsonLine(std::string_view signed_note, uint64_t tree_size,
                                     int64_t time_us) {
  Json out = Json::object();
  out["type"] = "checkpoint";
  out["tree_size"] = tree_size;
  out["time"] = FormatMicrosUtc(time_us);
  out["time_us"] = time_us;
  out["note"] = std::string(signed_note);
  return DumpJsonLine(out);
}

std::string FrameOctetCounting(std::string_view message) {
  std::string out = std::to_string(message.size());
  out.reserve(out.size() + 1 + message.size());
  out += ' ';
  out += message;
  return out;
}

StatusOr<std::string> ExtractCheckpointNote(std::string_view line) {
  line = WithoutLineEnd(line);
  if (IsJsonLine(line)) return NoteFromJsonLine(line);
  std::string sd_start = "[" + std::string(kCheckpointSdName) + "@";
  if (size_t sd = line.find(sd_start); sd != std::string_view::npos) {
    return NoteFromSyslog(line, sd + sd_start.size());
  }
  if (size_t cef = line.find("CEF:0|"); cef != std::string_view::npos) {
    return NoteFromCef(line, cef);
  }
  return NotACheckpoint("no checkpoint found");
}

StatusOr<std::string> ExtractPruneAnchorNote(std::string_view line) {
  line = WithoutLineEnd(line);
  if (IsJsonLine(line)) return AnchorFromJsonLine(line);
  if (size_t sd = line.find("[kura@"); sd != std::string_view::npos) {
    return NoteFromSyslog(line, sd + 6, "d." + std::string(detail::kPruneAnchor), kAnchorRecord);
  }
  if (size_t cef = line.find("CEF:0|"); cef != std::string_view::npos) {
    KURA_ASSIGN_OR_RETURN(auto extension, CefExtensionOf(line, cef, kAnchorRecord));
    for (auto& [key, value] : extension) {
      if (key == "msg") {
        return AnchorFromDetails(Json::parse(value, nullptr, /*allow_exceptions=*/false));
      }
    }
    return NotA(kAnchorRecord, "no msg field");
  }
  return NotA(kAnchorRecord, "no record found");
}

}  // namespace kura::audit
