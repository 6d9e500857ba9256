// Self-signed TLS certificates for first start: ECDSA P-256, SANs for the local names.
// Thread-safe free function.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kura/base/status.h"

namespace kura::crypto {

struct SelfSignedRequest {
  std::string common_name = "localhost";
  std::vector<std::string> dns_names = {"localhost"};
  std::vector<std::string> ip_addresses = {"127.0.0.1", "::1"};
  int validity_days = 365;
};

// Writes a PEM certificate (0644) and PEM PKCS#8 private key (0600); refuses to overwrite.
Status WriteSelfSignedCertificate(const SelfSignedRequest& request,
                                  const std::filesystem::path& cert_path,
                                  const std::filesystem::path& key_path);

}  // namespace kura::crypto
