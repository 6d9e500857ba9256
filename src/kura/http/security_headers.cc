// Security headers.
#include "kura/http/security_headers.h"

namespace kura::http {

void AddSecurityHeaders(Response& response) {
  response.set(beast_http::field::strict_transport_security,
               "max-age=63072000; includeSubDomains");
  if (response.find("Content-Security-Policy") == response.end()) {
    response.set("Content-Security-Policy", kApiContentSecurityPolicy);
  }
  response.set("X-Content-Type-Options", "nosniff");
  response.set("Referrer-Policy", "no-referrer");
  response.set("X-Frame-Options", "DENY");
  response.set("Cross-Origin-Opener-Policy", "same-origin");
  response.set("Cross-Origin-Resource-Policy", "same-origin");
  response.set("Permissions-Policy",
               "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
               "microphone=(), payment=(), usb=()");
  if (response.find(beast_http::field::cache_control) == response.end()) {
    response.set(beast_http::field::cache_control, "no-store");
  }
  response.erase(beast_http::field::server);
}

}  // namespace kura::http
