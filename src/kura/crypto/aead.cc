// AES-256-GCM through OpenSSL EVP.
#include "kura/crypto/aead.h"

#include <openssl/evp.h>

#include <memory>
#include <mutex>
#include <vector>

#include "kura/base/random.h"
#include "kura/crypto/hash.h"

namespace kura::crypto {
namespace {

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

const EVP_CIPHER* Aes256Gcm() {
  // Fetch once: the implicit fetch inside EVP_aes_256_gcm() costs a lock per call.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

void PutBigEndian64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

uint64_t GetBigEndian64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

const uint8_t* U8(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

}  // namespace

Status DecryptionFailed(std::string internal_detail) {
  return DataLossError("decryption failed", std::move(internal_detail));
}

// Contexts keyed once, for encryption or for decryption; each use only sets a new nonce.
// A context comes back only after a successful operation, so no half-finished state is reused.
class AeadKey::ContextPool {
 public:
  // A context for `key` (always the owning AeadKey's), from the pool or new.
  CtxPtr Take(bool encrypt, const SecretBytes& key) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<CtxPtr>& free = encrypt ? encrypting_ : decrypting_;
      if (!free.empty()) {
        CtxPtr ctx = std::move(free.back());
        free.pop_back();
        return ctx;
      }
    }
    CtxPtr ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex2(ctx.get(), Aes256Gcm(), key.ExposeSecretForCrypto().data(),
                                   nullptr, encrypt ? 1 : 0, nullptr) != 1) {
      return nullptr;
    }
    return ctx;
  }

  void Give(CtxPtr ctx, bool encrypt) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<CtxPtr>& free = encrypt ? encrypting_ : decrypting_;
    // Enough for every thread that encrypts or decrypts at once; the rest are freed (and wiped).
    if (free.size() < kMaxIdle) free.push_back(std::move(ctx));
  }

 private:
  static constexpr size_t kMaxIdle = 16;
  std::mutex mu_;
  std::vector<CtxPtr> encrypting_;  // Guarded by mu_.
  std::vector<CtxPtr> decrypting_;  // Guarded by mu_.
};

AeadKey::AeadKey(uint64_t key_id, SecretBytes key)
    : key_id_(key_id),
      key_(std::move(key)),
      contexts_(std::make_unique<ContextPool>()),
      mac_(std::make_unique<HmacSha256Pool>()) {}
AeadKey::AeadKey(AeadKey&&) noexcept = default;
AeadKey& AeadKey::operator=(AeadKey&&) noexcept = default;
AeadKey::~AeadKey() = default;

StatusOr<AeadKey> AeadKey::Create(uint64_t key_id, SecretBytes key) {
  if (key.size() != kAesKeyBytes) return InvalidArgumentError("AES-256-GCM keys are 32 bytes");
  if (Aes256Gcm() == nullptr) return InternalError("internal error", "AES-256-GCM unavailable");
  return AeadKey(key_id, std::move(key));
}

std::array<uint8_t, 32> AeadKey::Mac(std::string_view data) const { return mac_->Mac(key_, data); }

StatusOr<std::string> AeadKey::Encrypt(std::string_view plaintext,
                                       std::string_view associated_data) const {
  std::string out(kRecordOverheadBytes + plaintext.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kRecordFormatV1;
  PutBigEndian64(key_id_, p + 1);
  uint8_t* nonce = p + 9;
  RandomFill({nonce, kGcmNonceBytes});
  CtxPtr ctx = contexts_->Take(/*encrypt=*/true, key_);
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, nonce, nullptr) != 1 ||
      (!associated_data.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, U8(associated_data),
                         static_cast<int>(associated_data.size())) != 1)) {
    return InternalError("internal error", "AES-GCM encrypt init failed");
  }
  uint8_t* ct = p + kRecordHeaderBytes;
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, U8(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    return InternalError("internal error", "AES-GCM encrypt failed");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + plaintext.size(), &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagBytes, ct + plaintext.size()) !=
          1) {
    return InternalError("internal error", "AES-GCM finalize failed");
  }
  contexts_->Give(std::move(ctx), /*encrypt=*/true);
  return out;
}

StatusOr<std::string> AeadKey::Decrypt(std::string_view record,
                                       std::string_view associated_data) const {
  if (record.size() < kRecordOverheadBytes || U8(record)[0] != kRecordFormatV1) {
    return DecryptionFailed("record malformed");
  }
  if (GetBigEndian64(U8(record) + 1) != key_id_) return DecryptionFailed("record key id mismatch");
  const uint8_t* nonce = U8(record) + 9;
  const uint8_t* ct = U8(record) + kRecordHeaderBytes;
  size_t ct_len = record.size() - kRecordOverheadBytes;
  std::string out(ct_len, '\0');
  CtxPtr ctx = contexts_->Take(/*encrypt=*/false, key_);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex2(ctx.get(), nullptr, nullptr, nonce, nullptr) != 1 ||
      (!associated_data.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, U8(associated_data),
                         static_cast<int>(associated_data.size())) != 1)) {
    return DecryptionFailed("AES-GCM decrypt init failed");
  }
  if (ct_len > 0 && EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len, ct,
                                      static_cast<int>(ct_len)) != 1) {
    return DecryptionFailed("AES-GCM decrypt failed");
  }
  std::string_view tag = record.substr(record.size() - kGcmTagBytes);
  int final_len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagBytes,
                          const_cast<char*>(tag.data())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), nullptr, &final_len) != 1) {
    SecureWipe(out.data(), out.size());
    return DecryptionFailed("AES-GCM tag mismatch");
  }
  contexts_->Give(std::move(ctx), /*encrypt=*/false);
  return out;
}

std::optional<uint64_t> PeekRecordKeyId(std::string_view record) {
  if (record.size() < kRecordOverheadBytes || U8(record)[0] != kRecordFormatV1) return std::nullopt;
  return GetBigEndian64(U8(record) + 1);
}

}  // namespace kura::crypto
