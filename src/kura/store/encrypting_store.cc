// EncryptingStore: seal on write, open on read.
#include "kura/store/encrypting_store.h"

#include "kura/base/log.h"

namespace kura::store {

EncryptingStore::EncryptingStore(Store& backend, const crypto::KeyProvider& provider,
                                 std::string tenant, size_t key_cache_capacity,
                                 BlockingExecutor blocking)
    : ForwardingStore(backend),
      tenant_(tenant),
      keyring_(backend, provider, std::move(tenant), key_cache_capacity),
      blocking_(std::move(blocking)) {}

std::string EncryptingStore::RecordAssociatedData(std::string_view tenant, std::string_view type,
                                                  std::string_view id, int64_t version) {
  std::string aad;
  aad.reserve(15 + tenant.size() + type.size() + id.size() + 24);
  aad += "kura-record-v1\x1f";
  aad += tenant;
  aad += '\x1f';
  aad += type;
  aad += '\x1f';
  aad += id;
  aad += '\x1f';
  aad += std::to_string(version);
  return aad;
}

std::string EncryptingStore::ScopeOf(const ResourceVersion& v) {
  return v.compartment.empty() ? std::string(DataKeyring::kTenantScope)
                               : DataKeyring::PatientScope(v.compartment);
}

Status EncryptingStore::Seal(ResourceVersion& v, const crypto::AeadKey& key) {
  KURA_ASSIGN_OR_RETURN(
      std::string sealed,
      key.Encrypt(v.payload, RecordAssociatedData(tenant_, v.type, v.id, v.version)));
  SecureWipe(v.payload.data(), v.payload.size());
  v.payload = std::move(sealed);
  return Status::Ok();
}

std::string EncryptingStore::BlindValue(const crypto::AeadKey& key, std::string_view param,
                                        int column, std::string_view value) {
  std::string input = "kura-blind-v1\x1f";
  input += param;
  input += '\x1f';
  input += column == 2 ? '2' : '1';
  input += '\x1f';
  input += value;
  std::array<uint8_t, 32> mac = key.Mac(input);
  SecureWipe(input.data(), input.size());
  return std::string(reinterpret_cast<const char*>(mac.data()), 16);
}

namespace {

bool HasBlindRows(const std::vector<IndexEntry>& rows) {
  for (const IndexEntry& e : rows) {
    if (e.blind) return true;
  }
  return false;
}

bool HasBlindRows(const WriteBatch& batch) {
  for (const ResourceVersion& v : batch.resources) {
    if (!v.deleted && HasBlindRows(v.index)) return true;
  }
  for (const IndexRewrite& r : batch.index_rewrites) {
    if (HasBlindRows(r.index)) return true;
  }
  return false;
}

}  // namespace

StatusOr<EncryptingStore::EntryKeys> EncryptingStore::SealingKeys(const WriteBatch& batch,
                                                                  KeySource source) {
  auto key_for = [&](const std::string& scope) -> StatusOr<std::shared_ptr<const crypto::AeadKey>> {
    if (source == KeySource::kCacheOnly) {
      auto key = keyring_.CachedKeyForScope(scope);
      if (key == nullptr) return UnavailableError("data key not cached");
      return key;
    }
    return keyring_.KeyForScope(scope);
  };
  EntryKeys keys;
  keys.sealing.reserve(batch.resources.size());
  for (const ResourceVersion& v : batch.resources) {
    if (v.deleted) {
      keys.sealing.emplace_back();
      continue;
    }
    KURA_ASSIGN_OR_RETURN(auto key, key_for(ScopeOf(v)));
    keys.sealing.push_back(std::move(key));
  }
  if (HasBlindRows(batch)) {
    KURA_ASSIGN_OR_RETURN(keys.blind, key_for(std::string(DataKeyring::kBlindIndexScope)));
  }
  return keys;
}

Status EncryptingStore::SealAll(WriteBatch& batch, const EntryKeys& keys) {
  for (size_t i = 0; i < batch.resources.size(); ++i) {
    ResourceVersion& v = batch.resources[i];
    if (v.deleted) {
      v.payload.clear();
      continue;
    }
    KURA_RETURN_IF_ERROR(Seal(v, *keys.sealing[i]));
    BlindRows(v.index, keys.blind.get());
  }
  for (IndexRewrite& r : batch.index_rewrites) BlindRows(r.index, keys.blind.get());
  return Status::Ok();
}

void EncryptingStore::BlindRows(std::vector<IndexEntry>& rows, const crypto::AeadKey* key) {
  for (IndexEntry& e : rows) {
    if (!e.blind) continue;
    e.key = BlindValue(*key, e.param, 1, e.key);
    e.key2 = e.key2.empty() ? std::string() : BlindValue(*key, e.param, 2, e.key2);
  }
}

Status EncryptingStore::BlindQuery(IndexQuery& query, const crypto::AeadKey& key) {
  for (IndexClause& clause : query.all_of) {
    for (IndexMatch& m : clause.any_of) {
      if (m.chain) {
        auto chain = std::make_shared<IndexQuery>(*m.chain);
        KURA_RETURN_IF_ERROR(BlindQuery(*chain, key));
        m.chain = std::move(chain);
      }
      if (!clause.blind) continue;
      if (m.key_prefix || m.key_contains || m.chain) {
        return InvalidArgumentError("a blind parameter matches by equality only");
      }
      if (m.key) m.key = BlindValue(key, clause.param, 1, *m.key);
      if (m.key2)
        m.key2 = m.key2->empty() ? std::string() : BlindValue(key, clause.param, 2, *m.key2);
    }
  }
  return Status::Ok();
}

namespace {

bool HasBlindClause(const IndexQuery& query) {
  for (const IndexClause& clause : query.all_of) {
    if (clause.blind) return true;
    for (const IndexMatch& m : clause.any_of) {
      if (m.chain && HasBlindClause(*m.chain)) return true;
    }
  }
  return false;
}

}  // namespace

StatusOr<IndexPage> EncryptingStore::Search(const IndexQuery& query) {
  if (!HasBlindClause(query)) return backend().Search(query);
  KURA_ASSIGN_OR_RETURN(auto key, keyring_.KeyForScope(std::string(DataKeyring::kBlindIndexScope)));
  IndexQuery blinded = query;
  KURA_RETURN_IF_ERROR(BlindQuery(blinded, *key));
  return backend().Search(blinded);
}

std::optional<StatusOr<IndexPage>> EncryptingStore::SearchIfInMemory(const IndexQuery& query) {
  if (!HasBlindClause(query)) return backend().SearchIfInMemory(query);
  std::shared_ptr<const crypto::AeadKey> key =
      keyring_.CachedKeyForScope(std::string(DataKeyring::kBlindIndexScope));
  if (key == nullptr) return std::nullopt;  // Loading it is a store round trip.
  IndexQuery blinded = query;
  if (Status s = BlindQuery(blinded, *key); !s.ok()) return StatusOr<IndexPage>(s);
  return backend().SearchIfInMemory(blinded);
}

StatusOr<std::string> EncryptingStore::OpenPayload(const ResourceVersion& sealed,
                                                   const crypto::AeadKey* key) {
  auto fail = [&](const Status& s) {
    log::Error("integrity_failure", {{"what", "record decryption"},
                                     {"detail", s.internal_detail()},
                                     {"resource_type", sealed.type},
                                     {"version", sealed.version}});
    return crypto::DecryptionFailed(s.internal_detail());
  };
  std::shared_ptr<const crypto::AeadKey> loaded;
  if (key == nullptr) {
    std::optional<uint64_t> key_id = crypto::PeekRecordKeyId(sealed.payload);
    if (!key_id) return fail(crypto::DecryptionFailed("record header malformed"));
    auto found = keyring_.KeyById(*key_id);
    if (!found.ok()) return fail(found.status());
    loaded = *std::move(found);
    key = loaded.get();
  }
  auto plain = key->Decrypt(sealed.payload,
                            RecordAssociatedData(tenant_, sealed.type, sealed.id, sealed.version));
  if (!plain.ok()) return fail(plain.status());
  return plain;
}

Status EncryptingStore::Open(ResourceVersion& v) {
  if (v.deleted) return Status::Ok();
  KURA_ASSIGN_OR_RETURN(v.payload, OpenPayload(v, nullptr));
  return Status::Ok();
}

StatusOr<CommitResult> EncryptingStore::Commit(WriteBatch batch) {
  KURA_ASSIGN_OR_RETURN(EntryKeys keys, SealingKeys(batch, KeySource::kLoadOrCreate));
  KURA_RETURN_IF_ERROR(SealAll(batch, keys));
  return backend().Commit(std::move(batch));
}

void EncryptingStore::CommitAsync(WriteBatch batch, CommitCallback done) {
  // Seal here when every key is cached (CPU only); otherwise loading or creating a key means
  // store round trips, which belong on the blocking executor.
  StatusOr<EntryKeys> keys = SealingKeys(batch, KeySource::kCacheOnly);
  if (!keys.ok()) {
    blocking_([this, batch = std::move(batch), done = std::move(done)]() mutable {
      StatusOr<EntryKeys> loaded = SealingKeys(batch, KeySource::kLoadOrCreate);
      Status sealed = loaded.ok() ? SealAll(batch, *loaded) : loaded.status();
      if (!sealed.ok()) {
        done(std::move(sealed));
        return;
      }
      backend().CommitAsync(std::move(batch), std::move(done));
    });
    return;
  }
  if (Status sealed = SealAll(batch, *keys); !sealed.ok()) {
    done(std::move(sealed));
    return;
  }
  backend().CommitAsync(std::move(batch), std::move(done));
}

std::optional<StatusOr<ResourceVersion>> EncryptingStore::OpenCachedIfKeyCached(
    const ResourceVersion& sealed) {
  ResourceVersion v;
  v.type = sealed.type;
  v.id = sealed.id;
  v.version = sealed.version;
  v.last_updated = sealed.last_updated;
  v.deleted = sealed.deleted;
  v.compartment = sealed.compartment;
  v.sequence = sealed.sequence;
  // Reads never return index rows, and the cache keeps none.
  if (sealed.deleted) return StatusOr<ResourceVersion>(std::move(v));
  const crypto::AeadKey* key = nullptr;
  std::shared_ptr<const crypto::AeadKey> cached;
  if (std::optional<uint64_t> key_id = crypto::PeekRecordKeyId(sealed.payload)) {
    cached = keyring_.CachedKeyById(*key_id);
    if (cached == nullptr) return std::nullopt;
    key = cached.get();
  }
  // Without a key id the header is malformed: OpenPayload fails closed without blocking.
  StatusOr<std::string> plain = OpenPayload(sealed, key);
  if (!plain.ok()) return StatusOr<ResourceVersion>(plain.status());
  v.payload = *std::move(plain);
  return StatusOr<ResourceVersion>(std::move(v));
}

std::optional<StatusOr<ResourceVersion>> EncryptingStore::ReadCurrentIfCached(std::string_view type,
                                                                              std::string_view id) {
  std::shared_ptr<const ResourceVersion> sealed = backend().SharedCurrentIfCached(type, id);
  if (sealed == nullptr) return std::nullopt;
  return OpenCachedIfKeyCached(*sealed);
}

std::optional<StatusOr<ResourceVersion>> EncryptingStore::ReadVersionIfCached(std::string_view type,
                                                                              std::string_view id,
                                                                              int64_t version) {
  std::shared_ptr<const ResourceVersion> sealed = backend().SharedCurrentIfCached(type, id);
  if (sealed == nullptr || sealed->version != version) return std::nullopt;
  return OpenCachedIfKeyCached(*sealed);
}

StatusOr<ResourceVersion> EncryptingStore::ReadCurrent(std::string_view type, std::string_view id) {
  KURA_ASSIGN_OR_RETURN(ResourceVersion v, backend().ReadCurrent(type, id));
  KURA_RETURN_IF_ERROR(Open(v));
  return v;
}

StatusOr<ResourceVersion> EncryptingStore::ReadVersion(std::string_view type, std::string_view id,
                                                       int64_t version) {
  KURA_ASSIGN_OR_RETURN(ResourceVersion v, backend().ReadVersion(type, id, version));
  KURA_RETURN_IF_ERROR(Open(v));
  return v;
}

StatusOr<HistoryPage> EncryptingStore::History(const HistoryQuery& query) {
  KURA_ASSIGN_OR_RETURN(HistoryPage page, backend().History(query));
  for (ResourceVersion& v : page.versions) KURA_RETURN_IF_ERROR(Open(v));
  return page;
}

}  // namespace kura::store
