// Minimal leveled logging to stderr. Thread-safe; one line per call. Debian 12's abseil
// (20220623) predates absl/log, so lazysnap carries this small replacement.
#ifndef LAZYSNAP_BASE_LOG_H_
#define LAZYSNAP_BASE_LOG_H_

#include <string_view>

#include "base/strings.h"

namespace lazysnap {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default kInfo.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Parses "debug", "info", "warn"/"warning", "error".
bool ParseLogLevel(std::string_view name, LogLevel* level);
void LogLine(LogLevel level, std::string_view message);

}  // namespace lazysnap

#define LZ_LOG(level, ...)                                                               \
  do {                                                                                   \
    if (::lazysnap::LogEnabled(::lazysnap::LogLevel::level))                             \
      ::lazysnap::LogLine(::lazysnap::LogLevel::level, ::lazysnap::StrCat(__VA_ARGS__));     \
  } while (0)

#endif  // LAZYSNAP_BASE_LOG_H_
