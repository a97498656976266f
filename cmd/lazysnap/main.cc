// lazysnap: the command-line tool (image conversion now; pulls, traces, cache and status
// later). See commands.h for how subcommands are wired.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "base/log.h"
#include "base/strings.h"
#include "cmd/lazysnap/commands.h"

#ifndef LAZYSNAP_VERSION
#define LAZYSNAP_VERSION "0.0.0-dev"
#endif

namespace lazysnap::cli {

int ReportError(const absl::Status& status, bool usage) {
  std::fprintf(stderr, "lazysnap: error: %s\n", std::string(status.message()).c_str());
  return usage ? kExitUsage : kExitRuntimeError;
}

namespace {

int Main(int argc, char** argv) {
  CLI::App app("lazysnap: make container images seekable for lazy pulling, and inspect "
               "lazysnapd", "lazysnap");
  app.set_version_flag("--version", StrCat("lazysnap ", LAZYSNAP_VERSION));
  app.require_subcommand(1);
  app.footer(
      "\nExamples:\n"
      "  lazysnap image convert --plain-http 127.0.0.1:5000/app:v1 127.0.0.1:5000/app:v1-esgz\n"
      "  lazysnap image optimize registry.example/app:v1 registry.example/app:v1-opt -- /start\n"
      "  lazysnap image pull registry.example/app:v1-esgz\n"
      "  lazysnap COMMAND --help\n"
      "Exit status (every command): 0 done, 1 failed, 2 bad arguments. Results on stdout (-q: "
      "none,\n--json: one JSON document), progress, warnings and errors on stderr. docs/cli.md.");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->capture_default_str();

  CommandBody run;
  CLI::App* image = app.add_subcommand("image", "Work with container images");
  image->require_subcommand(1);
  image->footer(
      "\nExamples:\n"
      "  lazysnap image convert --oci-layout ./img:v1 ./img:v1-estargz\n"
      "  lazysnap image optimize --plain-http 127.0.0.1:5000/py:3 127.0.0.1:5000/py:3-opt \\\n"
      "      -- python3 -c 'print(1)'\n"
      "  lazysnap image pull --plain-http 127.0.0.1:5000/py:3-opt\n"
      "Exit status: 0 done, 1 failed, 2 bad arguments.");
  AddImageConvertCommand(*image, &run);
  AddImagePullCommand(*image, &run);
  AddImageOptimizeCommand(*image, &run);
  AddMountCommand(app, &run);
  AddBenchCommand(app, &run);
  AddTraceCommand(app, &run);

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and a hint
    return kExitUsage;
  }
  LogLevel level;
  if (!ParseLogLevel(log_level, &level)) {
    return ReportError(absl::InvalidArgumentError(StrCat("bad --log-level '", log_level, "'")),
                       /*usage=*/true);
  }
  SetLogLevel(level);
  if (!run) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  return run();
}

}  // namespace
}  // namespace lazysnap::cli

int main(int argc, char** argv) { return lazysnap::cli::Main(argc, argv); }
