// `lazysnap bench [ARGS...]`: runs the cold-start benchmark harness, bench/coldstart/coldstart.py
// (Python 3 from Debian, matplotlib for the charts), with ARGS passed through unchanged
// (`lazysnap bench --help` shows the harness's own help). The harness is found from
// $LAZYSNAP_BENCH_DIR, else the source tree the running binary was built in (a parent directory
// of the binary holding bench/coldstart/coldstart.py), else /usr/share/lazysnap/bench/coldstart.
// The build directory defaults to the one the binary is in (LAZYSNAP_BUILD_DIR, if unset).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cmd/lazysnap/commands.h"

namespace lazysnap::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kScript[] = "bench/coldstart/coldstart.py";

std::string FindHarness(const fs::path& exe) {
  if (const char* dir = std::getenv("LAZYSNAP_BENCH_DIR"); dir != nullptr && *dir != '\0') {
    return (fs::path(dir) / "coldstart.py").string();
  }
  std::error_code ec;
  for (fs::path d = exe.parent_path(); !d.empty(); d = d.parent_path()) {
    if (fs::exists(d / kScript, ec)) return (d / kScript).string();
    if (d == d.parent_path()) break;
  }
  return "/usr/share/lazysnap/bench/coldstart/coldstart.py";
}

int RunBench(const std::vector<std::string>& args) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::string script = FindHarness(exe);
  if (!fs::exists(script, ec)) {
    return ReportError(absl::NotFoundError(
        "the benchmark harness (bench/coldstart/coldstart.py) was not found; set "
        "LAZYSNAP_BENCH_DIR to its directory"));
  }
  // The binary is BUILD/cmd/lazysnap: the harness uses that build's lazysnapd and shaper.
  if (!exe.empty() && std::getenv("LAZYSNAP_BUILD_DIR") == nullptr) {
    setenv("LAZYSNAP_BUILD_DIR", exe.parent_path().parent_path().c_str(), 1);
  }
  // Debian's python3 (with python3-matplotlib), not whatever python3 comes first in PATH.
  std::string python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  std::vector<std::string> argv_s = {python, script};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  execvp(argv[0], argv.data());
  return ReportError(absl::InternalError(
      std::string("cannot run ") + python + ": " + std::strerror(errno)));
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandBody* run) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Run the cold-start benchmark (bench/coldstart): overlayfs vs lazysnap modes, registry "
      "behind a shaped link; `lazysnap bench --help` for its options. Needs root.");
  cmd->set_help_flag();  // --help goes to the harness
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->callback([cmd, run] {
    std::vector<std::string> args = cmd->remaining();
    *run = [args] { return RunBench(args); };
  });
}

}  // namespace lazysnap::cli
