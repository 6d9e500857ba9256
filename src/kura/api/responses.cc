// Status -> HTTP mapping and response builders.
#include "kura/api/responses.h"

#include "kura/base/log.h"
#include "kura/fhir/resource.h"

namespace kura::api {

http::HttpStatus HttpStatusFor(StatusCode code) {
  using S = http::HttpStatus;
  switch (code) {
    case StatusCode::kOk: return S::ok;
    case StatusCode::kInvalidArgument: return S::bad_request;
    case StatusCode::kNotFound: return S::not_found;
    case StatusCode::kGone: return S::gone;
    case StatusCode::kAlreadyExists: return S::conflict;
    case StatusCode::kAborted: return S::conflict;
    case StatusCode::kFailedPrecondition: return S::precondition_failed;
    case StatusCode::kPermissionDenied: return S::forbidden;
    case StatusCode::kUnauthenticated: return S::unauthorized;
    case StatusCode::kResourceExhausted: return S::too_many_requests;
    case StatusCode::kUnimplemented: return S::not_implemented;
    case StatusCode::kUnavailable: return S::service_unavailable;
    case StatusCode::kInternal: return S::internal_server_error;
    case StatusCode::kDataLoss: return S::internal_server_error;
  }
  return S::internal_server_error;
}

http::Response JsonResponse(http::HttpStatus status, std::string body, unsigned version,
                            bool keep_alive) {
  http::Response r{status, version};
  r.set(http::beast_http::field::content_type, kFhirJson);
  r.keep_alive(keep_alive);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

http::Response ErrorResponse(const Status& status, const http::RequestContext& ctx) {
  http::HttpStatus code = HttpStatusFor(status.code());
  if (static_cast<unsigned>(code) >= 500) {
    log::Error("request_failed", {{"request_id", ctx.request_id},
                                  {"route", ctx.route},
                                  {"code", StatusCodeName(status.code())},
                                  {"detail", status.internal_detail()}});
  }
  // Internal errors never echo internal text; DataLoss keeps its single "decryption failed".
  Status external = status;
  if (status.code() == StatusCode::kInternal) external = InternalError("internal error");
  http::Response r = JsonResponse(code, fhir::SerializeJson(fhir::OperationOutcomeFor(external)),
                                  ctx.request.version(), ctx.request.keep_alive());
  if (status.code() == StatusCode::kUnauthenticated) {
    bool presented = ctx.request.find(http::beast_http::field::authorization) !=
                     ctx.request.end();
    r.set(http::beast_http::field::www_authenticate,
          presented ? "Bearer realm=\"kura\", error=\"invalid_token\"" : "Bearer realm=\"kura\"");
  }
  return r;
}

http::Response HttpLayerError(http::HttpStatus status, std::string_view message,
                              unsigned version, bool keep_alive) {
  StatusCode code = StatusCode::kInvalidArgument;
  switch (status) {
    case http::HttpStatus::not_found: code = StatusCode::kNotFound; break;
    case http::HttpStatus::payload_too_large:
    case http::HttpStatus::request_header_fields_too_large:
      code = StatusCode::kResourceExhausted;
      break;
    case http::HttpStatus::method_not_allowed: code = StatusCode::kUnimplemented; break;
    case http::HttpStatus::internal_server_error: code = StatusCode::kInternal; break;
    default: break;
  }
  fhir::Json oo = fhir::OperationOutcomeFor(Status(code, std::string(message)));
  if (status == http::HttpStatus::payload_too_large ||
      status == http::HttpStatus::request_header_fields_too_large) {
    oo["issue"][0]["code"] = "too-long";
  }
  return JsonResponse(status, fhir::SerializeJson(oo), version, keep_alive);
}

}  // namespace kura::api
