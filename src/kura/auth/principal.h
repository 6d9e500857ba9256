// Principal: who is making a request, as every layer above auth sees it.
#pragma once

#include <string>

namespace kura::auth {

struct Principal {
  std::string kind;     // "api-token" now; "account" and "oauth-client" plug in later.
  std::string subject;  // Stable, non-secret identifier (e.g. the token's name).
  std::string role;     // e.g. "system-admin".
};

inline constexpr std::string_view kSystemAdminRole = "system-admin";

}  // namespace kura::auth
