// Status propagation helpers. Errors are values (absl::Status / absl::StatusOr) everywhere in
// lazysnap; these macros keep the early-return paths short.
#ifndef LAZYSNAP_BASE_STATUS_MACROS_H_
#define LAZYSNAP_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LZ_CONCAT_INNER_(a, b) a##b
#define LZ_CONCAT_(a, b) LZ_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status lz_status_ = (expr);                \
    if (!lz_status_.ok()) return lz_status_;           \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F())` declares x from F()'s value, or returns F()'s error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  LZ_ASSIGN_OR_RETURN_IMPL_(LZ_CONCAT_(lz_statusor_, __LINE__), lhs, expr)
#define LZ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // LAZYSNAP_BASE_STATUS_MACROS_H_
