#include "kura/crypto/certificate.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

namespace kura::crypto {
namespace {

TEST(CertificateTest, WritesP256CertWithSansAndPrivateKey) {
  auto dir = std::filesystem::temp_directory_path() / ("kura-cert-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteSelfSignedCertificate({}, dir / "cert.pem", dir / "key.pem").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  FILE* f = std::fopen((dir / "cert.pem").c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_host(cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), 256);
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  X509_free(cert);
  EXPECT_FALSE(WriteSelfSignedCertificate({}, dir / "cert.pem", dir / "key.pem").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kura::crypto
