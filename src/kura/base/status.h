// Status and StatusOr: errors as values across layer boundaries, shaped like Abseil's.
//
// A Status carries a code, a message that is safe to show a client (never PHI, key ids, SQL or
// paths), an optional internal detail for logs and audit, and optional structured details (an
// issue code and an element path each) that the API layer turns into OperationOutcome issues.
// Choosing a code follows absl/status/status.h: InvalidArgument for bad input regardless of state,
// FailedPrecondition for state the caller must fix, Aborted for version conflicts, DataLoss for
// integrity failures such as a failed decryption.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kura {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kAborted,
  kPermissionDenied,
  kUnauthenticated,
  kResourceExhausted,
  kUnavailable,
  kUnimplemented,
  kInternal,
  kDataLoss,
  kGone,  // The resource existed and was deleted (FHIR 410); not an Abseil code.
};

std::string_view StatusCodeName(StatusCode code);

// One problem inside an error, e.g. one invalid element of a resource. `issue_code` uses the
// FHIR IssueType vocabulary (structure, required, value, invalid, not-found, ...), `expression`
// is an element path such as "Patient.name[0].family" (empty when it does not apply).
struct StatusDetail {
  std::string issue_code;
  std::string diagnostics;
  std::string expression;
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK.
  Status(StatusCode code, std::string message, std::string internal_detail = {});

  static Status Ok() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // Client-safe message.
  const std::string& message() const;
  // Operator-facing detail for logs; never shown to a client. May be empty.
  const std::string& internal_detail() const;
  const std::vector<StatusDetail>& details() const;

  // Returns a copy with one more detail appended.
  Status WithDetail(StatusDetail detail) const&;
  Status WithDetail(StatusDetail detail) &&;

  std::string ToString() const;  // For logs and test failures.

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
    std::string internal_detail;
    std::vector<StatusDetail> details;
  };
  std::shared_ptr<const State> state_;  // Null means OK; immutable so copies are cheap.
};

Status InvalidArgumentError(std::string message, std::string internal = {});
Status NotFoundError(std::string message, std::string internal = {});
Status AlreadyExistsError(std::string message, std::string internal = {});
Status FailedPreconditionError(std::string message, std::string internal = {});
Status AbortedError(std::string message, std::string internal = {});
Status PermissionDeniedError(std::string message, std::string internal = {});
Status UnauthenticatedError(std::string message, std::string internal = {});
Status ResourceExhaustedError(std::string message, std::string internal = {});
Status UnavailableError(std::string message, std::string internal = {});
Status UnimplementedError(std::string message, std::string internal = {});
Status InternalError(std::string message, std::string internal = {});
Status DataLossError(std::string message, std::string internal = {});
Status GoneError(std::string message, std::string internal = {});

// StatusOr<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : value_(status) { EnsureNotOk(); }   // NOLINT: implicit
  StatusOr(Status&& status) : value_(std::move(status)) { EnsureNotOk(); }  // NOLINT
  StatusOr(const T& value) : value_(value) {}                         // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}                   // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, StatusOr>)
  StatusOr(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  Status status() const { return ok() ? Status() : std::get<Status>(value_); }

  // Precondition: ok().
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void EnsureNotOk() {
    if (std::get<Status>(value_).ok()) {
      value_ = Status(StatusCode::kInternal, "internal error", "StatusOr built from OK status");
    }
  }
  std::variant<Status, T> value_;
};

}  // namespace kura

#define KURA_STATUS_CONCAT_INNER(a, b) a##b
#define KURA_STATUS_CONCAT(a, b) KURA_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define KURA_RETURN_IF_ERROR(expr)                    \
  do {                                                \
    ::kura::Status kura_status_tmp_ = (expr);         \
    if (!kura_status_tmp_.ok()) return kura_status_tmp_; \
  } while (0)

// `KURA_ASSIGN_OR_RETURN(auto x, Foo());` declares x from a StatusOr or returns its Status.
#define KURA_ASSIGN_OR_RETURN(lhs, expr) \
  KURA_ASSIGN_OR_RETURN_IMPL(KURA_STATUS_CONCAT(kura_statusor_, __LINE__), lhs, expr)
#define KURA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

// Crashes on a broken invariant (never on untrusted input or the environment).
#define KURA_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) ::kura::internal_check::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace kura::internal_check {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}
