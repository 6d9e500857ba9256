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
// Records before a prune point are gone, so a resource last written before it cannot be judged;
// it is counted, not reported. A write record names its version only when one was written or
// matched (a conditional create that found its match names the existing version, which is
// current unless a later record says otherwise).
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <map>
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
  struct LatestWrite {
    int64_t version = 0;
    bool deleted = false;
    uint64_t sequence = 0;  // Of the record.
  };
  std::map<std::pair<std::string, std::string>, LatestWrite> latest_;  // By (type, id).
};

}  // namespace kura::ops
