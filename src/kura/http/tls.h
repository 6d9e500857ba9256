// TLS policy for the HTTPS listener: TLS 1.2 and 1.3 only; in 1.2 only ECDHE with AEAD ciphers;
// server cipher preference; X25519 and P-256; no compression, no renegotiation, no tickets on
// 1.2. The certificate key must be readable by the owner only.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>

#include "kura/base/status.h"

namespace kura::http {

// FailedPrecondition (naming the file) when the key is missing or group/other-accessible;
// InvalidArgument when the certificate is missing or either file does not parse or match.
StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::filesystem::path& certificate_chain, const std::filesystem::path& private_key);

}  // namespace kura::http
