// FhirSearch: FHIR search (`GET [base]/[type]?...` and `POST [base]/[type]/_search`) over the
// store's search index, answering with a searchset Bundle.
//
// The request is parsed against the type's search parameters (fhir/search_query.h), compiled
// under the data register (search_indexing.h) and run with one store search on the blocking
// pool, which also reads the matches (from the record cache when they are there), their _include
// targets and _revinclude sources. Paging links carry an opaque `_page` token: the position after
// the page's last match (keyset paging, so pages neither repeat nor skip while data changes),
// sealed with a key of this process (AES-256-GCM) together with the canonical query it belongs
// to; a token from another query, a tampered one or one from before a restart gets 400. The
// token holds the query, so `next` and `previous` links carry no search values. Thread-safe.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kura/api/audit_trail.h"
#include "kura/api/fhir_base.h"
#include "kura/crypto/aead.h"
#include "kura/fhir/data_register.h"
#include "kura/fhir/json.h"
#include "kura/fhir/search_query.h"
#include "kura/http/types.h"
#include "kura/store/store.h"

namespace kura::api {

// One entry of a searchset Bundle: a stored version and its search mode ("match", "include").
struct SearchsetEntry {
  const store::ResourceVersion* version = nullptr;
  std::string_view mode = "match";
};

// One of a Bundle's links.
struct SearchsetLink {
  std::string_view relation;  // "self", "next", "previous"
  std::string url;
};

// A searchset Bundle: `links` (may be empty) and `total` (when known) in the head, then the
// entries with their stored payloads spliced in as they are (not re-parsed). `fhir_base` is
// "https://host/fhir/R4". Matches are reduced to `elements` when it is not empty (_elements).
// No `entry` member when there are no entries (FHIR JSON has no empty arrays).
std::string SearchsetBundle(const std::vector<SearchsetLink>& links, std::optional<int64_t> total,
                            std::string_view fhir_base, const std::vector<SearchsetEntry>& entries,
                            const std::vector<std::string>& elements = {});

struct FhirSearchOptions {
  std::string public_base_url;  // e.g. https://localhost:8443
  fhir::SearchLimits limits;
  size_t max_included = 1000;  // Resources added by _include and _revinclude, per page.
};

class FhirSearch {
 public:
  // All references must outlive this object.
  static StatusOr<std::unique_ptr<FhirSearch>> Create(FhirSearchOptions options,
                                                      store::Store& store,
                                                      const fhir::DataRegister& data_register,
                                                      boost::asio::thread_pool& blocking_pool);

  // Answers a search of `type` with `params` (decoded; from the URL query, or the form body of
  // POST _search merged after the URL's). Notes what the audit record needs.
  boost::asio::awaitable<http::Response> Search(
      http::RequestContext& ctx, AuditNote& note, const std::string& type,
      std::vector<std::pair<std::string, std::string>> params);

  // Patient/{id}/$everything: the patient and every resource in its compartment (by any of the
  // type's compartment parameters), in (type, id) order, paged by `_count` (default 100, at most
  // the search maximum) with sealed offset tokens; `_since` keeps what changed since an instant,
  // `_type` limits the types.
  boost::asio::awaitable<http::Response> Everything(
      http::RequestContext& ctx, AuditNote& note, const std::string& patient_id,
      std::vector<std::pair<std::string, std::string>> params);

  // The ids of `type` matching `query` (URL query syntax, e.g. "identifier=x|1"), at most
  // `limit`: conditional create, update and delete. Blocking (call on the blocking pool).
  StatusOr<std::vector<std::string>> MatchingIds(const std::string& type, std::string_view query,
                                                 int64_t limit);

 private:
  FhirSearch(FhirSearchOptions options, store::Store& store,
             const fhir::DataRegister& data_register, boost::asio::thread_pool& blocking_pool,
             crypto::AeadKey page_key);

  struct Page;
  // The store query of one page of `request`. `from`: the position a paging token held (results
  // after it, or before it when `backward`).
  StatusOr<store::IndexQuery> PageQuery(const fhir::SearchRequest& request,
                                        std::optional<store::IndexCursor> from,
                                        bool backward) const;
  // The page `query` (PageQuery's) finds. `paged`: it came from a paging token.
  StatusOr<Page> RunSearch(const fhir::SearchRequest& request, const store::IndexQuery& query,
                           bool paged, bool backward);
  // RunSearch without blocking: the answer when the index and every match are in memory (and no
  // _include or _revinclude is asked), or nullopt when RunSearch must run on the blocking pool.
  std::optional<StatusOr<Page>> RunSearchInMemory(const fhir::SearchRequest& request,
                                                  const store::IndexQuery& query, bool paged,
                                                  bool backward);
  struct EverythingPage;
  // A page of the patient's record in (type, id) order: the `count` members after `position`
  // (before it when `backward`), the whole record's size, and whether members lie beyond the page
  // on either side.
  StatusOr<EverythingPage> RunEverything(
      const std::string& patient_id, const std::vector<std::string>& types,
      std::optional<TimePoint> since,
      const std::optional<std::pair<std::string, std::string>>& position, bool backward,
      int64_t count);
  // A sealed token for the position `cursor` of the search `path` (a type, or
  // "Patient/x/$everything") with its canonical query.
  std::string PageToken(std::string_view path, std::string_view canonical_query,
                        const store::IndexCursor& cursor, bool backward) const;
  // The URL of `path` with `query` (none when empty).
  std::string Link(std::string_view path, std::string_view query) const;

  FhirSearchOptions options_;
  const std::string fhir_base_;  // FhirBaseUrl(options_.public_base_url), built once.
  store::Store& store_;
  const fhir::DataRegister& register_;
  boost::asio::thread_pool& pool_;
  crypto::AeadKey page_key_;
};

}  // namespace kura::api
