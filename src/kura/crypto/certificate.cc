// Self-signed certificate generation with OpenSSL 3 (EVP_EC_gen, X509v3 extensions).
#include "kura/crypto/certificate.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>

namespace kura::crypto {
namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return InternalError("cannot build certificate extension " + value);
  }
  return Status::Ok();
}

Status WritePem(const std::filesystem::path& path, mode_t mode,
                const std::function<int(FILE*)>& write) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return InternalError("cannot create " + path.string());
  FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return InternalError("cannot open " + path.string());
  }
  int ok = write(f);
  ok = ok && std::fflush(f) == 0 && ::fsync(fd) == 0;
  std::fclose(f);
  if (!ok) return InternalError("cannot write " + path.string());
  return Status::Ok();
}

}  // namespace

Status WriteSelfSignedCertificate(const SelfSignedRequest& request,
                                  const std::filesystem::path& cert_path,
                                  const std::filesystem::path& key_path) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) return InternalError("cannot generate a P-256 key");
  X509_set_version(cert.get(), X509_VERSION_3);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60L * 60 * 24 * request.validity_days);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Kura"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(request.common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  std::string san;
  for (const auto& d : request.dns_names) san += (san.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& ip : request.ip_addresses) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  KURA_RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_alt_name, san));
  KURA_RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  KURA_RETURN_IF_ERROR(
      AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyAgreement"));
  KURA_RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth"));
  KURA_RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return InternalError("cannot sign certificate");
  }
  KURA_RETURN_IF_ERROR(WritePem(key_path, 0600, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  return WritePem(cert_path, 0644, [&](FILE* f) { return PEM_write_X509(f, cert.get()); });
}

}  // namespace kura::crypto
