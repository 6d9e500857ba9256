// Opening a data directory's audit log.
#include "kura/ops/audit_access.h"

namespace kura::ops {

StatusOr<AuditLogAccess> OpenAuditLog(store::SqliteStore& backend,
                                      const crypto::KeyProvider& provider, const Config& config,
                                      const Clock& clock) {
  AuditLogAccess access;
  // Few keys live here: the audit key and, after rotations, its predecessors.
  access.keyring = std::make_unique<store::DataKeyring>(backend, provider, config.tenant, 16);
  KURA_ASSIGN_OR_RETURN(std::shared_ptr<const crypto::AeadKey> record_key,
                        access.keyring->KeyForScope(std::string(audit::kAuditKeyScope)));
  access.key_lookup = [keyring = access.keyring.get()](uint64_t key_id) {
    return keyring->KeyById(key_id);
  };
  KURA_ASSIGN_OR_RETURN(crypto::Ed25519Signer signer,
                        audit::LoadOrCreateCheckpointSigner(backend, provider, config.tenant));
  audit::AuditLogOptions options;
  options.origin = audit::AuditOrigin(config.tenant);
  options.checkpoint_policy.every_records =
      static_cast<uint64_t>(config.audit.checkpoint_every_records);
  options.checkpoint_policy.every = std::chrono::seconds(config.audit.checkpoint_every_seconds);
  KURA_ASSIGN_OR_RETURN(access.log,
                        audit::AuditLog::Open(backend, std::move(record_key), access.key_lookup,
                                              std::move(signer), std::move(options), clock));
  return access;
}

Status AppendAuditRecord(store::Store& store, audit::AuditRecord record, const Config& config,
                         const Clock& clock, AuditTailSigning signing) {
  if (record.time_us == 0) record.time_us = ToMicros(clock.Now());
  if (record.actor.tenant.empty()) record.actor.tenant = config.tenant;
  store::WriteBatch batch;
  batch.audit = signing == AuditTailSigning::kNow ? audit::AuditLog::SignedDraft(std::move(record))
                                                  : audit::AuditLog::Draft(std::move(record));
  return store.Commit(std::move(batch)).status();
}

}  // namespace kura::ops
