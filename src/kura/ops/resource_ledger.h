// ResourceWriteLedger: the resource tables checked against the audit log (`kura audit verify`).
//
// Every write Kura makes to a resource is recorded, with the version it wrote, in the commit
// that makes it (create, update, patch, delete; a Bundle's entries one record each). So the
// latest successful write record of each resource says what the `resources` table must hold:
// that version as current, or nothing current after a delete. Comparing the two finds what the
// resource tables' clear metadata allows someone with write access to the database to do
// unnoticed otherwise: delete a current row, point a resource back at an older (validly
// encrypted) version, mark it deleted or undelete it, or add a resource no request wrote.
//
// The same records say what the history must hold: every version a record wrote is stored, as a
// delete marker exactly when a delete wrote it, in one of the patient compartments the record
// names, with the lastUpdated it names (audit::detail::kVersionLastUpdatedUs, on records written
// since that detail exists); and, while the log was never pruned, no version is stored that no
// record wrote. This finds a history row deleted, planted, turned into or out of a delete marker,
// moved to another patient's compartment (which would file later reads of it under that patient),
// or moved in time (which `_lastUpdated` searches and `_since` history follow). Memory: one small
// entry per version written since the prune point.
//
// Records before a prune point are gone, so a resource last written before it cannot be judged;
// it is counted, not reported (likewise a version written before it). A write record names its
// version only when one was written or matched (a conditional create that found its match names the
// existing version, which is current unless a later record says otherwise).
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kura/audit/record.h"
#include "kura/audit/verifier.h"
#include "kura/base/status.h"
#include "kura/store/store.h"

namespace kura::ops {

struct ResourceCheck {
  uint64_t resources_checked = 0;   // Current or deleted resources compared.
  uint64_t resources_unjudged = 0;  // Current resources with no write record after a prune.
  uint64_t versions_checked = 0;    // Stored or recorded versions compared.
  uint64_t versions_unjudged = 0;   // Stored versions with no write record after a prune.
};

class ResourceWriteLedger {
 public:
  // Keeps the record when it is a successful write naming a resource and a version; a later
  // record of the same resource replaces an earlier one (records arrive in sequence order).
  void Add(const audit::AuditRecord& record);

  size_t size() const { return latest_.size(); }

  // Compares the ledger with the store's current resources, adding each disagreement to
  // `report` (kind kResourceMismatch, at most `max_issues` kept). `log_complete`: the log was
  // never pruned, so a current resource without any write record was added behind Kura's back.
  [[nodiscard]] StatusOr<ResourceCheck> Compare(store::Store& store, bool log_complete,
                                                audit::VerificationReport& report,
                                                size_t max_issues) const;

 private:
  using ResourceKey = std::pair<std::string, std::string>;  // (type, id)
  struct LatestWrite {
    int64_t version = 0;
    bool deleted = false;
    uint64_t sequence = 0;  // Of the record.
  };
  // The first record naming a version: the one that wrote it (a conditional create that found
  // its match names a version written before).
  struct VersionWrite {
    bool deleted = false;
    uint64_t sequence = 0;
    std::vector<std::string> compartments;
    std::optional<int64_t> last_updated_us;  // When the record names it (see Add).
  };
  using VersionWrites = std::map<int64_t, VersionWrite>;

  // Adds one resource-mismatch finding (the record's sequence, when one is to blame).
  using Report = std::function<void(std::optional<uint64_t>, std::string)>;

  [[nodiscard]] Status CompareCurrent(store::Store& store, bool log_complete, ResourceCheck& check,
                                      const Report& report) const;
  [[nodiscard]] Status CompareHistory(store::Store& store, bool log_complete, ResourceCheck& check,
                                      const Report& report) const;
  // One resource's stored versions (ascending; none when it has no row) against its writes
  // (null when no record names it).
  static void CompareVersions(const ResourceKey& key, const std::vector<store::VersionMeta>& stored,
                              const VersionWrites* writes, bool log_complete, ResourceCheck& check,
                              const Report& report);

  std::map<ResourceKey, LatestWrite> latest_;
  std::map<ResourceKey, VersionWrites> versions_;
};

}  // namespace kura::ops
