// `lazysnap image optimize SRC DST -- CMD...`: runs a workload from the image with its file
// opens recorded (image/optimize.h), then converts the image with those files first in each
// layer, in first-open order, and the prefetch landmark after them.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/convert_flags.h"
#include "image/optimize.h"

namespace lazysnap::cli {
namespace {

struct OptimizeFlags {
  ConvertFlags convert;
  std::vector<std::string> command;
  double timeout_seconds = 60;
  std::string wait_for;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  bool print_files = false;
};

nlohmann::ordered_json RecordingJson(const Recording& r) {
  const WorkloadResult& w = r.workload;
  nlohmann::ordered_json j = {
      {"command", r.argv},
      {"exitCode", w.exit_code},
      {"signal", w.signal},
      {"timedOut", w.timed_out},
      {"sawWaitFor", w.saw_wait_for},
      {"unpackSeconds", absl::ToDoubleSeconds(r.unpack_time)},
      {"runSeconds", absl::ToDoubleSeconds(r.run_time)},
      {"filesOpened", w.files.size()},
      {"events", w.events},
      {"eventsLost", w.overflow},
  };
  return j;
}

int Run(const OptimizeFlags& f) {
  auto options = BuildConvertOptions(f.convert);
  if (!options.ok()) return ReportError(options.status(), /*usage=*/true);
  for (const auto& e : f.env) {
    if (e.find('=') == std::string::npos || e.front() == '=') {
      return ReportError(absl::InvalidArgumentError(StrCat("--env ", e, ": want KEY=VALUE")), true);
    }
  }
  if (::geteuid() != 0) {
    return ReportError(absl::PermissionDeniedError(
        "image optimize runs the workload in a chroot with a private mount and PID namespace: "
        "it needs root"));
  }
  // First, while this process has one thread: the run's mounts stay private to it.
  if (absl::Status s = EnterPrivateMountNamespace(); !s.ok()) return ReportError(s);
  int exit_code = kExitOk;
  std::unique_ptr<OpenedImages> images = OpenImages(f.convert, &exit_code);
  if (images == nullptr) return exit_code;

  RecordOptions record;
  if (!options->platforms.empty()) record.platform = options->platforms[0];
  record.workload.argv = f.command;
  record.workload.env = f.env;
  record.workload.workdir = f.workdir;
  record.workload.user = f.user;
  if (f.timeout_seconds > 0) record.workload.timeout = absl::Seconds(f.timeout_seconds);
  record.workload.wait_for = f.wait_for;
  record.workload.output_fd = f.convert.quiet ? -1 : STDERR_FILENO;
  record.temp_dir = f.convert.temp_dir;
  auto rec = RecordImageWorkload(images->stores->src(), images->src.tag, record);
  if (!rec.ok()) return ReportError(rec.status());
  const WorkloadResult& w = rec->workload;
  if (rec->files.empty()) {
    return ReportError(absl::FailedPreconditionError(
        StrCat("the workload opened no file of the image (exit status ", w.exit_code,
               w.signal ? StrCat(", signal ", w.signal) : "", "); nothing to optimize")));
  }
  if (!f.convert.quiet) {
    std::string how = w.timed_out      ? "killed at --timeout"
                      : w.saw_wait_for ? "stopped at --wait-for"
                      : w.signal       ? StrCat("killed by signal ", w.signal)
                                       : StrCat("exited with status ", w.exit_code);
    std::fprintf(stderr,
                 "lazysnap: workload %s; %zu files of the image recorded (unpacked in %.1f s, "
                 "ran %.1f s)\n",
                 how.c_str(), rec->files.size(), absl::ToDoubleSeconds(rec->unpack_time),
                 absl::ToDoubleSeconds(rec->run_time));
    if (w.overflow) std::fprintf(stderr, "lazysnap: warning: fanotify events were lost\n");
  }
  if (!f.wait_for.empty() && !w.saw_wait_for && !f.convert.quiet) {
    std::fprintf(stderr, "lazysnap: warning: the workload never printed --wait-for \"%s\"\n",
                 f.wait_for.c_str());
  }
  // Files named by --prioritize-file/--prioritize-list first, then the recorded ones.
  std::vector<std::string>& prio = options->layer.prioritized_files;
  for (const auto& p : rec->files) {
    if (std::find(prio.begin(), prio.end(), p) == prio.end()) prio.push_back(p);
  }
  nlohmann::ordered_json extra = {{"optimize", RecordingJson(*rec)}, {"prioritizedFiles", prio}};
  int rc = ConvertAndReport(f.convert, *images, *options, extra, /*summary=*/!f.print_files);
  if (rc == kExitOk && f.print_files && !f.convert.json) {
    for (const auto& p : prio) std::printf("%s\n", p.c_str());
  }
  return rc;
}

}  // namespace

void AddImageOptimizeCommand(CLI::App& image, CommandBody* run) {
  auto flags = std::make_shared<OptimizeFlags>();
  CLI::App* cmd = image.add_subcommand(
      "optimize",
      "Run a workload from the image with its file opens recorded, then convert the image\n"
      "(as `image convert`) with the files it opened first in each layer, in first-open\n"
      "order, followed by the prefetch landmark: what the workload needs at startup is then\n"
      "one range per layer, prefetched as one request. The workload runs as the image's User\n"
      "(root if none), chrooted into the unpacked image (in --temp-dir), in its own PID\n"
      "namespace with /proc, /dev and /sys; CMD defaults to the image's Entrypoint + Cmd, with\n"
      "its Env and WorkingDir. Its output goes to stderr. Needs root.");
  cmd->footer(
      "\nExamples:\n"
      "  lazysnap image optimize registry.example/app:v1 registry.example/app:v1-opt\n"
      "  lazysnap image optimize --plain-http 127.0.0.1:5000/python:3 127.0.0.1:5000/python:3-opt"
      " \\\n      -- python3 -c 'print(\"hello\")'\n"
      "  lazysnap image optimize --wait-for 'listening on' --timeout 120 --env PORT=8080 \\\n"
      "      oci:./img:v1 oci:./img:v1-opt\n"
      "  lazysnap image optimize --print-files --oci-layout ./img:v1 ./img:v1-opt -- /app/start\n"
      "Exit status: 0 optimized, 1 failed (also when the workload opened no file of the image),\n"
      "2 bad arguments. A workload that exits non-zero or is killed at --timeout still counts.");
  AddConvertFlags(*cmd, &flags->convert, /*optimize=*/true);
  cmd->add_option("CMD", flags->command,
                  "the workload, after \"--\" (default: the image's Entrypoint + Cmd)");
  cmd->add_option("--timeout", flags->timeout_seconds,
                  "seconds the workload may run before it is killed (what it opened until then "
                  "counts); 0: no limit")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_option("--wait-for", flags->wait_for,
                  "stop recording and kill the workload when its output contains this string "
                  "(e.g. a server's 'ready' line)");
  cmd->add_option("--env", flags->env, "KEY=VALUE for the workload (repeatable; adds to or "
                                       "replaces the image's Env)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--workdir", flags->workdir,
                  "working directory of the workload (default: the image's WorkingDir, else /)");
  cmd->add_option("--user", flags->user,
                  "USER[:GROUP] the workload runs as, numeric or names from the image's "
                  "/etc/passwd and /etc/group (default: the image's User, else root)");
  cmd->add_flag("--print-files", flags->print_files,
                "print the prioritized files on stdout, one a line, in order, instead of the "
                "summary (--json has them as \"prioritizedFiles\")");
  cmd->callback([flags, run] { *run = [flags] { return Run(*flags); }; });
}

}  // namespace lazysnap::cli
