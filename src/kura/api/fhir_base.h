// Where the FHIR API lives under the server's public base URL, in one place for the server, its
// handlers and the commands that build the same links (`kura fhir reindex`, `kura init`).
#pragma once

#include <string>
#include <string_view>

namespace kura::api {

inline constexpr std::string_view kFhirBasePath = "/fhir/R4";

// `public_base_url` as configured, without trailing slashes ("https://ehr.example/" and
// "https://ehr.example" name the same server).
inline std::string TrimmedPublicBase(std::string_view public_base_url) {
  while (!public_base_url.empty() && public_base_url.back() == '/') {
    public_base_url.remove_suffix(1);
  }
  return std::string(public_base_url);
}

// The FHIR base URL (e.g. https://localhost:8443/fhir/R4) of a configured public base URL.
inline std::string FhirBaseUrl(std::string_view public_base_url) {
  return TrimmedPublicBase(public_base_url) + std::string(kFhirBasePath);
}

}  // namespace kura::api
