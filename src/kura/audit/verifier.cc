// Streaming audit log verification.
#include "kura/audit/verifier.h"

#include <algorithm>
#include <tuple>

#include "kura/base/random.h"

namespace kura::audit {
namespace {

constexpr size_t kMaxTrackedGaps = 1024;

std::string Describe(const Status& status) {
  std::string out = status.message();
  if (!status.internal_detail().empty()) out += " (" + status.internal_detail() + ")";
  return out;
}

std::string Seq(uint64_t n) { return std::to_string(n); }

}  // namespace

std::string_view IssueKindName(IssueKind kind) {
  switch (kind) {
    case IssueKind::kModified:
      return "modified";
    case IssueKind::kDeleted:
      return "deleted";
    case IssueKind::kInserted:
      return "inserted";
    case IssueKind::kReordered:
      return "reordered";
    case IssueKind::kTruncated:
      return "truncated";
    case IssueKind::kBadCheckpoint:
      return "bad-checkpoint";
    case IssueKind::kCheckpointMismatch:
      return "checkpoint-mismatch";
    case IssueKind::kReadError:
      return "read-error";
    case IssueKind::kIndexMismatch:
      return "index-mismatch";
    case IssueKind::kResourceMismatch:
      return "resource-mismatch";
  }
  return "unknown";
}

std::vector<std::string_view> DifferingIndexColumns(const RecordIndexColumns& index,
                                                    const AuditRecord& record) {
  std::vector<std::string_view> differing;
  if (index.time_us != record.time_us) differing.push_back("time");
  if (index.category != record.category) differing.push_back("category");
  if (index.action != record.action) differing.push_back("action");
  if (index.outcome != static_cast<int>(record.outcome)) differing.push_back("outcome");
  if (index.actor != record.actor.id) differing.push_back("actor");
  bool patients_agree = index.patients_readable;
  if (patients_agree) {
    std::vector<std::string> recorded = record.patient_compartments;
    std::sort(recorded.begin(), recorded.end());
    patients_agree = recorded == index.patient_ids;
  }
  if (!patients_agree) differing.push_back("patients");
  return differing;
}

void VerificationReport::AddIssue(VerificationIssue issue, size_t max_issues) {
  ++issue_count;
  if (issues.size() < max_issues) issues.push_back(std::move(issue));
}

std::optional<uint64_t> VerificationReport::FirstBadSequence() const {
  std::optional<uint64_t> first;
  for (const VerificationIssue& issue : issues) {
    if (issue.sequence && (!first || *issue.sequence < *first)) first = issue.sequence;
  }
  return first;
}

std::string VerificationReport::Summary() const {
  std::string out;
  if (ok()) {
    out = "OK: records [" + Seq(first_sequence) + ", " + Seq(tree_size) + ") verified; " +
          Seq(checkpoints_matched) + " signed checkpoint(s) matched";
    if (checkpoints_unchecked > 0) {
      out += ", " + Seq(checkpoints_unchecked) + " before the prune point not re-checked";
    }
    out += "; " + Seq(unsigned_tail) + " record(s) after the latest checkpoint are chained but " +
           "not yet signed\n";
    return out;
  }
  out = "FAILED: " + Seq(issue_count) + " issue(s)";
  if (auto first = FirstBadSequence()) out += "; first bad sequence " + Seq(*first);
  out += "\n";
  for (const VerificationIssue& issue : issues) {
    out += "  ";
    out += IssueKindName(issue.kind);
    if (issue.sequence) out += " at " + Seq(*issue.sequence);
    out += ": " + issue.reason + "\n";
  }
  if (issue_count > issues.size()) {
    out += "  ... " + Seq(issue_count - issues.size()) + " more\n";
  }
  return out;
}

nlohmann::ordered_json VerificationReport::ToJson() const {
  nlohmann::ordered_json out;
  out["ok"] = ok();
  out["first_sequence"] = first_sequence;
  out["tree_size"] = tree_size;
  out["records_checked"] = records_checked;
  out["root"] = Base64Encode(root);
  out["chain_head"] = Base64Encode(chain_head);
  out["checkpoints_matched"] = checkpoints_matched;
  out["checkpoints_unchecked"] = checkpoints_unchecked;
  out["latest_checkpoint_size"] = latest_checkpoint_size;
  out["unsigned_tail"] = unsigned_tail;
  out["issue_count"] = issue_count;
  auto first = FirstBadSequence();
  out["first_bad_sequence"] = first ? nlohmann::ordered_json(*first) : nlohmann::ordered_json();
  out["issues"] = nlohmann::ordered_json::array();
  for (const VerificationIssue& issue : issues) {
    nlohmann::ordered_json item;
    item["kind"] = std::string(IssueKindName(issue.kind));
    item["sequence"] =
        issue.sequence ? nlohmann::ordered_json(*issue.sequence) : nlohmann::ordered_json();
    item["reason"] = issue.reason;
    out["issues"].push_back(std::move(item));
  }
  return out;
}

StatusOr<LogVerifier> LogVerifier::Create(VerifyOptions options,
                                          std::span<const std::string> checkpoint_notes,
                                          std::span<const std::string> anchor_notes,
                                          RecordObserver on_record) {
  if (!IsValidOrigin(options.origin)) return InvalidArgumentError("invalid audit log origin");
  if (options.trusted_keys.empty()) {
    return InvalidArgumentError("audit verification needs at least one trusted key");
  }
  LogVerifier v(std::move(options));
  v.on_record_ = std::move(on_record);
  for (const std::string& note : checkpoint_notes) {
    auto c = VerifyCheckpoint(note, v.options_.origin, v.options_.trusted_keys);
    if (!c.ok()) {
      v.AddIssue(IssueKind::kBadCheckpoint, std::nullopt,
                 "checkpoint rejected: " + Describe(c.status()));
      continue;
    }
    v.checkpoints_.push_back(std::move(c).value());
  }
  for (const std::string& note : anchor_notes) {
    auto a = VerifyPruneAnchor(note, v.options_.origin, v.options_.trusted_keys);
    if (!a.ok()) {
      v.AddIssue(IssueKind::kBadCheckpoint, std::nullopt,
                 "prune anchor rejected: " + Describe(a.status()));
      continue;
    }
    v.anchors_.push_back(std::move(a).value());
  }
  auto by_size = [](const Checkpoint& a, const Checkpoint& b) {
    return std::tie(a.tree_size, a.root, a.chain_head, a.time_us) <
           std::tie(b.tree_size, b.root, b.chain_head, b.time_us);
  };
  std::sort(v.checkpoints_.begin(), v.checkpoints_.end(), by_size);
  v.checkpoints_.erase(std::unique(v.checkpoints_.begin(), v.checkpoints_.end()),
                       v.checkpoints_.end());
  std::stable_sort(v.anchors_.begin(), v.anchors_.end(),
                   [](const PruneAnchor& a, const PruneAnchor& b) {
                     return a.first_sequence < b.first_sequence;
                   });
  if (!v.checkpoints_.empty()) v.report_.latest_checkpoint_size = v.checkpoints_.back().tree_size;
  return v;
}

void LogVerifier::AddIssue(IssueKind kind, std::optional<uint64_t> sequence, std::string reason) {
  if (kind == IssueKind::kModified || kind == IssueKind::kDeleted || kind == IssueKind::kInserted ||
      kind == IssueKind::kReordered) {
    record_issue_since_checkpoint_ = true;
  }
  report_.AddIssue(VerificationIssue{kind, sequence, std::move(reason)}, options_.max_issues);
}

void LogVerifier::Start(std::optional<uint64_t> first_sequence) {
  started_ = true;
  if (!first_sequence || *first_sequence > 0) {
    // Resume from the latest anchor at or before the first retained record.
    const PruneAnchor* chosen = nullptr;
    for (const PruneAnchor& a : anchors_) {
      if (!first_sequence || a.first_sequence <= *first_sequence) chosen = &a;
    }
    if (chosen != nullptr) {
      head_.chain_head = chosen->chain_head;
      head_.frontier = chosen->frontier;
      expected_ = chosen->first_sequence;
    }
  }
  report_.first_sequence = expected_;
  last_matched_checkpoint_ = expected_;
  while (next_anchor_ < anchors_.size() && anchors_[next_anchor_].first_sequence < expected_) {
    ++next_anchor_;  // Older prunes: superseded by the one we start from.
  }
  while (next_checkpoint_ < checkpoints_.size() &&
         checkpoints_[next_checkpoint_].tree_size < expected_) {
    ++next_checkpoint_;  // Cover pruned records only; nothing left to check them against.
    ++report_.checkpoints_unchecked;
  }
  CheckStatementsAt(expected_);
}

void LogVerifier::CheckStatementsAt(uint64_t size) {
  std::optional<Hash> root;
  auto current_root = [&]() -> const Hash& {
    if (!root) root = head_.frontier.Root();
    return *root;
  };
  // Several checkpoints may state the same size (store and sink copies, key rotation, or a
  // fork); judge them all against the window since the last match before moving it.
  const uint64_t window_start = last_matched_checkpoint_;
  bool any_matched = false;
  bool any_mismatched = false;
  for (; next_checkpoint_ < checkpoints_.size(); ++next_checkpoint_) {
    const Checkpoint& c = checkpoints_[next_checkpoint_];
    if (c.tree_size > size) break;
    if (c.tree_size < size || !tree_valid_) {  // Jumped over by a gap, or after a failure.
      ++report_.checkpoints_unchecked;
      continue;
    }
    const bool root_ok = c.root == current_root();
    const bool chain_ok = c.chain_head == head_.chain_head;
    if (root_ok && chain_ok) {
      ++report_.checkpoints_matched;
      any_matched = true;
      continue;
    }
    any_mismatched = true;
    if (record_issue_since_checkpoint_) {
      // Already explained by a record-level finding in this window.
      ++report_.checkpoints_unchecked;
      continue;
    }
    AddIssue(IssueKind::kCheckpointMismatch, window_start,
             "the checkpoint signed at " + FormatMicrosUtc(c.time_us) + " for " + Seq(size) +
                 " records does not match them (its " +
                 (root_ok    ? "chain head differs"
                  : chain_ok ? "Merkle root differs"
                             : "Merkle root and chain head differ") +
                 "): records in [" + Seq(window_start) + ", " + Seq(size) +
                 ") were rewritten, inserted or deleted and re-chained, or the log forked");
  }
  if (any_matched) {
    last_matched_checkpoint_ = size;
    record_issue_since_checkpoint_ = false;
  } else if (any_mismatched) {
    // Every later checkpoint would differ too; one finding says it.
    tree_valid_ = false;
  }
  for (; next_anchor_ < anchors_.size(); ++next_anchor_) {
    const PruneAnchor& a = anchors_[next_anchor_];
    if (a.first_sequence > size) break;
    if (a.first_sequence < size || !tree_valid_) continue;
    if (a.chain_head == head_.chain_head && a.frontier == head_.frontier) continue;
    AddIssue(IssueKind::kCheckpointMismatch, last_matched_checkpoint_,
             "the prune anchor signed at " + FormatMicrosUtc(a.time_us) + " for sequence " +
                 Seq(size) + " does not match the records before it");
  }
}

void LogVerifier::Add(const StoredRecord& record) {
  if (read_failed_) return;
  if (!started_) Start(record.sequence);
  ++report_.records_checked;
  const uint64_t s = record.sequence;
  if (s == UINT64_MAX) {  // No log reaches this; accepting it would overflow the next number.
    AddIssue(IssueKind::kModified, s, "a record carries the impossible sequence 2^64-1");
    return;
  }

  if (s < expected_) {
    for (const Gap& gap : gaps_) {
      if (s < gap.from || s >= gap.to) continue;
      if (gap.issue < report_.issues.size() &&
          report_.issues[gap.issue].kind == IssueKind::kDeleted) {
        report_.issues[gap.issue].kind = IssueKind::kReordered;
        report_.issues[gap.issue].reason = "records from " + Seq(gap.from) +
                                           " appear after record " + Seq(gap.to) +
                                           " (out of order)";
      }
      return;
    }
    AddIssue(IssueKind::kInserted, s,
             "a record with sequence " + Seq(s) + " appears again after sequence " +
                 Seq(expected_ - 1) + " (an extra or duplicated record)");
    return;
  }

  bool link_checkable = true;
  if (s > expected_) {
    const bool missing_prefix = expected_ == 0 && report_.records_checked == 1;
    const size_t index = report_.issues.size();
    AddIssue(IssueKind::kDeleted, expected_,
             missing_prefix
                 ? "records [0, " + Seq(s) + ") are missing and no signed prune anchor covers them"
                 : "records [" + Seq(expected_) + ", " + Seq(s) + ") are missing");
    if (gaps_.size() < kMaxTrackedGaps && index < report_.issues.size()) {
      gaps_.push_back(Gap{expected_, s, index});
    }
    tree_valid_ = false;
    link_checkable = false;
  }

  const Hash leaf = HashLeaf(record.canonical);
  bool flagged = false;
  auto decoded = DecodeAuditRecord(record.canonical);
  if (!decoded.ok()) {
    AddIssue(IssueKind::kModified, s,
             "record " + Seq(s) + " does not decode: " + decoded.status().internal_detail());
    flagged = true;
  } else if (decoded->sequence != s) {
    AddIssue(IssueKind::kReordered, s,
             "the record stored at sequence " + Seq(s) + " holds record " + Seq(decoded->sequence) +
                 " (moved or copied there)");
    flagged = true;
  }
  const Hash computed = ChainNext(head_.chain_head, leaf);
  if (link_checkable && !flagged && computed != record.chain_hash) {
    AddIssue(IssueKind::kModified, s,
             "record " + Seq(s) +
                 " does not match its chain hash (its bytes or its stored hash were changed)");
    flagged = true;
  }
  if (decoded.ok() && decoded->sequence == s && on_record_) on_record_(*decoded);
  // Judged against a record that passed the checks above, so one edit is one finding.
  if (!flagged && record.index) {
    const std::vector<std::string_view> differing = DifferingIndexColumns(*record.index, *decoded);
    if (!differing.empty()) {
      std::string columns;
      for (std::string_view column : differing) {
        if (!columns.empty()) columns += ", ";
        columns += column;
      }
      AddIssue(IssueKind::kIndexMismatch, s,
               "the clear index columns of record " + Seq(s) + " (" + columns +
                   ") differ from the sealed record: a search on them misses or misfiles it");
    }
  }
  // Continue from the stored hash so one edit is reported once, not at every later record; the
  // Merkle tree still holds the recomputed leaf, so checkpoints catch re-chained edits.
  head_.chain_head = record.chain_hash;
  head_.frontier.Append(leaf);
  expected_ = s + 1;
  CheckStatementsAt(expected_);
}

void LogVerifier::AddReadError(const Status& status) {
  if (!started_) Start(std::nullopt);
  AddIssue(IssueKind::kReadError, expected_,
           "the store could not be read from sequence " + Seq(expected_) + ": " + Describe(status));
  read_failed_ = true;
  report_.read_failed = true;
}

VerificationReport LogVerifier::Finish() && {
  if (!started_) Start(std::nullopt);
  const uint64_t beyond = checkpoints_.size() - next_checkpoint_;
  if (beyond > 0) {
    const Checkpoint& latest = checkpoints_.back();
    if (read_failed_) {
      report_.checkpoints_unchecked += beyond;
    } else {
      AddIssue(IssueKind::kTruncated, expected_,
               "the log ends after " + Seq(expected_) + " records but the checkpoint signed at " +
                   FormatMicrosUtc(latest.time_us) + " covers " + Seq(latest.tree_size));
    }
  }
  if (next_anchor_ < anchors_.size() && !read_failed_) {
    const PruneAnchor& latest = anchors_.back();
    AddIssue(IssueKind::kTruncated, expected_,
             "the log ends after " + Seq(expected_) + " records but the prune anchor signed at " +
                 FormatMicrosUtc(latest.time_us) + " starts at " + Seq(latest.first_sequence));
  }
  report_.tree_size = expected_;
  report_.root = head_.frontier.Root();
  report_.chain_head = head_.chain_head;
  report_.unsigned_tail = expected_ - std::min(expected_, last_matched_checkpoint_);
  return std::move(report_);
}

StatusOr<VerificationReport> VerifyLog(StoredRecordReader& reader, const VerifyOptions& options,
                                       std::span<const std::string> checkpoint_notes,
                                       std::span<const std::string> anchor_notes,
                                       const RecordObserver& on_record) {
  KURA_ASSIGN_OR_RETURN(LogVerifier verifier,
                        LogVerifier::Create(options, checkpoint_notes, anchor_notes, on_record));
  constexpr uint64_t kKeepGoingStride = 4096;
  for (uint64_t read = 0;; ++read) {
    if (options.keep_going && read % kKeepGoingStride == 0 && !options.keep_going()) {
      return AbortedError("audit verification stopped", "stopped after " + Seq(read) + " records");
    }
    auto next = reader.Next();
    if (!next.ok()) {
      verifier.AddReadError(next.status());
      break;
    }
    if (!next->has_value()) break;
    verifier.Add(**next);
  }
  return std::move(verifier).Finish();
}

StatusOr<VerificationReport> VerifyLog(std::span<const StoredRecord> records,
                                       const VerifyOptions& options,
                                       std::span<const std::string> checkpoint_notes,
                                       std::span<const std::string> anchor_notes) {
  KURA_ASSIGN_OR_RETURN(LogVerifier verifier,
                        LogVerifier::Create(options, checkpoint_notes, anchor_notes));
  for (const StoredRecord& r : records) verifier.Add(r);
  return std::move(verifier).Finish();
}

AuditRecord VerificationAuditRecord(const VerificationReport& report, int64_t time_us) {
  AuditRecord r;
  r.time_us = time_us;
  r.category = std::string(category::kSystem);
  r.action = std::string(action::kVerify);
  r.outcome = report.ok() ? Outcome::kSuccess : Outcome::kSeriousFailure;
  r.outcome_reason = report.ok() ? "" : "tamper-evidence";
  r.actor.kind = "system";
  r.actor.id = "kura";
  r.details = {
      {"verify.tree_size", Seq(report.tree_size)},
      {"verify.first_sequence", Seq(report.first_sequence)},
      {"verify.checkpoints_matched", Seq(report.checkpoints_matched)},
      {"verify.issue_count", Seq(report.issue_count)},
  };
  if (auto first = report.FirstBadSequence()) {
    r.details.emplace_back("verify.first_bad_sequence", Seq(*first));
  }
  if (!report.issues.empty()) {
    r.details.emplace_back("verify.first_issue", std::string(IssueKindName(report.issues[0].kind)));
  }
  return r;
}

}  // namespace kura::audit
