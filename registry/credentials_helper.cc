#include "registry/credentials_helper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/errors.h"
#include "base/strings.h"
#include "base/unique_fd.h"

extern char** environ;

namespace lazysnap::registry {
namespace {

// The first line of a helper's message, short, for an error text.
std::string FirstLine(std::string_view s) {
  s = s.substr(0, s.find('\n'));
  if (s.size() > 200) s = s.substr(0, 200);
  return std::string(s);
}

}  // namespace

bool ValidCredentialHelperName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

absl::StatusOr<Credentials> ParseCredentialHelperOutput(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("credential helper: answer is not a JSON object");
  }
  auto str = [&](const char* field) -> std::optional<std::string> {
    auto f = doc.find(field);
    if (f == doc.end() || !f->is_string()) return std::nullopt;
    return f->get<std::string>();
  };
  std::optional<std::string> secret = str("Secret");
  if (!secret) return absl::InvalidArgumentError("credential helper: answer has no Secret");
  Credentials c;
  std::string user = str("Username").value_or("");
  if (user == "<token>") {
    c.identity_token = std::move(*secret);
  } else {
    c.username = std::move(user);
    c.password = std::move(*secret);
  }
  return c;
}

absl::StatusOr<std::optional<Credentials>> RunCredentialHelper(
    std::string_view name, std::string_view server_url, const CredentialHelperOptions& options) {
  if (!ValidCredentialHelperName(name)) {
    return absl::InvalidArgumentError(StrCat("bad credential helper name '", name, "'"));
  }
  const std::string program = StrCat("docker-credential-", name);
  // stdin from a memfd: no pipe to write, so no SIGPIPE when the helper does not read it.
  UniqueFd in(::memfd_create("lazysnap-credential-url", MFD_CLOEXEC));
  if (!in.valid()) return ErrnoToStatus(errno, "memfd_create");
  if (::write(in.get(), server_url.data(), server_url.size()) !=
          static_cast<ssize_t>(server_url.size()) ||
      ::lseek(in.get(), 0, SEEK_SET) != 0) {
    return ErrnoToStatus(errno, "credential helper stdin");
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills its children too
  // No signal blocked (lazysnapd blocks its shutdown signals in every thread) and SIGPIPE
  // back to its default (a caller may ignore it).
  sigset_t none, pipe;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &pipe);
  std::string arg0 = program, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT) {
    return absl::FailedPreconditionError(StrCat("credential helper ", program, " not in $PATH"));
  }
  if (rc != 0) return ErrnoToStatus(rc, StrCat("run ", program));
  out_w.reset();
  err_w.reset();
  in.reset();

  std::string out, err;
  absl::Status failure;
  const absl::Time deadline = absl::Now() + options.timeout;
  bool out_open = true, err_open = true;
  while ((out_open || err_open) && failure.ok()) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      failure = absl::DeadlineExceededError(
          StrCat(program, " get: no answer in ", absl::FormatDuration(options.timeout)));
      break;
    }
    pollfd fds[2] = {{out_open ? out_r.get() : -1, POLLIN, 0},
                     {err_open ? err_r.get() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (n < 0 && errno != EINTR) {
      failure = ErrnoToStatus(errno, "poll");
      break;
    }
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      std::string& dst = i == 0 ? out : err;
      if (i == 1 && dst.size() > 4096) continue;  // stderr: keep the start only
      dst.append(buf, static_cast<size_t>(r));
      if (i == 0 && out.size() > options.max_output) {
        failure = absl::ResourceExhaustedError(
            StrCat(program, " get: answer larger than ", options.max_output, " bytes"));
      }
    }
  }
  int wstatus = 0;
  bool reaped = false;
  // Both pipes closed: the helper should be exiting; it may not (a daemon child holding
  // nothing open), so the wait is bounded by the same deadline.
  while (failure.ok()) {
    const pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    if (w < 0 && errno != EINTR) {
      failure = ErrnoToStatus(errno, "waitpid");
    } else if (absl::Now() >= deadline) {
      failure = absl::DeadlineExceededError(
          StrCat(program, " get: did not exit in ", absl::FormatDuration(options.timeout)));
    } else {
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  if (!reaped) {
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  if (!failure.ok()) return failure;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    // The helpers print "credentials not found in native keychain" on stdout and exit 1.
    if (out.find("credentials not found") != std::string::npos) return std::nullopt;
    std::string why = FirstLine(!err.empty() ? err : out);
    std::string how = WIFEXITED(wstatus) ? StrCat("exit ", WEXITSTATUS(wstatus))
                                         : StrCat("signal ", WTERMSIG(wstatus));
    return absl::UnavailableError(StrCat(program, " get: ", how, why.empty() ? "" : ": ", why));
  }
  absl::StatusOr<Credentials> c = ParseCredentialHelperOutput(out);
  if (!c.ok()) return absl::Status(c.status().code(), StrCat(program, ": ", c.status().message()));
  return std::optional<Credentials>(*std::move(c));
}

}  // namespace lazysnap::registry
