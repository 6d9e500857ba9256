// Batch and transaction Bundles (FHIR R4 http.html#transaction): reading the Bundle a client POSTs
// to the base, the order its entries are processed in, and rewriting references to entries'
// fullUrls.
//
// ParseBundle reads the body in one pass with RapidJSON's SAX reader (the rules of
// ParseResourceDocument: UTF-8, well-formed, no duplicate keys outside entry resources, bounded
// depth). For each entry it keeps the request, the fullUrl and the resource's JSON text exactly
// as it appears in the body, and notes where that text holds strings that may name another
// entry: every `reference` element, and every string that starts with "urn:" or "http". In the
// same pass it reads each resource as ParseResourceDocument would (its top-level members, meta
// and patient references, with duplicate keys refused), so an entry whose text needs no
// rewriting is not parsed again.
// Rewriting references is then one pass over each resource with a hash lookup per noted string,
// never a re-parse. Problems of one entry are recorded on that entry (a batch answers them one by
// one); problems of the Bundle as a whole fail the parse.
//
// Thread-safe free functions; FullUrlIndex is thread-compatible.
#pragma once

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/base/string_hash.h"
#include "kura/fhir/json.h"

namespace kura::fhir {

enum class BundleType : uint8_t { kBatch, kTransaction };

// Bundle.entry.request.method. The enumerator order is the transaction processing order
// (http.html#trules): deletes, then creates, then updates and patches, then reads.
enum class EntryMethod : uint8_t { kDelete, kPost, kPut, kPatch, kGet, kHead };
std::string_view EntryMethodName(EntryMethod method);  // "DELETE", "POST", ...

// What an entry's request.url names, split without judging the type name or id syntax.
struct EntryTarget {
  enum class Kind : uint8_t {
    kType,      // "Patient", "Patient?identifier=x" (search, conditional operations)
    kInstance,  // "Patient/123"
    kVersion,   // "Patient/123/_history/2"
    kOther,     // anything else ("metadata", "Patient/123/_history", "$everything", ...)
  };
  Kind kind = Kind::kOther;
  std::string type;
  std::string id;
  int64_t version = 0;
  std::optional<std::string> query;  // The raw text after '?', when there is one.
};

// Splits a request.url relative to the FHIR base ("Patient/1", "/Patient?x=y"). A url that starts
// with `base` (the server's own FHIR base, e.g. "https://host/fhir/R4") is taken relative to it.
// InvalidArgument when it is empty or absolute elsewhere.
StatusOr<EntryTarget> ParseEntryUrl(std::string_view url, std::string_view base);

// A JSON string token inside an entry's resource text: offset of its opening quote and its length,
// quotes included, as written in the body; `reference` when it is the value of a `reference`
// member; `escaped` when the token holds escape sequences (its value is not its text).
struct LinkString {
  uint32_t offset = 0;
  uint32_t size = 0;
  bool reference = false;
  bool escaped = false;
};

struct BundleEntry {
  size_t index = 0;  // Position in Bundle.entry.
  std::optional<std::string> full_url;
  std::optional<EntryMethod> method;  // Set when request.method is valid.
  std::string url;                    // request.url as sent.
  EntryTarget target;                 // request.url split (when it parsed).
  std::optional<std::string> if_match;
  std::optional<std::string> if_none_exist;
  // Conditional read (GET and HEAD of an instance; ignored elsewhere, as HTTP does): 304 when
  // ifNoneMatch names the current version, or else when it was not modified after
  // ifModifiedSince (a FHIR instant).
  std::optional<std::string> if_none_match;
  std::optional<TimePoint> if_modified_since;
  // The resource's JSON text as it appears in the body (a view into it); empty when none.
  std::string_view resource;
  // The resource as ParseResourceDocument reads its text, read in the same pass as the Bundle;
  // nullopt when there is no object resource or intake refused it (a duplicate key, say:
  // ParseResourceDocument on `resource` then says why).
  std::optional<ResourceDocument> document;
  std::string resource_type;      // Its resourceType when that is a string; else "".
  std::vector<LinkString> links;  // In text order.
  // What is wrong with this entry's structure (missing request, bad method or url, POST without
  // a resource...), with an expression such as "Bundle.entry[3].request.method"; OK when nothing.
  Status problem;
};

struct Bundle {
  BundleType type = BundleType::kBatch;
  std::vector<BundleEntry> entries;
};

struct BundleLimits {
  size_t max_depth = 64;      // Nesting of an entry's resource (the Bundle adds three levels).
  size_t max_entries = 1000;  // Entries per Bundle.
  std::string base;           // The server's FHIR base, for absolute request urls.
};

// Parses a batch or transaction Bundle. The entries' resources are views into `body`, which must
// outlive the Bundle. InvalidArgument when the body is not JSON, not a Bundle, not of type batch
// or transaction, or `entry` is not an array; ResourceExhausted when it holds more than
// `limits.max_entries` entries (parsing stops there). Each failure carries an issue code and,
// where it applies, an expression.
StatusOr<Bundle> ParseBundle(std::string_view body, const BundleLimits& limits);
// Not from a temporary string: the entries would point into a body about to be destroyed.
template <typename T>
requires std::is_same_v<T, std::string> StatusOr<Bundle> ParseBundle(T&& body,
                                                                     const BundleLimits& limits)
= delete;

// The string value of a noted link (its token unescaped).
std::string LinkValue(const BundleEntry& entry, const LinkString& link);

// Entry indices in processing order: DELETE, POST, PUT and PATCH, GET and HEAD; request order
// within each group. Entries without a valid method come last.
std::vector<size_t> ProcessingOrder(const Bundle& bundle);

// `status` as the outcome of entry `index`: each detail's expression is made relative to the
// Bundle ("Observation.subject" -> "Bundle.entry[3].resource.subject"; an expression that already
// starts with "Bundle.entry[" is kept), and a status without details gets one, so the
// OperationOutcome says which entry failed. A detail without an expression points at
// `default_element` of the entry ("request.url" -> "Bundle.entry[3].request.url"; "" -> the entry).
Status EntryStatus(const Status& status, size_t index, std::string_view default_element = "");

// fullUrl -> "Type/id" for a transaction: where each entry's resource ends up.
class FullUrlIndex {
 public:
  // Records that `full_url` names `type`/`id`. False when the fullUrl was already recorded.
  bool Add(std::string_view full_url, std::string_view type, std::string_view id);
  bool empty() const { return tokens_.empty(); }

  // `entry.resource` with every noted string equal to a recorded fullUrl replaced by the
  // "Type/id" it names; nullopt when no noted string names an entry (the text stands as sent).
  // InvalidArgument (expression "Bundle.entry[i].resource") when a `reference` holds a
  // "urn:uuid:" or "urn:oid:" that no entry has as its fullUrl: it would dangle.
  StatusOr<std::optional<std::string>> Rewrite(const BundleEntry& entry) const;

 private:
  // fullUrl -> the JSON string token that replaces it ("\"Patient/1\"").
  boost::unordered_flat_map<std::string, std::string, TransparentStringHash, std::equal_to<>>
      tokens_;
};

// Two entries of a transaction must not write the same resource (http.html#trules) or share a
// fullUrl. `targets[i]` is "Type/id" of the resource entry i writes, "" for entries that write
// nothing. InvalidArgument naming the second entry when they do.
Status CheckDistinctTargets(const Bundle& bundle, std::span<const std::string> targets);

// The JSON Patch document a PATCH entry carries (http.html#patch: a Binary whose contentType is
// application/json-patch+json and whose data is the base64 of the document). Unimplemented for a
// Parameters resource (FHIRPath Patch); InvalidArgument for anything else, or bad base64.
StatusOr<std::string> JsonPatchOfEntry(const BundleEntry& entry);

}  // namespace kura::fhir
