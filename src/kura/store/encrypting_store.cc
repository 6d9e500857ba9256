// EncryptingStore: seal on write, open on read.
#include "kura/store/encrypting_store.h"

#include "kura/base/log.h"

namespace kura::store {

EncryptingStore::EncryptingStore(Store& backend, const crypto::KeyProvider& provider,
                                 std::string tenant, size_t key_cache_capacity)
    : backend_(backend),
      tenant_(tenant),
      keyring_(backend, provider, std::move(tenant), key_cache_capacity) {}

std::string EncryptingStore::RecordAssociatedData(std::string_view tenant, std::string_view type,
                                                  std::string_view id, int64_t version) {
  std::string aad = "kura-record-v1\x1f";
  aad += tenant;
  aad += '\x1f';
  aad += type;
  aad += '\x1f';
  aad += id;
  aad += '\x1f';
  aad += std::to_string(version);
  return aad;
}

Status EncryptingStore::Seal(ResourceVersion& v) {
  if (v.deleted) {
    v.payload.clear();
    return Status::Ok();
  }
  std::string scope = v.compartment.empty() ? std::string(DataKeyring::kTenantScope)
                                            : DataKeyring::PatientScope(v.compartment);
  KURA_ASSIGN_OR_RETURN(auto key, keyring_.KeyForScope(scope));
  KURA_ASSIGN_OR_RETURN(std::string sealed,
                        key->Encrypt(v.payload, RecordAssociatedData(tenant_, v.type, v.id,
                                                                     v.version)));
  SecureWipe(v.payload.data(), v.payload.size());
  v.payload = std::move(sealed);
  return Status::Ok();
}

Status EncryptingStore::Open(ResourceVersion& v) {
  if (v.deleted) return Status::Ok();
  auto fail = [&](const Status& s) {
    log::Error("integrity_failure", {{"what", "record decryption"}, {"detail", s.internal_detail()},
                                     {"resource_type", v.type}, {"version", v.version}});
    return crypto::DecryptionFailed(s.internal_detail());
  };
  std::optional<uint64_t> key_id = crypto::PeekRecordKeyId(v.payload);
  if (!key_id) return fail(crypto::DecryptionFailed("record header malformed"));
  auto key = keyring_.KeyById(*key_id);
  if (!key.ok()) return fail(key.status());
  auto plain = (*key)->Decrypt(v.payload, RecordAssociatedData(tenant_, v.type, v.id, v.version));
  if (!plain.ok()) return fail(plain.status());
  v.payload = std::move(*plain);
  return Status::Ok();
}

StatusOr<CommitResult> EncryptingStore::Commit(WriteBatch batch) {
  for (ResourceVersion& v : batch.resources) KURA_RETURN_IF_ERROR(Seal(v));
  return backend_.Commit(std::move(batch));
}

StatusOr<ResourceVersion> EncryptingStore::ReadCurrent(std::string_view type, std::string_view id) {
  KURA_ASSIGN_OR_RETURN(ResourceVersion v, backend_.ReadCurrent(type, id));
  KURA_RETURN_IF_ERROR(Open(v));
  return v;
}

StatusOr<ResourceVersion> EncryptingStore::ReadVersion(std::string_view type, std::string_view id,
                                                       int64_t version) {
  KURA_ASSIGN_OR_RETURN(ResourceVersion v, backend_.ReadVersion(type, id, version));
  KURA_RETURN_IF_ERROR(Open(v));
  return v;
}

StatusOr<HistoryPage> EncryptingStore::History(const HistoryQuery& query) {
  KURA_ASSIGN_OR_RETURN(HistoryPage page, backend_.History(query));
  for (ResourceVersion& v : page.versions) KURA_RETURN_IF_ERROR(Open(v));
  return page;
}

}  // namespace kura::store
