// The resource tables against the write records of the audit log.
#include "kura/ops/resource_ledger.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "kura/base/clock.h"

namespace kura::ops {
namespace {

constexpr int64_t kPageSize = 1000;

std::string Name(const std::pair<std::string, std::string>& key) {
  return key.first + "/" + key.second;
}

// The lastUpdated a write record names for its version; nullopt when it names none (records
// written before the detail existed) or an unreadable one (which leaves the time unjudged).
std::optional<int64_t> LastUpdatedOf(const audit::AuditRecord& record) {
  for (const auto& [key, value] : record.details) {
    if (key != audit::detail::kVersionLastUpdatedUs) continue;
    int64_t micros = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), micros);
    if (error != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return micros;
  }
  return std::nullopt;
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
  ResourceKey key{record.resource_type, record.resource_id};
  versions_[key].try_emplace(version, VersionWrite{.deleted = deletes,
                                                   .sequence = record.sequence,
                                                   .compartments = record.patient_compartments,
                                                   .last_updated_us = LastUpdatedOf(record)});
  latest_[std::move(key)] =
      LatestWrite{.version = version, .deleted = deletes, .sequence = record.sequence};
}

StatusOr<ResourceCheck> ResourceWriteLedger::Compare(store::Store& store, bool log_complete,
                                                     audit::VerificationReport& into,
                                                     size_t max_issues) const {
  ResourceCheck check;
  auto report = [&into, max_issues](std::optional<uint64_t> sequence, std::string reason) {
    into.AddIssue({audit::IssueKind::kResourceMismatch, sequence, std::move(reason)}, max_issues);
  };
  KURA_RETURN_IF_ERROR(CompareCurrent(store, log_complete, check, report));
  KURA_RETURN_IF_ERROR(CompareHistory(store, log_complete, check, report));
  return check;
}

Status ResourceWriteLedger::CompareCurrent(store::Store& store, bool log_complete,
                                           ResourceCheck& check, const Report& report) const {
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
  return Status();
}

Status ResourceWriteLedger::CompareHistory(store::Store& store, bool log_complete,
                                           ResourceCheck& check, const Report& report) const {
  // Both sides in (type, id) order: the ledger's map and the store's listing, in which a
  // resource's versions are adjacent; each resource is compared once all its rows are read.
  auto next = versions_.begin();
  std::vector<store::VersionMeta> resource;  // The rows of the resource being read.
  auto compare_up_to = [&](const ResourceKey* key) {
    // The ledger's resources before the one read have none of their versions stored.
    const std::vector<store::VersionMeta> none;
    for (; next != versions_.end() && (key == nullptr || next->first < *key); ++next) {
      CompareVersions(next->first, none, &next->second, log_complete, check, report);
    }
    if (key == nullptr) return;
    const bool named = next != versions_.end() && next->first == *key;
    CompareVersions(*key, resource, named ? &next->second : nullptr, log_complete, check, report);
    if (named) ++next;
  };
  store::VersionListQuery query;
  query.limit = kPageSize;
  while (true) {
    KURA_ASSIGN_OR_RETURN(std::vector<store::VersionMeta> page, store.ListVersions(query));
    for (store::VersionMeta& stored : page) {
      if (!resource.empty() &&
          (resource.back().type != stored.type || resource.back().id != stored.id)) {
        const ResourceKey key{resource.back().type, resource.back().id};
        compare_up_to(&key);
        resource.clear();
      }
      resource.push_back(std::move(stored));
    }
    if (static_cast<int64_t>(page.size()) < kPageSize) break;
    query.after_type = resource.back().type;
    query.after_id = resource.back().id;
    query.after_version = resource.back().version;
  }
  if (!resource.empty()) {
    const ResourceKey key{resource.back().type, resource.back().id};
    compare_up_to(&key);
  }
  compare_up_to(nullptr);
  return Status();
}

void ResourceWriteLedger::CompareVersions(const ResourceKey& key,
                                          const std::vector<store::VersionMeta>& stored,
                                          const VersionWrites* writes, bool log_complete,
                                          ResourceCheck& check, const Report& report) {
  auto version_name = [&key](int64_t version) {
    return Name(key) + " version " + std::to_string(version);
  };
  const VersionWrites no_writes;
  const VersionWrites& written = writes != nullptr ? *writes : no_writes;
  // Both in ascending version order.
  auto s = stored.begin();
  auto w = written.begin();
  while (s != stored.end() || w != written.end()) {
    if (w == written.end() || (s != stored.end() && s->version < w->first)) {
      if (log_complete) {
        ++check.versions_checked;
        report(std::nullopt,
               version_name(s->version) + " is stored, but the audit log records no write of it");
      } else {
        ++check.versions_unjudged;
      }
      ++s;
      continue;
    }
    ++check.versions_checked;
    const VersionWrite& write = w->second;
    const std::string by = "record " + std::to_string(write.sequence);
    if (s == stored.end() || w->first < s->version) {
      report(write.sequence, version_name(w->first) + " is not stored, but " + by +
                                 " wrote it (a history row deleted behind Kura's back)");
      ++w;
      continue;
    }
    if (s->deleted != write.deleted) {
      report(
          write.sequence,
          version_name(s->version) +
              (s->deleted ? " is stored as a delete marker, but " + by + " wrote it as content"
                          : " is stored as content, but " + by + " wrote it as a delete marker"));
    } else if (!s->compartment.empty() &&
               std::find(write.compartments.begin(), write.compartments.end(), s->compartment) ==
                   write.compartments.end()) {
      report(write.sequence, version_name(s->version) +
                                 " is stored in a patient compartment that " + by +
                                 " does not name (moved to another patient)");
    } else if (write.last_updated_us && *write.last_updated_us != ToMicros(s->last_updated)) {
      report(write.sequence, version_name(s->version) +
                                 " is stored with another lastUpdated than " + by +
                                 " wrote (moved in time)");
    }
    ++s;
    ++w;
  }
}

}  // namespace kura::ops
