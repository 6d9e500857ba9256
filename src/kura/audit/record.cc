// Canonical v1 record encoding, its strict decoder and the JSON rendering.
//
// Layout (all integers big-endian; "str" = u32 length + bytes):
//   u8 0x01 | u64 sequence | i64 time_us | str category | str action | u8 outcome
//   | str outcome_reason | str actor.kind | str actor.id | str actor.role | str actor.tenant
//   | str actor.client_id | str source_address | str request_id | str purpose
//   | u32 n, n x str patient compartment (strictly ascending) | str resource_type
//   | str resource_id | str resource_version | u32 m, m x (str key, str value) (keys strictly
//   ascending) — and nothing after.
#include "kura/audit/record.h"

#include <algorithm>

#include "kura/base/clock.h"
#include "kura/base/utf8.h"

namespace kura::audit {
namespace {

constexpr size_t kSequenceOffset = 1;  // After the format byte.

// ---- Writing ----

// Writes the low `bytes` bytes of `v` to `out`, most significant first.
void StoreBigEndian(uint64_t v, size_t bytes, char* out) {
  for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
}

class Writer {
 public:
  // Room for a typical record up front: every read's record is encoded on the request's thread.
  Writer() { out_.reserve(512); }
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { BigEndian<4>(v); }
  void U64(uint64_t v) { BigEndian<8>(v); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Take() { return std::move(out_); }

 private:
  template <size_t kBytes>
  void BigEndian(uint64_t v) {
    char bytes[kBytes];
    StoreBigEndian(v, kBytes, bytes);
    out_.append(bytes, kBytes);
  }
  std::string out_;
};

Status CheckField(std::string_view name, std::string_view value) {
  if (value.size() > kMaxFieldBytes) {
    return InvalidArgumentError("audit record field " + std::string(name) + " is too long");
  }
  if (!IsValidUtf8(value)) {
    return InvalidArgumentError("audit record field " + std::string(name) + " is not valid UTF-8");
  }
  return Status::Ok();
}

bool KnownOutcome(uint8_t code) { return code == 0 || code == 4 || code == 8 || code == 12; }

// ---- Reading ----

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool U8(uint8_t& v) {
    if (in_.size() - pos_ < 1) return false;
    v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool U32(uint32_t& v) {
    if (in_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool U64(uint64_t& v) {
    if (in_.size() - pos_ < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  // A length-prefixed, length-bounded, valid UTF-8 string.
  bool Str(std::string& v) {
    uint32_t len = 0;
    if (!U32(len) || len > kMaxFieldBytes || len > in_.size() - pos_) return false;
    std::string_view bytes = in_.substr(pos_, len);
    if (!IsValidUtf8(bytes)) return false;
    v.assign(bytes);
    pos_ += len;
    return true;
  }
  bool AtEnd() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

Status Malformed(std::string_view what) {
  return DataLossError("malformed audit record", "audit record: " + std::string(what));
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "success";
    case Outcome::kMinorFailure:
      return "minor-failure";
    case Outcome::kSeriousFailure:
      return "serious-failure";
    case Outcome::kMajorFailure:
      return "major-failure";
  }
  return "unknown";
}

StatusOr<std::string> EncodeAuditRecord(const AuditRecord& record) {
  if (record.category.empty()) return InvalidArgumentError("audit record needs a category");
  if (record.action.empty()) return InvalidArgumentError("audit record needs an action");
  if (!KnownOutcome(static_cast<uint8_t>(record.outcome))) {
    return InvalidArgumentError("audit record has an unknown outcome code");
  }
  const std::pair<std::string_view, const std::string*> fields[] = {
      {"category", &record.category},
      {"action", &record.action},
      {"outcome_reason", &record.outcome_reason},
      {"actor.kind", &record.actor.kind},
      {"actor.id", &record.actor.id},
      {"actor.role", &record.actor.role},
      {"actor.tenant", &record.actor.tenant},
      {"actor.client_id", &record.actor.client_id},
      {"source_address", &record.source_address},
      {"request_id", &record.request_id},
      {"purpose", &record.purpose},
      {"resource_type", &record.resource_type},
      {"resource_id", &record.resource_id},
      {"resource_version", &record.resource_version},
  };
  for (const auto& [name, value] : fields) KURA_RETURN_IF_ERROR(CheckField(name, *value));

  std::vector<std::string_view> compartments(record.patient_compartments.begin(),
                                             record.patient_compartments.end());
  std::sort(compartments.begin(), compartments.end());
  compartments.erase(std::unique(compartments.begin(), compartments.end()), compartments.end());
  for (std::string_view id : compartments) {
    if (id.empty()) return InvalidArgumentError("audit record has an empty compartment id");
    KURA_RETURN_IF_ERROR(CheckField("patient_compartments", id));
  }

  std::vector<std::pair<std::string_view, std::string_view>> details(record.details.begin(),
                                                                     record.details.end());
  std::sort(details.begin(), details.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < details.size(); ++i) {
    if (details[i].first.empty()) return InvalidArgumentError("audit detail key is empty");
    if (i > 0 && details[i - 1].first == details[i].first) {
      // The key stays out of the client-safe message.
      return InvalidArgumentError("audit detail key repeats", std::string(details[i].first));
    }
    KURA_RETURN_IF_ERROR(CheckField("details key", details[i].first));
    KURA_RETURN_IF_ERROR(CheckField("details value", details[i].second));
  }

  Writer w;
  w.U8(kRecordFormatV1);
  w.U64(record.sequence);  // At kSequenceOffset (SetEncodedSequence).
  w.U64(static_cast<uint64_t>(record.time_us));
  w.Str(record.category);
  w.Str(record.action);
  w.U8(static_cast<uint8_t>(record.outcome));
  w.Str(record.outcome_reason);
  w.Str(record.actor.kind);
  w.Str(record.actor.id);
  w.Str(record.actor.role);
  w.Str(record.actor.tenant);
  w.Str(record.actor.client_id);
  w.Str(record.source_address);
  w.Str(record.request_id);
  w.Str(record.purpose);
  w.U32(static_cast<uint32_t>(compartments.size()));
  for (std::string_view id : compartments) w.Str(id);
  w.Str(record.resource_type);
  w.Str(record.resource_id);
  w.Str(record.resource_version);
  w.U32(static_cast<uint32_t>(details.size()));
  for (const auto& [key, value] : details) {
    w.Str(key);
    w.Str(value);
  }
  std::string out = w.Take();
  if (out.size() > kMaxRecordBytes) return InvalidArgumentError("audit record is too large");
  return out;
}

Status SetEncodedSequence(std::string& canonical, uint64_t sequence) {
  if (canonical.size() < kSequenceOffset + 8 ||
      canonical[0] != static_cast<char>(kRecordFormatV1)) {
    return InvalidArgumentError("not a canonical v1 audit record");
  }
  StoreBigEndian(sequence, 8, canonical.data() + kSequenceOffset);
  return Status::Ok();
}

StatusOr<AuditRecord> DecodeAuditRecord(std::string_view canonical) {
  if (canonical.size() > kMaxRecordBytes) return Malformed("larger than the maximum");
  Reader r(canonical);
  uint8_t format = 0;
  if (!r.U8(format)) return Malformed("empty");
  if (format != kRecordFormatV1) return Malformed("unknown format byte");
  AuditRecord rec;
  uint64_t time_bits = 0;
  uint8_t outcome = 0;
  if (!r.U64(rec.sequence) || !r.U64(time_bits) || !r.Str(rec.category) || !r.Str(rec.action) ||
      !r.U8(outcome) || !r.Str(rec.outcome_reason) || !r.Str(rec.actor.kind) ||
      !r.Str(rec.actor.id) || !r.Str(rec.actor.role) || !r.Str(rec.actor.tenant) ||
      !r.Str(rec.actor.client_id) || !r.Str(rec.source_address) || !r.Str(rec.request_id) ||
      !r.Str(rec.purpose)) {
    return Malformed("truncated or invalid header fields");
  }
  rec.time_us = static_cast<int64_t>(time_bits);
  if (rec.category.empty() || rec.action.empty()) return Malformed("empty category or action");
  if (!KnownOutcome(outcome)) return Malformed("unknown outcome code");
  rec.outcome = static_cast<Outcome>(outcome);

  uint32_t count = 0;
  // Each element takes at least 4 bytes, so a count past remaining()/4 is a lie; checking it
  // first keeps a hostile count from reserving memory.
  if (!r.U32(count) || count > r.remaining() / 4) return Malformed("bad compartment count");
  rec.patient_compartments.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string id;
    if (!r.Str(id) || id.empty()) return Malformed("bad compartment id");
    if (i > 0 && !(rec.patient_compartments.back() < id)) {
      return Malformed("compartments not strictly ascending");
    }
    rec.patient_compartments.push_back(std::move(id));
  }
  if (!r.Str(rec.resource_type) || !r.Str(rec.resource_id) || !r.Str(rec.resource_version)) {
    return Malformed("truncated resource fields");
  }
  if (!r.U32(count) || count > r.remaining() / 8) return Malformed("bad detail count");
  rec.details.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string key, value;
    if (!r.Str(key) || !r.Str(value) || key.empty()) return Malformed("bad detail");
    if (i > 0 && !(rec.details.back().first < key)) {
      return Malformed("detail keys not strictly ascending");
    }
    rec.details.emplace_back(std::move(key), std::move(value));
  }
  if (!r.AtEnd()) return Malformed("trailing bytes");
  return rec;
}

std::string FormatMicrosUtc(int64_t time_us) { return FormatInstantMicros(FromMicros(time_us)); }

nlohmann::ordered_json AuditRecordToJson(const AuditRecord& record) {
  using Json = nlohmann::ordered_json;
  Json details = Json::object();
  std::vector<std::pair<std::string, std::string>> sorted = record.details;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [key, value] : sorted) details[key] = value;
  std::vector<std::string> compartments = record.patient_compartments;
  std::sort(compartments.begin(), compartments.end());
  compartments.erase(std::unique(compartments.begin(), compartments.end()), compartments.end());
  Json out = Json::object();
  out["sequence"] = record.sequence;
  out["time"] = FormatMicrosUtc(record.time_us);
  out["time_us"] = record.time_us;
  out["category"] = record.category;
  out["action"] = record.action;
  out["outcome"] = std::string(OutcomeName(record.outcome));
  out["outcome_code"] = static_cast<int>(record.outcome);
  out["outcome_reason"] = record.outcome_reason;
  out["actor"] = Json{{"kind", record.actor.kind},
                      {"id", record.actor.id},
                      {"role", record.actor.role},
                      {"tenant", record.actor.tenant},
                      {"client_id", record.actor.client_id}};
  out["source_address"] = record.source_address;
  out["request_id"] = record.request_id;
  out["purpose"] = record.purpose;
  out["patient_compartments"] = compartments;
  out["resource"] = Json{{"type", record.resource_type},
                         {"id", record.resource_id},
                         {"version", record.resource_version}};
  out["details"] = std::move(details);
  return out;
}

}  // namespace kura::audit
