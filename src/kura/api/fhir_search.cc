// FHIR search: parse, compile, run, page, include, and the searchset Bundle; see fhir_search.h.
#include "kura/api/fhir_search.h"

#include <deque>
#include <set>

#include "kura/api/responses.h"
#include "kura/api/search_indexing.h"
#include "kura/audit/record.h"
#include "kura/base/clock.h"
#include "kura/base/random.h"
#include "kura/fhir/r4_tables.h"
#include "kura/fhir/resource.h"
#include "kura/http/blocking.h"
#include "kura/http/router.h"

namespace kura::api {
namespace asio = boost::asio;
using fhir::Json;
using http::HttpStatus;
using http::RequestContext;
using http::Response;

namespace {

constexpr std::string_view kPageTokenContext = "kura-search-page-v1";
constexpr std::string_view kSubsettedSystem =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

Status BadPageToken() {
  return InvalidArgumentError(
             "_page is not a valid paging token for this search (tokens end with a server "
             "restart; start the search again)")
      .WithDetail({"invalid", "invalid paging token", "_page"});
}

// A stored resource reduced to `elements` (plus the mandatory ones), marked SUBSETTED.
std::string Subset(const std::string& payload, const std::vector<std::string>& elements) {
  Json resource = Json::parse(payload, nullptr, false);
  if (!resource.is_object()) return payload;
  Json out = Json::object();
  for (auto it = resource.begin(); it != resource.end(); ++it) {
    const std::string& key = it.key();
    if (key == "resourceType" || key == "id" || key == "meta" ||
        std::find(elements.begin(), elements.end(), key) != elements.end()) {
      out[key] = it.value();
    }
  }
  Json& tags = out["meta"]["tag"];
  if (!tags.is_array()) tags = Json::array();
  tags.push_back({{"system", kSubsettedSystem}, {"code", "SUBSETTED"}});
  return fhir::SerializeJson(out);
}

bool PreferStrict(const RequestContext& ctx) {
  std::string_view prefer = ctx.request["Prefer"];
  return prefer.find("handling=strict") != std::string_view::npos;
}

}  // namespace

std::string SearchsetBundle(const std::vector<SearchsetLink>& links, std::optional<int64_t> total,
                            std::string_view fhir_base, const std::vector<SearchsetEntry>& entries,
                            const std::vector<std::string>& elements) {
  // Written directly: every search answers with one, and its links are long.
  std::string out = "{\"resourceType\":\"Bundle\",\"id\":";
  fhir::AppendJsonString(out, RandomUuid());
  out += ",\"meta\":{\"lastUpdated\":";
  fhir::AppendJsonString(out, FormatInstant(Clock::System().Now()));
  out += "},\"type\":\"searchset\"";
  if (total) {
    out += ",\"total\":";
    out += std::to_string(*total);
  }
  for (size_t i = 0; i < links.size(); ++i) {
    out += i == 0 ? ",\"link\":[{\"relation\":" : ",{\"relation\":";
    fhir::AppendJsonString(out, links[i].relation);
    out += ",\"url\":";
    fhir::AppendJsonString(out, links[i].url);
    out += '}';
  }
  if (!links.empty()) out += ']';
  if (entries.empty()) return out + '}';
  const std::string base = std::string(fhir_base) + "/";
  size_t size = out.size() + 16;
  for (const SearchsetEntry& e : entries) {
    size += e.version->payload.size() + base.size() + e.version->type.size() +
            e.version->id.size() + 64;
  }
  out.reserve(size);  // One allocation for a page of results, not one per doubling.
  out += ",\"entry\":[";
  std::string url;
  for (size_t i = 0; i < entries.size(); ++i) {
    const store::ResourceVersion& v = *entries[i].version;
    if (i > 0) out += ',';
    url.assign(base).append(v.type).append(1, '/').append(v.id);
    out += "{\"fullUrl\":";
    fhir::AppendJsonString(out, url);
    out += ",\"resource\":";
    out +=
        entries[i].mode == "match" && !elements.empty() ? Subset(v.payload, elements) : v.payload;
    out += ",\"search\":{\"mode\":\"";
    out += entries[i].mode;
    out += "\"}}";
  }
  out += "]}";
  return out;
}

struct FhirSearch::Page {
  std::vector<store::ResourceVersion> matches;
  std::vector<store::ResourceVersion> included;
  std::optional<int64_t> total;
  std::optional<store::IndexCursor> next;
  std::optional<store::IndexCursor> previous;

  // Sets next, previous and (when one page holds every match) total from the store's page.
  void SetPosition(const store::IndexPage& hits, bool paged, bool backward);
};

StatusOr<std::unique_ptr<FhirSearch>> FhirSearch::Create(FhirSearchOptions options,
                                                         store::Store& store,
                                                         const fhir::DataRegister& data_register,
                                                         asio::thread_pool& blocking_pool) {
  KURA_ASSIGN_OR_RETURN(SecretBytes key, SecretBytes::Random(crypto::kAesKeyBytes));
  KURA_ASSIGN_OR_RETURN(crypto::AeadKey page_key, crypto::AeadKey::Create(1, std::move(key)));
  return std::unique_ptr<FhirSearch>(
      new FhirSearch(std::move(options), store, data_register, blocking_pool, std::move(page_key)));
}

FhirSearch::FhirSearch(FhirSearchOptions options, store::Store& store,
                       const fhir::DataRegister& data_register, asio::thread_pool& blocking_pool,
                       crypto::AeadKey page_key)
    : options_(std::move(options)),
      fhir_base_(FhirBaseUrl(options_.public_base_url)),
      store_(store),
      register_(data_register),
      pool_(blocking_pool),
      page_key_(std::move(page_key)) {}

namespace {

// Canonical parameters as a query string: percent-encoded, so any bytes survive the trip.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string query;
  for (const auto& [name, value] : params) {
    if (!query.empty()) query += '&';
    query += http::PercentEncode(name);
    query += '=';
    query += http::PercentEncode(value);
  }
  return query;
}

}  // namespace

std::string FhirSearch::PageToken(std::string_view path, std::string_view canonical_query,
                                  const store::IndexCursor& cursor, bool backward) const {
  // Written directly (one per page of results); OpenToken reads it back with a JSON parser.
  std::string token = "{\"t\":";
  fhir::AppendJsonString(token, path);
  token += ",\"q\":";
  fhir::AppendJsonString(token, canonical_query);
  token += backward ? ",\"d\":\"b\",\"k\":[" : ",\"d\":\"f\",\"k\":[";
  for (size_t i = 0; i < cursor.keys.size(); ++i) {
    if (i > 0) token += ',';
    if (cursor.keys[i]) {
      fhir::AppendJsonString(token, *cursor.keys[i]);
    } else {
      token += "null";
    }
  }
  token += "],\"i\":";
  fhir::AppendJsonString(token, cursor.id);
  token += '}';
  StatusOr<std::string> sealed = page_key_.Encrypt(token, kPageTokenContext);
  if (!sealed.ok()) return std::string();
  return Base64UrlEncode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(sealed->data()), sealed->size()));
}

namespace {

// The contents of a paging token: the query it belongs to and the position.
struct OpenedToken {
  std::string type;
  std::vector<std::pair<std::string, std::string>> params;
  bool backward = false;
  store::IndexCursor cursor;
};

std::optional<OpenedToken> OpenToken(const crypto::AeadKey& key, std::string_view text) {
  if (text.empty() || text.size() > 8192) return std::nullopt;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  std::string sealed;
  if (!Base64Decode(standard, sealed)) return std::nullopt;
  StatusOr<std::string> plain = key.Decrypt(sealed, kPageTokenContext);
  if (!plain.ok()) return std::nullopt;
  Json token = Json::parse(*plain, nullptr, false);
  if (!token.is_object()) return std::nullopt;
  OpenedToken out;
  try {
    out.type = token.at("t").get<std::string>();
    out.params = http::ParseQuery(token.at("q").get<std::string>());
    out.backward = token.at("d").get<std::string>() == "b";
    for (const Json& k : token.at("k")) {
      out.cursor.keys.push_back(k.is_null() ? std::nullopt
                                            : std::optional<std::string>(k.get<std::string>()));
    }
    out.cursor.id = token.at("i").get<std::string>();
  } catch (const Json::exception&) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string FhirSearch::Link(std::string_view path, std::string_view query) const {
  std::string url = options_.public_base_url;
  url += "/fhir/R4/";
  url += path;
  if (!query.empty()) {
    url += '?';
    url += query;
  }
  return url;
}

namespace {

bool CountOnly(const fhir::SearchRequest& request) {
  return request.summary_count || request.count == 0;
}

// Adds a match read back for a hit; a match deleted since the index was read has left the result.
Status AddMatch(std::vector<store::ResourceVersion>& matches, StatusOr<store::ResourceVersion> v) {
  if (!v.ok() && v.status().code() == StatusCode::kNotFound) return Status();
  if (!v.ok()) return v.status();
  if (!v->deleted) matches.push_back(std::move(*v));
  return Status();
}

}  // namespace

StatusOr<store::IndexQuery> FhirSearch::PageQuery(const fhir::SearchRequest& request,
                                                  std::optional<store::IndexCursor> from,
                                                  bool backward) const {
  KURA_ASSIGN_OR_RETURN(store::IndexQuery query,
                        CompileSearch(request, register_, fhir_base_, Clock::System().Now()));
  const bool count_only = CountOnly(request);
  query.limit = count_only ? 1 : request.count;
  query.count_total = count_only || request.total != fhir::SearchRequest::Total::kNone;
  if (from) (backward ? query.before : query.after) = std::move(*from);
  return query;
}

// Paging backward, `more` means an earlier page; a later one is where the token came from.
void FhirSearch::Page::SetPosition(const store::IndexPage& hits, bool paged, bool backward) {
  if (!hits.hits.empty()) {
    if (backward || hits.more) next = hits.hits.back().cursor;
    if (backward ? hits.more : paged) previous = hits.hits.front().cursor;
  }
  if (!paged && !hits.more && !total) total = static_cast<int64_t>(matches.size());
}

std::optional<StatusOr<FhirSearch::Page>> FhirSearch::RunSearchInMemory(
    const fhir::SearchRequest& request, const store::IndexQuery& query, bool paged, bool backward) {
  if (!request.includes.empty() || !request.revincludes.empty()) return std::nullopt;
  std::optional<StatusOr<store::IndexPage>> hits = store_.SearchIfInMemory(query);
  if (!hits) return std::nullopt;
  if (!hits->ok()) return StatusOr<Page>(hits->status());
  Page page;
  page.total = (*hits)->total;
  if (CountOnly(request)) return StatusOr<Page>(std::move(page));
  for (const store::IndexHit& hit : (*hits)->hits) {
    std::optional<StatusOr<store::ResourceVersion>> v =
        store_.ReadCurrentIfCached(request.type, hit.id);
    if (!v) return std::nullopt;
    if (Status added = AddMatch(page.matches, std::move(*v)); !added.ok()) {
      return StatusOr<Page>(added);
    }
  }
  page.SetPosition(**hits, paged, backward);
  return StatusOr<Page>(std::move(page));
}

StatusOr<FhirSearch::Page> FhirSearch::RunSearch(const fhir::SearchRequest& request,
                                                 const store::IndexQuery& query, bool paged,
                                                 bool backward) {
  KURA_ASSIGN_OR_RETURN(store::IndexPage hits, store_.Search(query));
  Page page;
  page.total = hits.total;
  if (CountOnly(request)) return page;
  for (const store::IndexHit& hit : hits.hits) {
    KURA_RETURN_IF_ERROR(AddMatch(page.matches, store_.ReadCurrent(request.type, hit.id)));
  }
  page.SetPosition(hits, paged, backward);

  // _include: the resources the matches reference through the named parameters.
  std::set<std::pair<std::string, std::string>> seen;
  for (const store::ResourceVersion& m : page.matches) seen.emplace(m.type, m.id);
  auto add_included = [&](const std::string& type, const std::string& id) -> Status {
    if (page.included.size() >= options_.max_included) return Status();
    if (!seen.emplace(type, id).second) return Status();
    StatusOr<store::ResourceVersion> v = store_.ReadCurrent(type, id);
    if (!v.ok() && v.status().code() == StatusCode::kNotFound) return Status();
    if (!v.ok()) return v.status();
    if (!v->deleted) page.included.push_back(std::move(*v));
    return Status();
  };
  for (const fhir::SearchInclude& include : request.includes) {
    for (size_t i = 0; i < page.matches.size(); ++i) {
      StatusOr<std::vector<fhir::SearchValue>> values =
          fhir::ExtractSearchValues(page.matches[i].payload, fhir_base_);
      if (!values.ok()) continue;
      for (const fhir::SearchValue& v : *values) {
        if (v.param != include.param || v.target_type.empty()) continue;
        if (!include.target_type.empty() && v.target_type != include.target_type) continue;
        auto slash = v.reference.find('/');
        if (slash == std::string::npos || v.reference.find("://") != std::string::npos) continue;
        KURA_RETURN_IF_ERROR(add_included(v.target_type, v.reference.substr(slash + 1)));
      }
    }
  }
  // _revinclude: the resources that reference the matches through the named parameters.
  for (const fhir::SearchInclude& include : request.revincludes) {
    if (page.matches.empty()) break;
    store::IndexQuery rev;
    rev.type = include.source_type;
    rev.limit = static_cast<int64_t>(options_.max_included);
    store::IndexClause clause;
    clause.param = std::string(include.param->code);
    clause.blind =
        register_.Classify(include.source_type, include.param->code) == fhir::IndexClass::kBlind;
    if (register_.Classify(include.source_type, include.param->code) == fhir::IndexClass::kNone) {
      continue;
    }
    for (const store::ResourceVersion& m : page.matches) {
      store::IndexMatch match;
      match.key = m.type + "/" + m.id;
      clause.any_of.push_back(std::move(match));
    }
    rev.all_of.push_back(std::move(clause));
    KURA_ASSIGN_OR_RETURN(store::IndexPage sources, store_.Search(rev));
    for (const store::IndexHit& hit : sources.hits) {
      KURA_RETURN_IF_ERROR(add_included(include.source_type, hit.id));
    }
  }
  return page;
}

asio::awaitable<Response> FhirSearch::Search(
    RequestContext& ctx, AuditNote& note, const std::string& type,
    std::vector<std::pair<std::string, std::string>> params) {
  note.resource_type = type;
  // A paging token stands for the query it was made for, and holds the position.
  std::string page_token;
  for (const auto& [name, value] : params) {
    if (name == "_page") page_token = value;
  }
  std::optional<store::IndexCursor> from;
  bool backward = false;
  if (!page_token.empty()) {
    std::optional<OpenedToken> token = OpenToken(page_key_, page_token);
    if (!token || token->type != type) co_return ErrorResponse(BadPageToken(), ctx);
    params = std::move(token->params);
    params.emplace_back("_page", page_token);
    from = std::move(token->cursor);
    backward = token->backward;
  }
  StatusOr<fhir::SearchRequest> request =
      fhir::ParseSearchRequest(type, params, PreferStrict(ctx), options_.limits);
  if (!request.ok()) co_return ErrorResponse(request.status(), ctx);
  const bool paged = from.has_value();
  StatusOr<store::IndexQuery> query = PageQuery(*request, std::move(from), backward);
  if (!query.ok()) co_return ErrorResponse(query.status(), ctx);
  // In memory on this thread when it can be; otherwise on the blocking pool.
  std::optional<StatusOr<Page>> answered = RunSearchInMemory(*request, *query, paged, backward);
  if (!answered) {
    auto run = [this, &request, &query, paged, backward] {
      return RunSearch(*request, *query, paged, backward);
    };
    StatusOr<Page> blocking = co_await http::RunBlocking(pool_, std::move(run));
    answered = std::move(blocking);
  }
  StatusOr<Page>& page = *answered;
  if (!page.ok()) co_return ErrorResponse(page.status(), ctx);

  for (const auto* list : {&page->matches, &page->included}) {
    for (const store::ResourceVersion& v : *list) {
      if (!v.compartment.empty()) note.compartments.push_back(v.compartment);
    }
  }
  std::sort(note.compartments.begin(), note.compartments.end());
  note.compartments.erase(std::unique(note.compartments.begin(), note.compartments.end()),
                          note.compartments.end());
  note.details.emplace_back("fhir.entries",
                            std::to_string(page->matches.size() + page->included.size()));

  const std::string canonical_query = CanonicalQuery(request->canonical_params);
  std::string self_query = canonical_query;
  if (!request->page.empty()) {
    self_query += canonical_query.empty() ? "_page=" : "&_page=";
    self_query += request->page;
  }
  std::vector<SearchsetLink> links;
  links.push_back({"self", Link(type, self_query)});
  if (page->next) {
    links.push_back(
        {"next", Link(type, "_page=" + PageToken(type, canonical_query, *page->next, false))});
  }
  if (page->previous) {
    links.push_back({"previous", Link(type, "_page=" + PageToken(type, canonical_query,
                                                                 *page->previous, true))});
  }
  std::vector<SearchsetEntry> entries;
  entries.reserve(page->matches.size() + page->included.size());
  for (const store::ResourceVersion& v : page->matches) entries.push_back({&v, "match"});
  for (const store::ResourceVersion& v : page->included) entries.push_back({&v, "include"});
  std::string out = SearchsetBundle(links, page->total, fhir_base_, entries, request->elements);
  co_return JsonResponse(HttpStatus::ok, std::move(out), ctx.request.version(), true);
}

StatusOr<std::vector<std::string>> FhirSearch::MatchingIds(const std::string& type,
                                                           std::string_view query, int64_t limit) {
  KURA_ASSIGN_OR_RETURN(
      fhir::SearchRequest request,
      fhir::ParseSearchRequest(type, http::ParseQuery(query), true, options_.limits));
  if (request.terms.empty() && request.ids.empty()) {
    return InvalidArgumentError("a conditional operation needs search criteria");
  }
  KURA_ASSIGN_OR_RETURN(store::IndexQuery compiled,
                        CompileSearch(request, register_, fhir_base_, Clock::System().Now()));
  compiled.limit = limit;
  KURA_ASSIGN_OR_RETURN(store::IndexPage page, store_.Search(compiled));
  std::vector<std::string> ids;
  for (store::IndexHit& hit : page.hits) ids.push_back(std::move(hit.id));
  return ids;
}

// --- $everything -------------------------------------------------------------------------------

namespace {

constexpr int64_t kEverythingDefaultCount = 100;
constexpr int64_t kMaxEverythingResources = 100000;

// The reference parameters of `type` that follow one of its patient compartment paths.
std::vector<const fhir::SearchParamDef*> CompartmentParams(std::string_view type) {
  std::vector<const fhir::SearchParamDef*> out;
  for (std::string_view path : fhir::PatientCompartmentPaths(type)) {
    for (const fhir::SearchParamDef& def : fhir::SearchParamsFor(type)) {
      if (def.type != fhir::SearchParamType::kReference) continue;
      if (fhir::ExpressionFollowsPath(type, path, def.expression) &&
          std::find(out.begin(), out.end(), &def) == out.end()) {
        out.push_back(&def);
      }
    }
  }
  return out;
}

}  // namespace

struct FhirSearch::EverythingPage {
  std::vector<store::ResourceVersion> resources;
  int64_t total = 0;
  bool more_after = false;   // Members after the page's last.
  bool more_before = false;  // Members before the page's first.
};

StatusOr<FhirSearch::EverythingPage> FhirSearch::RunEverything(
    const std::string& patient_id, const std::vector<std::string>& types,
    std::optional<TimePoint> since,
    const std::optional<std::pair<std::string, std::string>>& position, bool backward,
    int64_t count) {
  KURA_ASSIGN_OR_RETURN(store::ResourceVersion patient, store_.ReadCurrent("Patient", patient_id));
  if (patient.deleted) return GoneError("the patient was deleted");
  auto wanted = [&](std::string_view type) {
    return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
  };
  // With _since, members come from the index already narrowed to what changed since then, where
  // the data register keeps _lastUpdated in clear.
  auto since_indexed = [&](std::string_view type) {
    return register_.Classify(type, "_lastUpdated") == fhir::IndexClass::kClear;
  };
  // Every member, in (type, id) order: the pages are slices of one order.
  std::set<std::pair<std::string, std::string>> members;
  if (wanted("Patient")) members.emplace("Patient", patient_id);
  for (std::string_view type : fhir::SearchableResourceTypes()) {
    if (type == "Patient" || !wanted(type)) continue;
    for (const fhir::SearchParamDef* def : CompartmentParams(type)) {
      const fhir::IndexClass c = register_.Classify(type, def->code);
      if (c == fhir::IndexClass::kNone) continue;
      store::IndexQuery q;
      q.type = std::string(type);
      q.limit = kMaxEverythingResources;
      store::IndexClause clause;
      clause.param = std::string(def->code);
      clause.blind = c == fhir::IndexClass::kBlind;
      store::IndexMatch m;
      m.key = "Patient/" + patient_id;
      clause.any_of.push_back(std::move(m));
      q.all_of.push_back(std::move(clause));
      if (fhir::ExpressionPicksCompartment(type, def->expression)) q.compartment = patient_id;
      if (since && since_indexed(type)) {
        // Only what may have changed since: the index's last-updated range ends at or after it
        // (a millisecond wide, so the exact test below still runs on each candidate read).
        store::IndexClause changed;
        changed.param = "_lastUpdated";
        store::IndexMatch after;
        after.range_any.push_back({store::RangeCondition{
            store::RangeCondition::Column::kHigh, store::RangeCondition::Op::kGreaterOrEqual,
            static_cast<double>(since->time_since_epoch().count())}});
        changed.any_of.push_back(std::move(after));
        q.all_of.push_back(std::move(changed));
      }
      KURA_ASSIGN_OR_RETURN(store::IndexPage hits, store_.Search(q));
      for (store::IndexHit& hit : hits.hits) members.emplace(std::string(type), std::move(hit.id));
      if (members.size() > static_cast<size_t>(kMaxEverythingResources)) {
        return ResourceExhaustedError("this patient's record is too large for $everything");
      }
    }
  }
  // Keyset paging: a page is the `count` members after (or before) a (type, id), so members
  // created or deleted meanwhile shift no other member between pages.
  EverythingPage page;
  if (!since) {
    // Every member counts (the index holds current, live resources only), so the page is a slice
    // of the ordered keys and only its members are read.
    page.total = static_cast<int64_t>(members.size());
    auto begin = members.begin();
    auto end = members.begin();
    if (backward) {
      end = members.lower_bound(*position);
      begin = end;
      for (int64_t n = 0; n < count && begin != members.begin(); ++n) --begin;
    } else {
      begin = position ? members.upper_bound(*position) : members.begin();
      end = begin;
      for (int64_t n = 0; n < count && end != members.end(); ++n) ++end;
    }
    page.more_before = begin != members.begin();
    page.more_after = end != members.end();
    for (auto it = begin; it != end; ++it) {
      const auto& [type, id] = *it;
      StatusOr<store::ResourceVersion> v =
          type == "Patient" && id == patient_id ? patient : store_.ReadCurrent(type, id);
      // Deleted since the index was read: the page is one shorter.
      if (!v.ok() && v.status().code() == StatusCode::kNotFound) continue;
      if (!v.ok()) return v.status();
      if (!v->deleted) page.resources.push_back(std::move(*v));
    }
    return page;
  }
  std::deque<store::ResourceVersion> window;  // Backward: the last `count` before the position.
  for (const auto& key : members) {
    const auto& [type, id] = key;
    StatusOr<store::ResourceVersion> v =
        type == "Patient" && id == patient_id ? patient : store_.ReadCurrent(type, id);
    if (!v.ok() && v.status().code() == StatusCode::kNotFound) continue;
    if (!v.ok()) return v.status();
    if (v->deleted || (since && v->last_updated < *since)) continue;
    ++page.total;
    if (backward) {
      if (key >= *position) {
        page.more_after = true;
        continue;
      }
      window.push_back(std::move(*v));
      if (static_cast<int64_t>(window.size()) > count) {
        window.pop_front();
        page.more_before = true;
      }
    } else {
      if (position && key <= *position) {
        page.more_before = true;
        continue;
      }
      if (static_cast<int64_t>(page.resources.size()) == count) {
        page.more_after = true;
        continue;
      }
      page.resources.push_back(std::move(*v));
    }
  }
  if (backward)
    page.resources.assign(std::make_move_iterator(window.begin()),
                          std::make_move_iterator(window.end()));
  return page;
}

asio::awaitable<Response> FhirSearch::Everything(
    RequestContext& ctx, AuditNote& note, const std::string& patient_id,
    std::vector<std::pair<std::string, std::string>> params) {
  note.resource_type = "Patient";
  note.resource_id = patient_id;
  // A paging token stands for the request it was made for, plus a (type, id) position and a
  // direction.
  std::optional<std::pair<std::string, std::string>> position;
  bool backward = false;
  std::string page_token;
  for (const auto& [name, value] : params) {
    if (name != "_page") continue;
    std::optional<OpenedToken> token = OpenToken(page_key_, value);
    const size_t slash = token ? token->cursor.id.find('/') : std::string::npos;
    if (!token || token->type != "Patient/" + patient_id + "/$everything" ||
        slash == std::string::npos) {
      co_return ErrorResponse(BadPageToken(), ctx);
    }
    page_token = value;
    params = std::move(token->params);
    position.emplace(token->cursor.id.substr(0, slash), token->cursor.id.substr(slash + 1));
    backward = token->backward;
    break;
  }
  std::vector<std::string> types;
  std::optional<TimePoint> since;
  int64_t count = kEverythingDefaultCount;
  std::vector<std::pair<std::string, std::string>> canonical;
  for (const auto& [name, value] : params) {
    if (name == "_type") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string t =
            value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!fhir::IsR4ResourceType(t)) {
          co_return ErrorResponse(InvalidArgumentError("_type must list resource types")
                                      .WithDetail({"invalid", "unknown type in _type", "_type"}),
                                  ctx);
        }
        types.push_back(std::move(t));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name == "_since") {
      since = ParseInstant(value);
      if (!since) {
        co_return ErrorResponse(
            InvalidArgumentError("_since must be a FHIR instant, e.g. 2024-01-01T00:00:00Z")
                .WithDetail({"invalid", "_since is not an instant", "_since"}),
            ctx);
      }
    } else if (name == "_count") {
      std::optional<int64_t> n = http::ParsePositiveInteger(value);
      if (!n) {
        co_return ErrorResponse(InvalidArgumentError("_count must be a positive integer")
                                    .WithDetail({"invalid", "_count", "_count"}),
                                ctx);
      }
      count = std::min(*n, options_.limits.max_count);
    } else {
      continue;  // Other parameters are ignored (and left out of the links).
    }
    canonical.emplace_back(name, value);
  }
  auto run = [&] { return RunEverything(patient_id, types, since, position, backward, count); };
  StatusOr<EverythingPage> page = co_await http::RunBlocking(pool_, std::move(run));
  if (!page.ok()) {
    co_return ErrorResponse(page.status().code() == StatusCode::kNotFound
                                ? NotFoundError("no such patient")
                                : page.status(),
                            ctx);
  }
  note.compartments = {patient_id};
  note.details.emplace_back("fhir.entries", std::to_string(page->resources.size()));

  // The links' path and parameters, and what a token is bound to.
  const std::string path = "Patient/" + patient_id + "/$everything";
  const std::string query = CanonicalQuery(canonical);
  auto link_from = [&](const store::ResourceVersion& v, bool back) {
    return Link(
        path, "_page=" + PageToken(path, query, store::IndexCursor{{}, v.type + "/" + v.id}, back));
  };
  std::vector<SearchsetLink> links;
  links.push_back({"self", Link(path, page_token.empty() ? query : "_page=" + page_token)});
  if (page->more_after && !page->resources.empty()) {
    links.push_back({"next", link_from(page->resources.back(), false)});
  }
  if (page->more_before && !page->resources.empty()) {
    links.push_back({"previous", link_from(page->resources.front(), true)});
  }
  std::vector<SearchsetEntry> entries;
  entries.reserve(page->resources.size());
  for (const store::ResourceVersion& v : page->resources) entries.push_back({&v, "match"});
  std::string out = SearchsetBundle(links, page->total, fhir_base_, entries);
  co_return JsonResponse(HttpStatus::ok, std::move(out), ctx.request.version(), true);
}

}  // namespace kura::api
