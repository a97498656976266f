#include "cmd/lazysnap/convert_stores.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap::cli {
namespace {

std::string DefaultDockerConfig() {
  if (const char* d = std::getenv("DOCKER_CONFIG"); d != nullptr && *d != '\0') {
    return StrCat(d, "/config.json");
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return StrCat(h, "/.docker/config.json");
  }
  return "";
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::StatusOr<ImageArg> ParseImageArg(const std::string& s, bool force_layout) {
  ImageArg a;
  a.display = s;
  std::string rest = s;
  if (rest.rfind("oci:", 0) == 0) {
    rest = rest.substr(4);
    force_layout = true;
  }
  if (force_layout) {
    // "DIR[:TAG]", split at the first colon as skopeo's oci: transport does.
    size_t colon = rest.find(':');
    a.layout = true;
    a.dir = rest.substr(0, colon);
    if (colon != std::string::npos) a.tag = rest.substr(colon + 1);
    if (a.dir.empty()) return absl::InvalidArgumentError(StrCat(s, ": no layout directory"));
    return a;
  }
  auto ref = registry::Reference::Parse(rest);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(StrCat(s, ": not an image reference (",
                                             ref.status().message(),
                                             "); name an OCI layout as oci:DIR[:TAG]"));
  }
  a.tag = ref->Object();
  a.ref = *std::move(ref);
  return a;
}

ConvertStores::~ConvertStores() {
  // Stores before the client they use, the client before its transport.
  src_.reset();
  dst_.reset();
  client_.reset();
  transport_.reset();
  if (!plain_hosts_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(plain_hosts_dir_, ec);
  }
}

absl::Status ConvertStores::StartClient(const ImageArg& src, const ImageArg& dst,
                                        const RegistryFlags& flags) {
  registry::ClientOptions options;
  options.hosts_dir = flags.hosts_dir;
  options.retry.deadline = absl::Seconds(flags.timeout_seconds);
  options.retry.attempt_timeout = std::min(options.retry.attempt_timeout, options.retry.deadline);
  if (flags.plain_http) {
    // A hosts dir of our own: the named registries' own hosts.toml where the user's dir has
    // one (linked), else an origin over http.
    std::string tmpl =
        StrCat(flags.temp_dir.empty() ? "/tmp" : flags.temp_dir, "/lazysnap-hosts-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(StrCat("mkdtemp: ", std::strerror(errno)));
    }
    plain_hosts_dir_ = tmpl;
    std::set<std::string> domains;
    for (const ImageArg* a : {&src, &dst}) {
      if (a->ref) domains.insert(a->ref->domain);
    }
    for (const auto& d : domains) {
      std::string own = StrCat(flags.hosts_dir, "/", d);
      std::error_code ec;
      if (!flags.hosts_dir.empty() && Exists(own + "/hosts.toml")) {
        std::filesystem::create_directory_symlink(std::filesystem::absolute(own), tmpl + "/" + d,
                                                  ec);
      } else {
        std::filesystem::create_directory(tmpl + "/" + d, ec);
        if (!ec) {
          ASSIGN_OR_RETURN(auto f, FileOutputStream::Create(StrCat(tmpl, "/", d, "/hosts.toml")));
          RETURN_IF_ERROR(f->Write(StrCat("server = \"http://", d, "\"\n")));
          RETURN_IF_ERROR(f->Close());
        }
      }
      if (ec) return absl::InternalError(StrCat("hosts dir for ", d, ": ", ec.message()));
    }
    options.hosts_dir = tmpl;
  }
  credentials_ = std::make_unique<registry::CredentialStore>();
  std::string config = flags.docker_config.empty() ? DefaultDockerConfig() : flags.docker_config;
  if (!config.empty()) {
    absl::Status s = credentials_->AddDockerConfigFile(config);
    if (!s.ok()) {
      return absl::Status(s.code(), StrCat("docker config ", config, ": ", s.message()));
    }
  }
  ASSIGN_OR_RETURN(transport_, registry::CurlTransport::Create());
  client_ =
      std::make_unique<registry::RegistryClient>(transport_.get(), credentials_.get(), options);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ImageStore>> ConvertStores::OpenOne(const ImageArg& a, bool create,
                                                                   const RegistryFlags& flags) {
  if (a.layout) {
    auto layout = create ? OciLayout::OpenOrCreate(a.dir) : OciLayout::Open(a.dir);
    if (!layout.ok()) {
      return absl::Status(layout.status().code(), StrCat(a.dir, ": ", layout.status().message()));
    }
    layouts_.push_back(*std::move(layout));
    return std::unique_ptr<ImageStore>(new OciLayoutStore(layouts_.back().get()));
  }
  ASSIGN_OR_RETURN(auto store, RegistryImageStore::Create(client_.get(), *a.ref, flags.temp_dir));
  return std::unique_ptr<ImageStore>(std::move(store));
}

absl::StatusOr<std::unique_ptr<ConvertStores>> ConvertStores::Open(const ImageArg& src,
                                                                   const ImageArg& dst,
                                                                   const RegistryFlags& flags) {
  std::unique_ptr<ConvertStores> s(new ConvertStores());
  if (src.ref || dst.ref) RETURN_IF_ERROR(s->StartClient(src, dst, flags));
  ASSIGN_OR_RETURN(s->src_, s->OpenOne(src, false, flags));
  ASSIGN_OR_RETURN(s->dst_, s->OpenOne(dst, true, flags));
  s->dst_registry_ = dynamic_cast<const RegistryImageStore*>(s->dst_.get());
  return s;
}

}  // namespace lazysnap::cli
