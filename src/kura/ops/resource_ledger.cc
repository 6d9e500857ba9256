// The resource tables against the write records of the audit log.
#include "kura/ops/resource_ledger.h"

#include <charconv>
#include <optional>

namespace kura::ops {
namespace {

constexpr int64_t kPageSize = 1000;

std::string Name(const std::pair<std::string, std::string>& key) {
  return key.first + "/" + key.second;
}

}  // namespace

void ResourceWriteLedger::Add(const audit::AuditRecord& record) {
  if (record.outcome != audit::Outcome::kSuccess) return;
  const bool deletes = record.action == audit::action::kDelete;
  if (!deletes && record.action != audit::action::kCreate &&
      record.action != audit::action::kUpdate && record.action != audit::action::kPatch) {
    return;
  }
  const std::string& text = record.resource_version;
  if (record.resource_type.empty() || record.resource_id.empty() || text.empty()) return;
  int64_t version = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (error != std::errc() || end != text.data() + text.size() || version < 1) return;
  latest_[{record.resource_type, record.resource_id}] =
      LatestWrite{.version = version, .deleted = deletes, .sequence = record.sequence};
}

StatusOr<ResourceCheck> ResourceWriteLedger::Compare(store::Store& store, bool log_complete,
                                                     audit::VerificationReport& into,
                                                     size_t max_issues) const {
  ResourceCheck check;
  auto report = [&into, max_issues](std::optional<uint64_t> sequence, std::string reason) {
    into.AddIssue({audit::IssueKind::kResourceMismatch, sequence, std::move(reason)}, max_issues);
  };
  // Both sides in (type, id) order: the ledger's map and the store's listing.
  auto next = latest_.begin();
  // Ledger entries ordered before `key` (all that are left, without one) are not current.
  auto not_current_before = [&](const std::pair<std::string, std::string>* key) {
    for (; next != latest_.end() && (key == nullptr || next->first < *key); ++next) {
      ++check.resources_checked;
      const LatestWrite& write = next->second;
      if (write.deleted) continue;
      report(write.sequence, Name(next->first) + " has no current version, but record " +
                                 std::to_string(write.sequence) + " wrote version " +
                                 std::to_string(write.version) +
                                 " and no later record deleted it (a row deleted or marked "
                                 "deleted behind Kura's back)");
    }
  };
  store::CurrentListQuery query;
  query.limit = kPageSize;
  while (true) {
    KURA_ASSIGN_OR_RETURN(std::vector<store::CurrentResource> page, store.ListCurrent(query));
    for (const store::CurrentResource& current : page) {
      const std::pair<std::string, std::string> key{current.type, current.id};
      not_current_before(&key);
      // Only a disagreement needs it: most resources agree.
      auto held = [&key, &current] {
        return Name(key) + " is current at version " + std::to_string(current.version);
      };
      if (next != latest_.end() && next->first == key) {
        ++check.resources_checked;
        const LatestWrite& write = next->second;
        if (write.deleted) {
          report(write.sequence, held() + ", but record " + std::to_string(write.sequence) +
                                     " deleted it (version " + std::to_string(write.version) + ")");
        } else if (write.version != current.version) {
          report(write.sequence, held() + ", but its latest write, record " +
                                     std::to_string(write.sequence) + ", made version " +
                                     std::to_string(write.version));
        }
        ++next;
      } else if (log_complete) {
        ++check.resources_checked;
        report(std::nullopt, held() + ", but the audit log records no write of it");
      } else {
        ++check.resources_unjudged;
      }
    }
    if (static_cast<int64_t>(page.size()) < kPageSize) break;
    query.after_type = page.back().type;
    query.after_id = page.back().id;
  }
  not_current_before(nullptr);
  return check;
}

}  // namespace kura::ops
