// hosts.toml against real docker-registries: TLS with a CA the test makes (ca, skip_verify),
// and a second docker-registry as a pull-through mirror, with fallback to the origin.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "base/digest.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap::registry {
namespace {

using testing::RegistryConfig;
using testing::RegistryProcess;
using testing::RunCommand;
using testing::TempDir;

class HostsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    transport_ = std::move(CurlTransport::Create()).value();
  }
  std::string Path(std::string_view name) { return StrCat(dir_->path(), "/", name); }
  void WriteHostsToml(const std::string& domain, const std::string& text) {
    std::filesystem::create_directories(Path("certs.d/" + domain));
    ASSERT_TRUE(WriteFileAtomically(Path("certs.d/" + domain + "/hosts.toml"), text).ok());
  }
  std::unique_ptr<RegistryClient> Client() {
    ClientOptions o;
    o.hosts_dir = Path("certs.d");
    o.retry.deadline = absl::Seconds(5);
    o.retry.attempt_timeout = absl::Seconds(2);
    return std::make_unique<RegistryClient>(transport_.get(), nullptr, o);
  }

  void MakeCa() {
    ASSERT_TRUE(RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=lazysnap-test-ca", "-keyout", Path("ca.key"), "-out",
                            Path("ca.pem")})
                    .ok());
  }
  // NAME.key and NAME.pem signed by the CA, with `ext` (an openssl extension file's text).
  void MakeCert(const std::string& name, const std::string& subject, const std::string& ext) {
    ASSERT_TRUE(RunCommand({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                            "-keyout", Path(name + ".key"), "-out", Path(name + ".csr")})
                    .ok());
    ASSERT_TRUE(WriteFileAtomically(Path(name + ".ext"), ext).ok());
    ASSERT_TRUE(RunCommand({"openssl", "x509", "-req", "-in", Path(name + ".csr"), "-CA",
                            Path("ca.pem"), "-CAkey", Path("ca.key"), "-CAcreateserial", "-days",
                            "1", "-extfile", Path(name + ".ext"), "-out", Path(name + ".pem")})
                    .ok());
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<CurlTransport> transport_;
};

TEST_F(HostsIntegrationTest, TlsWithTestCa) {
  // A CA and a server certificate for 127.0.0.1 signed by it.
  MakeCa();
  MakeCert("srv", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n");
  std::filesystem::create_directories(Path("reg"));
  RegistryConfig cfg;
  cfg.tls_cert = Path("srv.pem");
  cfg.tls_key = Path("srv.key");
  auto reg = RegistryProcess::Start(cfg, Path("reg"));
  ASSERT_TRUE(reg.ok()) << reg.status();
  const std::string host = (*reg)->host();
  Reference ref = *Reference::Parse(StrCat(host, "/secure/app:1"));
  std::string blob(300000, 's');

  // Without hosts.toml a loopback registry is spoken to in plain HTTP: that fails.
  EXPECT_FALSE(Client()->PushBlob(ref, blob).ok());
  // HTTPS without the CA: verification fails, and that is not retried until the deadline.
  WriteHostsToml(host, StrCat("server = \"https://", host, "\"\n"));
  absl::Time start = absl::Now();
  auto unverified = Client()->PushBlob(ref, blob);
  EXPECT_TRUE(absl::IsFailedPrecondition(unverified.status())) << unverified.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  // With the CA (a path relative to the hosts.toml directory is resolved there).
  ASSERT_TRUE(
      WriteFileAtomically(Path("certs.d/" + host + "/ca.pem"), *ReadFileToString(Path("ca.pem")))
          .ok());
  WriteHostsToml(host, StrCat("server = \"https://", host, "\"\nca = \"ca.pem\"\n"));
  auto client = Client();
  auto d = client->PushBlob(ref, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = std::move(client->OpenBlob(ref, d->digest)).value();
  std::string buf(64, '\0');
  ASSERT_TRUE(src->ReadAt(1000, absl::MakeSpan(buf)).ok());
  EXPECT_EQ(buf, blob.substr(1000, 64));
  EXPECT_EQ(src->last_http_version(), 2) << "docker-registry speaks HTTP/2 over TLS";
  // Parallel reads multiplexed over the pool.
  std::vector<std::thread> readers;
  std::atomic<int> bad{0};
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string b(1000, '\0');
        uint64_t off = static_cast<uint64_t>(t * 20000 + i * 1500);
        if (!src->ReadAt(off, absl::MakeSpan(b)).ok() || b != blob.substr(off, 1000)) ++bad;
      }
    });
  }
  for (auto& th : readers) th.join();
  EXPECT_EQ(bad.load(), 0);
  // skip_verify instead of the CA.
  WriteHostsToml(host, StrCat("server = \"https://", host, "\"\nskip_verify = true\n"));
  auto insecure = Client()->FetchBlob(ref, d->digest, blob.size());
  ASSERT_TRUE(insecure.ok()) << insecure.status();
  EXPECT_TRUE(*insecure == blob);
}

TEST_F(HostsIntegrationTest, ClientCertificates) {
  MakeCa();
  MakeCert("srv", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n");
  MakeCert("client", "/CN=lazysnap-client", "extendedKeyUsage=clientAuth\n");
  std::filesystem::create_directories(Path("reg"));
  RegistryConfig cfg;
  cfg.tls_cert = Path("srv.pem");
  cfg.tls_key = Path("srv.key");
  cfg.tls_client_ca = Path("ca.pem");
  auto reg = RegistryProcess::Start(cfg, Path("reg"));
  ASSERT_TRUE(reg.ok()) << reg.status();
  const std::string host = (*reg)->host();
  Reference ref = *Reference::Parse(StrCat(host, "/mtls/app:1"));
  WriteHostsToml(host, StrCat("server = \"https://", host, "\"\nca = \"", Path("ca.pem"), "\"\n"));
  EXPECT_FALSE(Client()->PushBlob(ref, "no client certificate").ok());
  WriteHostsToml(
      host, StrCat("server = \"https://", host, "\"\nca = \"", Path("ca.pem"), "\"\nclient = [[\"",
                   Path("client.pem"), "\", \"", Path("client.key"), "\"]]\n"));
  auto client = Client();
  auto d = client->PushBlob(ref, "with a client certificate");
  ASSERT_TRUE(d.ok()) << d.status();
  auto back = client->FetchBlob(ref, d->digest, 100);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "with a client certificate");
}

TEST_F(HostsIntegrationTest, PullThroughMirrorThenFallbackToOrigin) {
  std::filesystem::create_directories(Path("origin"));
  std::filesystem::create_directories(Path("mirror"));
  auto origin = std::move(RegistryProcess::Start({}, Path("origin"))).value();
  RegistryConfig mcfg;
  mcfg.proxy_remote_url = StrCat("http://", origin->host());
  auto mirror = RegistryProcess::Start(mcfg, Path("mirror"));
  ASSERT_TRUE(mirror.ok()) << mirror.status();
  const std::string domain = origin->host();
  WriteHostsToml(domain,
                 StrCat("server = \"http://", domain, "\"\n\n[host.\"http://", (*mirror)->host(),
                        "\"]\n  capabilities = [\"pull\", \"resolve\"]\n"));
  auto client = Client();
  auto eps = client->Endpoints(domain, kCapPull);
  ASSERT_TRUE(eps.ok());
  ASSERT_EQ(eps->size(), 2u);
  EXPECT_EQ((*eps)[0].host, (*mirror)->host());

  Reference ref = *Reference::Parse(StrCat(domain, "/library/app:1"));
  std::string blob(500000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 31 + i / 7);
  auto d = client->PushBlob(ref, blob);  // push goes to the origin (the mirror cannot push)
  ASSERT_TRUE(d.ok()) << d.status();
  std::string hex = d->digest.Hex();
  std::string cached = Path(StrCat("mirror/storage/docker/registry/v2/blobs/sha256/",
                                   hex.substr(0, 2), "/", hex, "/data"));
  struct stat st;
  EXPECT_NE(::stat(cached.c_str(), &st), 0);

  auto src = std::move(client->OpenBlob(ref, d->digest)).value();
  std::string buf(4096, '\0');
  ASSERT_TRUE(src->ReadAt(10000, absl::MakeSpan(buf)).ok());
  EXPECT_TRUE(buf == blob.substr(10000, 4096));
  // The read went through the mirror, which now holds the blob.
  absl::Time until = absl::Now() + absl::Seconds(5);
  while (::stat(cached.c_str(), &st) != 0 && absl::Now() < until)
    absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(::stat(cached.c_str(), &st), 0) << "mirror did not serve the read";

  // With the mirror gone, the same source and a new client fall back to the origin.
  (*mirror)->Stop();
  ASSERT_TRUE(src->ReadAt(20000, absl::MakeSpan(buf)).ok());
  EXPECT_TRUE(buf == blob.substr(20000, 4096));
  auto fresh = Client();
  auto whole = fresh->FetchBlob(ref, d->digest, blob.size());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == blob);
}

}  // namespace
}  // namespace lazysnap::registry
