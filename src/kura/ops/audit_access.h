// The audit log of a data directory, opened the one way every writer and reader must agree on:
// records sealed under the tenant's "audit" data key, checkpoints signed with the tenant's
// checkpoint key, origin AuditOrigin(tenant). `kura serve`, the administrative commands and
// `kura audit verify` all come through here.
#pragma once

#include <memory>

#include "kura/audit/audit_log.h"
#include "kura/base/clock.h"
#include "kura/base/config.h"
#include "kura/crypto/key_provider.h"
#include "kura/store/data_keyring.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::ops {

struct AuditLogAccess {
  std::unique_ptr<store::DataKeyring> keyring;
  audit::AuditKeyLookup key_lookup;  // Valid while `keyring` lives.
  std::unique_ptr<audit::AuditLog> log;
};

// Opens the log for appending and attaches it to `backend`. `backend` and `provider` must
// outlive the result; close the backend before destroying it. Creates the audit data key and
// the checkpoint signing key on first use.
[[nodiscard]] StatusOr<AuditLogAccess> OpenAuditLog(store::SqliteStore& backend,
                                                    const crypto::KeyProvider& provider,
                                                    const Config& config, const Clock& clock);

// Whether an appended record's commit also signs a checkpoint over the log's unsigned tail.
enum class AuditTailSigning {
  kByPolicy,  // When audit.checkpoint_every_records / _seconds says so.
  kNow,       // Always: the writer goes away after this record (audit::AuditLog::SignedDraft).
};

// Commits `record` (time, actor tenant filled in when empty) as one audit-only unit: durable
// when this returns OK.
[[nodiscard]] Status AppendAuditRecord(store::Store& store, audit::AuditRecord record,
                                       const Config& config, const Clock& clock,
                                       AuditTailSigning signing = AuditTailSigning::kByPolicy);

}  // namespace kura::ops
