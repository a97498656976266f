#include "registry/credentials.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include "base/stream.h"
#include "registry/credentials_helper.h"

namespace lazysnap::registry {
namespace {

// Sets or unsets an environment variable for one scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DefaultDockerConfigPathTest, FollowsTheEnvironment) {
  {
    ScopedEnv dc("DOCKER_CONFIG", "/etc/docker-cfg");
    ScopedEnv home("HOME", "/home/u");
    EXPECT_EQ(DefaultDockerConfigPath(), "/etc/docker-cfg/config.json");
  }
  {
    ScopedEnv dc("DOCKER_CONFIG", "");
    ScopedEnv home("HOME", "/home/u");
    EXPECT_EQ(DefaultDockerConfigPath(), "/home/u/.docker/config.json");
  }
  {
    // A service started without HOME: the user's passwd home (/root for root).
    ScopedEnv dc("DOCKER_CONFIG", nullptr);
    ScopedEnv home("HOME", nullptr);
    const struct passwd* pw = getpwuid(getuid());
    ASSERT_NE(pw, nullptr);
    EXPECT_EQ(DefaultDockerConfigPath(), std::string(pw->pw_dir) + "/.docker/config.json");
  }
}

TEST(NormalizeCredentialHostTest, DockerHubAliasesAndUrls) {
  EXPECT_EQ(NormalizeCredentialHost("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(NormalizeCredentialHost("registry-1.docker.io"), "docker.io");
  EXPECT_EQ(NormalizeCredentialHost("http://h:5000/x"), "h:5000");
  EXPECT_EQ(NormalizeCredentialHost("h:5000"), "h:5000");
}

// A temp dir on $PATH holding fake docker-credential-* scripts; each run appends the server
// URL it was given to <dir>/runs.
class CredentialHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazysnap-credhelper-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const char* path = std::getenv("PATH");
    path_.emplace("PATH", (dir_ + ":" + (path ? path : "/usr/bin:/bin")).c_str());
    // fake: answers per server URL, as docker-credential-helpers do.
    Script("fake", R"(url=$(cat); echo "$url" >> "$(dirname "$0")/runs"
case "$url" in
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"hubuser","Secret":"hubpass"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"idtoken"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac)");
    Script("ecr", R"(cat >/dev/null; echo '{"Username":"AWS","Secret":"ecrpass"}')");
    Script("broken", R"(cat >/dev/null; echo "error getting credentials: keychain locked" >&2; exit 3)");
    Script("garbage", R"(echo 'not json')");
    Script("slow", R"(sleep 30; echo '{"Username":"u","Secret":"s"}')");
    Script("chatty", R"(head -c 1000000 /dev/zero)");
    // Closes its output and lingers: the wait for its exit is bounded too.
    Script("lingering", R"(exec >&- 2>&-; sleep 30)");
    // gate: for blocked.example, blocks until <dir>/open exists (at most ~20 s); answers
    // "u-<url>" at once for other URLs.
    Script("gate", R"(url=$(cat); d=$(dirname "$0"); echo "$url" >> "$d/runs"
if [ "$url" = blocked.example ]; then
  i=0; while [ ! -e "$d/open" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done
fi
echo "{\"Username\":\"u-$url\",\"Secret\":\"s\"}")");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Script(const std::string& name, const std::string& body) {
    std::string p = dir_ + "/docker-credential-" + name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    std::filesystem::permissions(p, std::filesystem::perms::owner_all);
  }
  int Runs() {
    auto text = ReadFileToString(dir_ + "/runs");
    if (!text.ok()) return 0;
    return static_cast<int>(std::count(text->begin(), text->end(), '\n'));
  }
  // How many runs were given `url`.
  int RunsOf(const std::string& url) {
    auto text = ReadFileToString(dir_ + "/runs");
    if (!text.ok()) return 0;
    int n = 0;
    for (size_t at = 0; (at = text->find(url + "\n", at)) != std::string::npos; at += url.size()) {
      if (at == 0 || (*text)[at - 1] == '\n') ++n;
    }
    return n;
  }
  // Lets the gate helper's blocked runs answer.
  void OpenGate() { std::ofstream(dir_ + "/open") << "\n"; }
  // Polls `done` until it is true or 10 s pass; returns its last value.
  static bool WaitFor(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  std::string dir_;
  std::optional<ScopedEnv> path_;
};

TEST_F(CredentialHelperTest, CredHelpersAndCredsStore) {
  CredentialStore store;
  ASSERT_TRUE(store.AddDockerConfig(R"({
    "auths": {"plain.example": {"auth": "dTpw"}, "ecr.example": {"auth": "dTpw"}},
    "credHelpers": {"ecr.example": "ecr", "https://tok.example": "fake"},
    "credsStore": "fake"})").ok());
  // A static auths entry wins over credsStore; credHelpers wins over the auths entry.
  auto plain = store.Lookup("plain.example");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->username, "u");
  EXPECT_EQ(plain->password, "p");
  auto ecr = store.Lookup("ecr.example");
  ASSERT_TRUE(ecr);
  EXPECT_EQ(ecr->username, "AWS");
  EXPECT_EQ(ecr->password, "ecrpass");
  // credsStore for every other host; Docker Hub asked under its legacy URL.
  auto hub = store.Lookup("registry-1.docker.io");
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->username, "hubuser");
  EXPECT_EQ(hub->password, "hubpass");
  // "<token>": an identity token.
  auto tok = store.Lookup("tok.example");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->username, "");
  EXPECT_EQ(tok->identity_token, "idtoken");
  // Not found in the store: anonymous.
  EXPECT_FALSE(store.Lookup("other.example"));
}

TEST_F(CredentialHelperTest, AnswersAreCachedPerHost) {
  CredentialStore store;
  ASSERT_TRUE(store.AddDockerConfig(R"({"credsStore": "fake"})").ok());
  EXPECT_TRUE(store.Lookup("docker.io"));
  EXPECT_TRUE(store.Lookup("index.docker.io"));
  EXPECT_FALSE(store.Lookup("other.example"));
  EXPECT_FALSE(store.Lookup("other.example"));
  EXPECT_EQ(Runs(), 2);

  CredentialHelperOptions o;
  o.cache_ttl = absl::ZeroDuration();
  CredentialStore uncached(o);
  ASSERT_TRUE(uncached.AddDockerConfig(R"({"credsStore": "fake"})").ok());
  EXPECT_TRUE(uncached.Lookup("docker.io"));
  EXPECT_TRUE(uncached.Lookup("docker.io"));
  EXPECT_EQ(Runs(), 4);
}

// Opens the gate when it goes out of scope: declared after the futures of a test, it lets
// their threads end (and the futures' destructors return) however the test exits.
class GateOpener {
 public:
  explicit GateOpener(std::function<void()> open) : open_(std::move(open)) {}
  ~GateOpener() { open_(); }

 private:
  std::function<void()> open_;
};

TEST_F(CredentialHelperTest, ABlockedHelperRunDoesNotDelayOtherHosts) {
  CredentialHelperOptions o;
  o.timeout = absl::Seconds(60);
  CredentialStore store(o);
  ASSERT_TRUE(store.AddDockerConfig(R"({"credsStore": "gate"})").ok());
  std::future<std::optional<Credentials>> blocked, other;
  GateOpener opener([this] { OpenGate(); });
  blocked = std::async(std::launch::async, [&] { return store.Lookup("blocked.example"); });
  ASSERT_TRUE(WaitFor([&] { return RunsOf("blocked.example") == 1; }));
  // The helper for blocked.example is running and blocked; another host (same helper) is
  // answered meanwhile.
  other = std::async(std::launch::async, [&] { return store.Lookup("other.example"); });
  ASSERT_EQ(other.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_NE(blocked.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  std::optional<Credentials> c = other.get();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "u-other.example");
  OpenGate();
  c = blocked.get();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "u-blocked.example");
  EXPECT_EQ(RunsOf("blocked.example"), 1);
  EXPECT_EQ(RunsOf("other.example"), 1);
}

TEST_F(CredentialHelperTest, ConcurrentLookupsOfOneHostShareOneRun) {
  CredentialHelperOptions o;
  o.timeout = absl::Seconds(60);
  o.cache_ttl = absl::ZeroDuration();  // nothing kept: only the run in flight is shared
  CredentialStore store(o);
  ASSERT_TRUE(store.AddDockerConfig(R"({"credsStore": "gate"})").ok());
  std::future<std::optional<Credentials>> first, second;
  GateOpener opener([this] { OpenGate(); });
  first = std::async(std::launch::async, [&] { return store.Lookup("blocked.example"); });
  ASSERT_TRUE(WaitFor([&] { return RunsOf("blocked.example") == 1; }));
  second = std::async(std::launch::async, [&] { return store.Lookup("blocked.example"); });
  ASSERT_TRUE(WaitFor([&] { return store.helper_waits() == 1; }));
  OpenGate();
  std::optional<Credentials> a = first.get(), b = second.get();
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->username, "u-blocked.example");
  EXPECT_EQ(b->username, "u-blocked.example");
  EXPECT_EQ(RunsOf("blocked.example"), 1);
  // A later lookup, with nothing in flight and nothing kept, runs the helper again.
  EXPECT_TRUE(store.Lookup("blocked.example"));
  EXPECT_EQ(RunsOf("blocked.example"), 2);
  EXPECT_EQ(store.helper_waits(), 1);
}

TEST_F(CredentialHelperTest, FailuresAreClearErrors) {
  CredentialHelperOptions o;
  auto r = RunCredentialHelper("missing", "h", o);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("docker-credential-missing"), std::string::npos);

  r = RunCredentialHelper("broken", "h", o);
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("exit 3: error getting credentials: keychain locked"),
            std::string::npos)
      << r.status();

  r = RunCredentialHelper("garbage", "h", o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_EQ(r.status().message().find("not json"), std::string::npos);  // output not quoted

  o.max_output = 4096;
  r = RunCredentialHelper("chatty", "h", o);
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();

  o.timeout = absl::Milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  r = RunCredentialHelper("slow", "h", o);
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  start = std::chrono::steady_clock::now();
  r = RunCredentialHelper("lingering", "h", o);
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  r = RunCredentialHelper("../bin/sh", "h", o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
}

TEST_F(CredentialHelperTest, AFailingHelperMeansAnonymous) {
  CredentialStore store;
  ASSERT_TRUE(store.AddDockerConfig(R"({"credHelpers": {"h.example": "broken"}})").ok());
  EXPECT_FALSE(store.Lookup("h.example"));
}

TEST(CredentialStoreTest, BadHelperNamesAreRefused) {
  CredentialStore store;
  EXPECT_TRUE(absl::IsInvalidArgument(store.AddDockerConfig(R"({"credsStore": "../x"})")));
  EXPECT_TRUE(absl::IsInvalidArgument(store.AddDockerConfig(R"({"credsStore": 3})")));
  EXPECT_TRUE(
      absl::IsInvalidArgument(store.AddDockerConfig(R"({"credHelpers": {"h": "a/b"}})")));
  EXPECT_TRUE(absl::IsInvalidArgument(store.AddDockerConfig(R"({"credHelpers": []})")));
  EXPECT_TRUE(store.AddDockerConfig(R"({"credsStore": ""})").ok());  // docker: none
  EXPECT_FALSE(store.Lookup("docker.io"));
}

TEST(CredentialHelperOutputTest, Parse) {
  auto c = ParseCredentialHelperOutput(R"({"ServerURL":"h","Username":"u","Secret":"s"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "u");
  EXPECT_EQ(c->password, "s");
  c = ParseCredentialHelperOutput(R"({"Username":"<token>","Secret":"t"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_token, "t");
  EXPECT_EQ(c->password, "");
  EXPECT_FALSE(ParseCredentialHelperOutput(R"({"Username":"u"})").ok());
  EXPECT_FALSE(ParseCredentialHelperOutput(R"([1])").ok());
  EXPECT_FALSE(ParseCredentialHelperOutput("").ok());
}

}  // namespace
}  // namespace lazysnap::registry
