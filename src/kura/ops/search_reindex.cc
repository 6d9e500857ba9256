// Search-index fingerprints and `kura fhir reindex`.
#include "kura/ops/search_reindex.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "kura/api/fhir_base.h"
#include "kura/api/search_indexing.h"
#include "kura/base/log.h"
#include "kura/base/random.h"
#include "kura/crypto/hash.h"
#include "kura/ops/data_dir.h"
#include "kura/store/encrypting_store.h"

namespace kura::ops {
namespace {

// Resources per durable commit: large enough that the fsync is not the cost, small enough that a
// commit's rows stay a few megabytes.
constexpr int64_t kReindexBatch = 256;

Status ReindexFailed(const Status& s, std::string_view what) {
  return Status(s.code(), "reindex stopped: " + std::string(what) + ": " + s.message(),
                s.internal_detail());
}

}  // namespace

StatusOr<fhir::DataRegister> LoadDataRegister(const Config& config) {
  if (config.fhir.data_register_file.empty()) return fhir::DataRegister::Default();
  const std::filesystem::path path = ResolvePath(config, config.fhir.data_register_file);
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return FailedPreconditionError("cannot read fhir.data_register_file " + path.string());
  }
  return fhir::DataRegister::Parse(text.str());
}

std::string SearchIndexFingerprint(const fhir::DataRegister& data_register) {
  const std::string canonical = "kura-search-index-v" + std::to_string(api::kSearchIndexFormat) +
                                "\n" + data_register.CanonicalForm();
  return HexEncode(crypto::Sha256(canonical));
}

Status CheckSearchIndexFingerprint(store::Store& store, const fhir::DataRegister& data_register) {
  const std::string wanted = SearchIndexFingerprint(data_register);
  KURA_ASSIGN_OR_RETURN(std::optional<std::string> stored, store.ReadIndexFingerprint());
  if (!stored) return store.WriteIndexFingerprint(wanted);
  if (*stored == wanted) return Status::Ok();
  return FailedPreconditionError(
      "the data register (or the search index format) changed since the search indexes were "
      "built; run `kura fhir reindex --data-dir DIR` with the server stopped, then start it again",
      "stored " + stored->substr(0, 16) + ", configured " + wanted.substr(0, 16));
}

StatusOr<ReindexResult> ReindexDataDirectory(const std::filesystem::path& data_dir,
                                             const Environment& env) {
  KURA_ASSIGN_OR_RETURN(OpenedDataDirectory dir,
                        OpenDataDirectory(data_dir, env, DataDirectoryUse::kExclusive));
  KURA_ASSIGN_OR_RETURN(fhir::DataRegister data_register, LoadDataRegister(dir.config));
  ReindexResult result;
  result.fingerprint = SearchIndexFingerprint(data_register);
  KURA_ASSIGN_OR_RETURN(std::optional<std::string> previous, dir.db->ReadIndexFingerprint());
  result.previous_fingerprint = previous.value_or("");

  audit::AuditRecord record = CliAuditRecord(audit::category::kAdmin, "reindex");
  record.resource_type = "kura:SearchIndex";
  record.details.emplace_back("register.fingerprint", result.fingerprint);
  if (!result.previous_fingerprint.empty()) {
    record.details.emplace_back("register.previous_fingerprint", result.previous_fingerprint);
  }
  // Every current resource is read (decrypted) below: the record comes first, fail closed.
  KURA_RETURN_IF_ERROR(AppendCliAuditRecord(dir, record));
  auto record_failure = [&](const Status& cause) {
    audit::AuditRecord failed = record;
    failed.outcome = audit::Outcome::kMajorFailure;
    failed.outcome_reason = "reindex-failed";
    failed.details.emplace_back("reindex.resources", std::to_string(result.resources));
    (void)AppendCliAuditRecord(dir, std::move(failed));
    return cause;
  };

  const std::string local_base = api::FhirBaseUrl(dir.config.server.public_base_url);
  store::EncryptingStore store(*dir.db, *dir.keys, dir.config.tenant,
                               static_cast<size_t>(dir.config.keys.data_key_cache_size));
  store::CurrentListQuery query;
  query.limit = kReindexBatch;
  while (true) {
    StatusOr<std::vector<store::CurrentResource>> page = store.ListCurrent(query);
    if (!page.ok()) return record_failure(ReindexFailed(page.status(), "listing resources"));
    if (page->empty()) break;
    store::WriteBatch batch;
    batch.index_rewrites.reserve(page->size());
    for (const store::CurrentResource& current : *page) {
      StatusOr<store::ResourceVersion> v = store.ReadCurrent(current.type, current.id);
      if (!v.ok()) return record_failure(ReindexFailed(v.status(), "reading a resource"));
      StatusOr<std::vector<store::IndexEntry>> rows =
          api::IndexRowsFor(v->payload, data_register, local_base);
      if (!rows.ok()) return record_failure(ReindexFailed(rows.status(), "indexing a resource"));
      batch.index_rewrites.push_back(store::IndexRewrite{.type = v->type,
                                                         .id = v->id,
                                                         .version = v->version,
                                                         .compartment = v->compartment,
                                                         .index = std::move(*rows)});
    }
    if (Status s = store.Commit(std::move(batch)).status(); !s.ok()) {
      return record_failure(ReindexFailed(s, "writing index rows"));
    }
    result.resources += static_cast<int64_t>(page->size());
    query.after_type = page->back().type;
    query.after_id = page->back().id;
  }
  if (Status s = dir.db->WriteIndexFingerprint(result.fingerprint); !s.ok()) {
    return record_failure(ReindexFailed(s, "recording the register"));
  }
  audit::AuditRecord done = record;
  done.details.emplace_back("reindex.resources", std::to_string(result.resources));
  if (Status s = AppendCliAuditRecord(dir, std::move(done)); !s.ok()) return s;
  dir.db->Close();
  log::Info("search_reindexed", {{"resources", result.resources}});
  return result;
}

}  // namespace kura::ops
