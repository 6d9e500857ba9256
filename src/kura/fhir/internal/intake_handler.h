// IntakeHandler: the SAX handler of resource intake (ParseResourceDocument), shared with the
// Bundle reader, which drives one over each entry's resource in the same pass as the Bundle.
// Internal to kura_fhir.
#pragma once

#include <rapidjson/reader.h>
#include <rapidjson/stream.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/utf8.h"
#include "kura/fhir/internal/decoded_utf8.h"
#include "kura/fhir/internal/key_set.h"
#include "kura/fhir/json.h"

namespace kura::fhir::internal {

// RapidJSON output stream appending to a std::string.
struct StringSink {
  using Ch = char;
  std::string* out;
  void Put(char c) { out->push_back(c); }
  void Flush() {}
};

using CompactWriter = rapidjson::Writer<StringSink>;

// True when `body` has no whitespace outside strings and no backslash at all: then every value in
// it is already the compact, minimally escaped text the writer would produce, and member values
// can be cut out of it instead of written again (a quarter of intake's time). Strings cannot hold
// raw control characters (the reader refuses them), and the writer passes other bytes through.
// Without backslashes every quote opens or closes a string, so the text outside strings is what
// lies between a closing quote and the next opening one: the quotes are found with memchr and only
// those short stretches are looked at byte by byte.
inline bool IsCompactWithoutEscapes(std::string_view body) {
  if (body.find('\\') != std::string_view::npos) return false;
  size_t outside = 0;  // Where the current stretch outside strings begins.
  while (outside < body.size()) {
    const size_t open = std::min(body.find('"', outside), body.size());
    for (char c : body.substr(outside, open - outside)) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') return false;
    }
    // Past the closing quote; an unterminated string ends the text (the reader refuses it).
    outside = std::min(body.find('"', open + 1), body.size()) + 1;
  }
  return true;
}

// The reader runs in situ over a writable, NUL-terminated copy of the text: then it scans strings
// and whitespace 16 bytes at a time (RAPIDJSON_SSE2) and hands strings over without copying them.
// Positions in the copy are positions in the text. The stream knows them only at brackets and
// after null, true and false: it reads a string or a number through a copy of itself and catches
// up after the handler returns. A string or number's position comes from its pointer into the
// copy instead.
class InsituText {
 public:
  explicit InsituText(std::string_view text) : copy_(text), stream_(copy_.data()) {}
  InsituText(const InsituText&) = delete;
  InsituText& operator=(const InsituText&) = delete;

  rapidjson::InsituStringStream& stream() { return stream_; }
  // Where the reader is: valid at brackets (it reports a bracket before taking it) and right
  // after null, true and false.
  size_t Tell() const { return static_cast<size_t>(stream_.src_ - stream_.head_); }
  // Where `text` (a string or number the reader handed over) begins in the text.
  size_t OffsetOf(const char* text) const { return static_cast<size_t>(text - copy_.data()); }

 private:
  std::string copy_;
  rapidjson::InsituStringStream stream_;
};

// The reader's flags for intake: in situ, iterative (no recursion on deep input), numbers as
// their text.
inline constexpr unsigned kIntakeParseFlags = rapidjson::kParseInsituFlag |
                                              rapidjson::kParseIterativeFlag |
                                              rapidjson::kParseNumbersAsStringsFlag;

// The SAX handler. Depth 1 is the top-level object, whose braces are not written: each member
// value is written on its own, and so is each member of a top-level `meta` object. With `source`
// (a body IsCompactWithoutEscapes accepted, read through `text`) member values are cut out of it
// instead.
class IntakeHandler {
 public:
  IntakeHandler(ResourceDocument& doc, size_t max_depth, const InsituText& text,
                std::optional<std::string_view> source)
      : doc_(doc), max_depth_(max_depth), text_(text), source_(source) {}

  bool Null() {
    return Scalar([](CompactWriter& w) { return w.Null(); }, text_.Tell());
  }
  bool Bool(bool b) {
    return Scalar([b](CompactWriter& w) { return w.Bool(b); }, text_.Tell());
  }
  // With kParseNumbersAsStringsFlag every number arrives as RawNumber, text unchanged.
  bool Int(int) { return Unexpected(); }
  bool Uint(unsigned) { return Unexpected(); }
  bool Int64(int64_t) { return Unexpected(); }
  bool Uint64(uint64_t) { return Unexpected(); }
  bool Double(double) { return Unexpected(); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    return Scalar(
        [&](CompactWriter& w) { return w.RawValue(text, length, rapidjson::kNumberType); },
        text_.OffsetOf(text) + length);
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    if (!DecodedIsUtf8(text, length)) return Fail(kLoneSurrogate);
    std::string_view value(text, length);
    if (AtMemberLevel()) current_->string_value = std::string(value);
    if (depth_ >= 2 && path_[depth_ - 1] == "reference" && value.find("Patient/") != value.npos) {
      doc_.patient_references.emplace_back(PathToHere(), std::string(value));
    }
    // Past the closing quote, where a source (which holds no escapes) has the string as is.
    return Scalar([&](CompactWriter& w) { return w.String(text, length); },
                  text_.OffsetOf(text) + length + 1);
  }

  bool StartObject() {
    if (!Enter()) return false;
    if (depth_ == 1) return true;  // The resource itself.
    if (depth_ == 2 && current_ != nullptr && current_->key == "meta") {
      in_meta_ = true;  // Its members are collected one by one.
      doc_.meta.emplace();
      members_.pop_back();  // `meta` leaves the member list.
      current_ = nullptr;
      return true;
    }
    return source_ || writer_.StartObject();
  }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (!DecodedIsUtf8(text, length)) return Fail(kLoneSurrogate);
    std::string_view key(text, length);
    if (!keys_[depth_ - 1].Insert(key)) {
      return Fail("duplicate JSON key \"" + Printable(key) + "\"");
    }
    path_[depth_ - 1] = key;
    // In a source (no escapes, no whitespace) the value follows the key's closing quote and ':'.
    const size_t value_start = text_.OffsetOf(text) + length + 2;
    if (depth_ == 1) return BeginMember(members_, key, value_start);
    if (depth_ == 2 && in_meta_) return BeginMember(*doc_.meta, key, value_start);
    return source_ || writer_.Key(text, length);
  }
  // The reader reports a container's end before it takes the closing bracket.
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 0) return true;
    if (depth_ == 1 && in_meta_) {
      in_meta_ = false;
      return true;
    }
    return (source_ || writer_.EndObject()) && ValueDone(text_.Tell() + 1);
  }
  bool StartArray() {
    if (!Enter()) return false;
    if (depth_ == 1) return Fail("a FHIR resource must be a JSON object");
    return source_ || writer_.StartArray();
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    return (source_ || writer_.EndArray()) && ValueDone(text_.Tell() + 1);
  }

  const std::string& failure() const { return failure_; }
  void Finish() { doc_.members = std::move(members_); }

 private:
  static std::string Printable(std::string_view key) {
    return key.size() > 64 ? std::string(key.substr(0, 64)) + "..." : std::string(key);
  }
  bool Fail(std::string why) {
    if (failure_.empty()) failure_ = std::move(why);
    return false;
  }
  bool Unexpected() { return Fail("internal: number outside raw mode"); }

  bool Enter() {
    if (depth_ >= max_depth_) return Fail("JSON nesting is deeper than the limit");
    ++depth_;
    if (keys_.size() < depth_) {
      keys_.resize(depth_);
      path_.resize(depth_);
    }
    keys_[depth_ - 1].Clear();
    path_[depth_ - 1] = {};  // Stays empty for arrays.
    return true;
  }

  bool BeginMember(std::vector<JsonMember>& list, std::string_view key, size_t value_start) {
    list.push_back(JsonMember{std::string(key), {}, std::nullopt});
    current_ = &list.back();
    value_start_ = value_start;
    sink_.out = &current_->json;
    writer_.Reset(sink_);
    return true;
  }

  // A scalar value ending at byte `end`: the whole member value at depths 1 (and 2 in meta), part
  // of one deeper.
  template <typename WriteFn>
  bool Scalar(WriteFn write, size_t end) {
    if (depth_ == 0) return Fail("a FHIR resource must be a JSON object");
    return (source_ || write(writer_)) && ValueDone(end);
  }
  // True where a value is a whole member: of the resource, or of its meta.
  bool AtMemberLevel() const { return depth_ == 1 || (depth_ == 2 && in_meta_); }
  // Called after any value (scalar or closed container) at the current depth, which ends at
  // byte `end` of the body.
  bool ValueDone(size_t end) {
    if (!AtMemberLevel()) return true;
    if (source_ && current_ != nullptr) {
      if (end < value_start_ || end > source_->size()) return Fail("internal: value out of range");
      current_->json.assign(source_->substr(value_start_, end - value_start_));
    }
    current_ = nullptr;
    return true;
  }

  std::string PathToHere() const {
    // path_[0..depth_-2] lead to the object holding "reference" (path_[depth_-1]).
    std::string path;
    for (size_t i = 0; i + 1 < depth_; ++i) {
      if (path_[i].empty()) continue;  // An array level.
      if (!path.empty()) path += '.';
      path += path_[i];
    }
    return path;
  }

  ResourceDocument& doc_;
  const size_t max_depth_;
  size_t depth_ = 0;
  // Keys point into the in-situ copy (InsituText), which outlives the walk.
  std::vector<KeyViewSet> keys_;        // Per open container (unused for arrays).
  std::vector<std::string_view> path_;  // Current key per open object; "" for arrays.
  std::vector<JsonMember> members_;
  JsonMember* current_ = nullptr;  // The member whose value is being written.
  bool in_meta_ = false;
  const InsituText& text_;
  const std::optional<std::string_view> source_;
  size_t value_start_ = 0;  // Where the current member's value begins in source_.
  StringSink sink_{nullptr};
  CompactWriter writer_;
  std::string failure_;
};

}  // namespace kura::fhir::internal
