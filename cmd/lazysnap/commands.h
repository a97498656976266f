// The `lazysnap` command-line tool: one file per subcommand. Each Add*Command function
// registers its subcommand (flags, help) under a parent CLI11 app and, when the subcommand is
// selected on the command line, stores the body to run in `*run`. main() parses the command
// line, then calls the body, whose return value is the process exit code. To add a command
// (`image pull`, `trace`, `cache`, ...), add a file with its Add function and call it from
// main.cc.
#ifndef LAZYSNAP_CMD_LAZYSNAP_COMMANDS_H_
#define LAZYSNAP_CMD_LAZYSNAP_COMMANDS_H_

#include <functional>
#include <string_view>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"

namespace lazysnap::cli {

// Exit codes of every command.
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntimeError = 1,  // the command ran and failed
  kExitUsage = 2,         // bad flags or arguments
};

using CommandBody = std::function<int()>;

// `lazysnap image convert` (image_convert_cmd.cc).
void AddImageConvertCommand(CLI::App& image, CommandBody* run);
// `lazysnap image pull` (image_pull_cmd.cc).
void AddImagePullCommand(CLI::App& image, CommandBody* run);
// `lazysnap image optimize` (image_optimize_cmd.cc).
void AddImageOptimizeCommand(CLI::App& image, CommandBody* run);
// `lazysnap mount` (mount_cmd.cc).
void AddMountCommand(CLI::App& app, CommandBody* run);
// `lazysnap bench` (bench_cmd.cc): runs bench/coldstart/coldstart.py.
void AddBenchCommand(CLI::App& app, CommandBody* run);
// `lazysnap trace list|show|rm|push|pull` (trace_cmd.cc).
void AddTraceCommand(CLI::App& app, CommandBody* run);

// Prints "lazysnap: error: <message>" to stderr; returns kExitUsage for InvalidArgument
// statuses raised while reading arguments (`usage` true) and kExitRuntimeError otherwise.
int ReportError(const absl::Status& status, bool usage = false);

}  // namespace lazysnap::cli

#endif  // LAZYSNAP_CMD_LAZYSNAP_COMMANDS_H_
