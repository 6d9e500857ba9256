// The one place that maps a Status to an HTTP status and an OperationOutcome body, and builds
// FHIR responses. Client-facing text is the Status message only; internal details go to the log.
#pragma once

#include <string>
#include <string_view>

#include "kura/base/status.h"
#include "kura/fhir/json.h"
#include "kura/http/types.h"

namespace kura::api {

inline constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";

http::HttpStatus HttpStatusFor(StatusCode code);

// An OperationOutcome response for `status`; logs 5xx with the internal detail and request id.
http::Response ErrorResponse(const Status& status, const http::RequestContext& ctx);
// For errors the HTTP layer finds itself (no route, limits, exceptions).
http::Response HttpLayerError(http::HttpStatus status, std::string_view message,
                              unsigned version, bool keep_alive);

http::Response JsonResponse(http::HttpStatus status, std::string body, unsigned version,
                            bool keep_alive);

}  // namespace kura::api
