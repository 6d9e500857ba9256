// The security headers every response carries (DESIGN.md non-negotiables), added in one place.
#pragma once

#include "kura/http/types.h"

namespace kura::http {

// The API's Content-Security-Policy; handlers serving pages may set their own before returning.
inline constexpr std::string_view kApiContentSecurityPolicy =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

// Adds HSTS, CSP (unless the handler set one), nosniff, Referrer-Policy, X-Frame-Options,
// COOP, CORP, Permissions-Policy and, unless the handler chose a cache policy, no-store.
// Removes any Server header.
void AddSecurityHeaders(Response& response);

}  // namespace kura::http
