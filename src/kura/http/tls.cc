// The server TLS context (OpenSSL through Asio).
#include "kura/http/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

namespace kura::http {
namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

int SelectHttp11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // Only HTTP/1.1 is spoken here.
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

}  // namespace

StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::filesystem::path& certificate_chain, const std::filesystem::path& private_key) {
  struct stat st {};
  if (::stat(private_key.c_str(), &st) != 0) {
    return FailedPreconditionError("TLS private key not found: " + private_key.string());
  }
  if ((st.st_mode & 077) != 0) {
    return FailedPreconditionError("TLS private key " + private_key.string() +
                                   " is accessible by group or others; run: chmod 600 " +
                                   private_key.string());
  }
  auto ctx = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(raw, TLS1_3_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_RENEGOTIATION |  // Client renegotiation is off by default in OpenSSL 3.
                              
                               SSL_OP_SINGLE_ECDH_USE | SSL_OP_NO_TICKET);
  if (SSL_CTX_set_cipher_list(raw, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(raw, kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(raw, "X25519:P-256") != 1) {
    return InternalError("internal error", "TLS policy rejected: " + OpenSslError());
  }
  SSL_CTX_set_alpn_select_cb(raw, SelectHttp11, nullptr);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(raw, reinterpret_cast<const unsigned char*>("kura"), 4);
  if (SSL_CTX_use_certificate_chain_file(raw, certificate_chain.c_str()) != 1) {
    return InvalidArgumentError("cannot load TLS certificate " + certificate_chain.string() + ": " +
                                OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return InvalidArgumentError("cannot load TLS private key " + private_key.string() + ": " +
                                OpenSslError());
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return InvalidArgumentError("TLS private key does not match the certificate");
  }
  return ctx;
}

}  // namespace kura::http
