// Status implementation and the named constructors.
#include "kura/base/status.h"

#include <cstdio>
#include <cstdlib>

namespace kura {
namespace {
const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}
const std::vector<StatusDetail>& EmptyDetails() {
  static const auto* empty = new std::vector<StatusDetail>();
  return *empty;
}
}  // namespace

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kGone: return "GONE";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string message, std::string internal_detail) {
  if (code == StatusCode::kOk) return;
  state_ = std::make_shared<const State>(
      State{code, std::move(message), std::move(internal_detail), {}});
}

const std::string& Status::message() const { return state_ ? state_->message : EmptyString(); }
const std::string& Status::internal_detail() const {
  return state_ ? state_->internal_detail : EmptyString();
}
const std::vector<StatusDetail>& Status::details() const {
  return state_ ? state_->details : EmptyDetails();
}

Status Status::WithDetail(StatusDetail detail) const& {
  Status copy = *this;
  return std::move(copy).WithDetail(std::move(detail));
}

Status Status::WithDetail(StatusDetail detail) && {
  if (!state_) return *this;  // Details on OK make no sense; stay OK.
  State next = *state_;
  next.details.push_back(std::move(detail));
  state_ = std::make_shared<const State>(std::move(next));
  return std::move(*this);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  out += ": ";
  out += message();
  if (!internal_detail().empty()) {
    out += " [";
    out += internal_detail();
    out += "]";
  }
  for (const auto& d : details()) {
    out += " {" + d.issue_code + " " + d.expression + ": " + d.diagnostics + "}";
  }
  return out;
}

#define KURA_DEFINE_ERROR(Name, Code)                              \
  Status Name(std::string message, std::string internal) {        \
    return Status(StatusCode::Code, std::move(message), std::move(internal)); \
  }
KURA_DEFINE_ERROR(InvalidArgumentError, kInvalidArgument)
KURA_DEFINE_ERROR(NotFoundError, kNotFound)
KURA_DEFINE_ERROR(AlreadyExistsError, kAlreadyExists)
KURA_DEFINE_ERROR(FailedPreconditionError, kFailedPrecondition)
KURA_DEFINE_ERROR(AbortedError, kAborted)
KURA_DEFINE_ERROR(PermissionDeniedError, kPermissionDenied)
KURA_DEFINE_ERROR(UnauthenticatedError, kUnauthenticated)
KURA_DEFINE_ERROR(ResourceExhaustedError, kResourceExhausted)
KURA_DEFINE_ERROR(UnavailableError, kUnavailable)
KURA_DEFINE_ERROR(UnimplementedError, kUnimplemented)
KURA_DEFINE_ERROR(InternalError, kInternal)
KURA_DEFINE_ERROR(DataLossError, kDataLoss)
KURA_DEFINE_ERROR(GoneError, kGone)
#undef KURA_DEFINE_ERROR

namespace internal_check {
void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "{\"level\":\"fatal\",\"event\":\"check_failed\",\"condition\":\"%s\","
               "\"file\":\"%s\",\"line\":%d}\n", condition, file, line);
  std::abort();
}
}  // namespace internal_check

}  // namespace kura
