#include "containerd/pull.h"

#include <future>
#include <random>

#include "absl/time/clock.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "remote/labels.h"
#include "snapshotter/remote_layer.h"

namespace lazysnap::containerd {
namespace {

// The labels lazysnapd reads (remote/labels.h, snapshotter/remote_layer.h), written here.
constexpr char kSnapshotLabelPrefix[] = "containerd.io/snapshot/";
constexpr char kUncompressedLabel[] = "containerd.io/uncompressed";
constexpr size_t kMaxLabelSize = 4096;  // containerd's limit on len(key) + len(value)

// containerd's uniquePart(): unique among concurrent pulls.
std::string UniquePart() {
  std::random_device rd;
  return StrCat(absl::ToUnixNanos(absl::Now()), "-", rd() % 1000000);
}

// Writes a blob; a blob already in the store only gets `labels` set.
absl::Status PutBlob(ContainerdApi& api, const Descriptor& d, BlobSource& src,
                     const Labels& labels) {
  absl::Status s = api.WriteContent(StrCat("lazysnap-pull-", d.digest.ToString()), d.digest,
                                    d.size, src, labels);
  if (absl::IsAlreadyExists(s)) {
    if (labels.empty()) return absl::OkStatus();
    s = api.SetContentLabels(d.digest, labels);
  }
  return Annotate(s, StrCat("content ", d.digest.ToString()));
}

absl::Status PutBytes(ContainerdApi& api, const Descriptor& d, std::string bytes,
                      const Labels& labels) {
  MemoryBlobSource src(std::move(bytes));
  return PutBlob(api, d, src, labels);
}

bool IsImageConfig(std::string_view media_type) {
  return media_type == kOciConfigMediaType || media_type == kDockerConfigMediaType;
}

void Progress(const PullOptions& o, std::string_view line) {
  if (o.progress) o.progress(line);
}

// One layer: nothing to do, mounted remotely, or applied the ordinary way.
absl::StatusOr<LayerOutcome> UnpackLayer(ContainerdApi& api, ImageSource& source,
                                         const PullOptions& o, const Manifest& manifest,
                                         const Sha256& manifest_digest, size_t i,
                                         const std::string& parent, const std::string& chain,
                                         const Sha256& diff_id) {
  const Descriptor& desc = manifest.layers[i];
  const std::string& sn = o.snapshotter;
  absl::Status st = api.Stat(sn, chain);
  if (st.ok()) return LayerOutcome::kPresent;
  if (!absl::IsNotFound(st)) return Annotate(st, StrCat("stat snapshot ", chain));

  Labels labels = LayerLabels(manifest, manifest_digest, i, chain, o.image_ref);
  std::string key = StrCat("extract-", UniquePart(), " ", chain);
  auto mounts = api.Prepare(sn, key, parent, labels);
  if (absl::IsAlreadyExists(mounts.status())) {
    // The snapshotter found (made) the target: the layer is mounted remotely.
    RETURN_IF_ERROR(Annotate(api.Stat(sn, chain),
                             StrCat("snapshot ", chain, " after remote prepare")));
    return LayerOutcome::kRemote;
  }
  if (!mounts.ok()) {
    return Annotate(mounts.status(), StrCat("prepare snapshot for layer ", desc.digest.ToString()));
  }

  // Not available remotely: fetch, apply, commit; remove the active snapshot on failure.
  auto apply = [&]() -> absl::Status {
    Progress(o, StrCat("layer ", desc.digest.ToString(), ": not seekable, fetching ",
                       desc.size, " bytes"));
    ASSIGN_OR_RETURN(auto blob, source.OpenBlob(desc));
    RETURN_IF_ERROR(PutBlob(api, desc, *blob, {}));
    auto applied = api.Apply(desc, *mounts);
    RETURN_IF_ERROR(Annotate(applied.status(), StrCat("apply layer ", desc.digest.ToString())));
    if (*applied != diff_id) {
      return absl::FailedPreconditionError(
          StrCat("layer ", desc.digest.ToString(), " unpacks to ", applied->ToString(),
                 ", the config says ", diff_id.ToString()));
    }
    absl::Status c = api.Commit(sn, chain, key, labels);
    if (absl::IsAlreadyExists(c)) return absl::AlreadyExistsError("committed concurrently");
    RETURN_IF_ERROR(Annotate(c, StrCat("commit snapshot ", chain)));
    return Annotate(api.SetContentLabels(desc.digest, {{kUncompressedLabel, diff_id.ToString()}}),
                    StrCat("content ", desc.digest.ToString()));
  };
  absl::Status s = apply();
  if (s.ok()) return LayerOutcome::kApplied;
  (void)api.Remove(sn, key);  // best effort; the lease covers it otherwise
  if (absl::IsAlreadyExists(s)) return LayerOutcome::kPresent;
  return s;
}

struct Resolved {
  Descriptor top;
  std::string top_bytes;
  int index_entry = -1;  // position of the manifest in the index, -1 if top is the manifest
  Descriptor manifest_desc;
  std::string manifest_bytes;
  Manifest manifest;
};

absl::StatusOr<Resolved> Resolve(ImageSource& source, const PullOptions& o) {
  Resolved r;
  RETURN_IF_ERROR(source.Top(&r.top, &r.top_bytes));
  std::string mt = r.top.media_type;
  if (mt.empty()) {
    ASSIGN_OR_RETURN(mt, PeekMediaType(r.top_bytes));
  }
  if (IsIndexMediaType(mt)) {
    ASSIGN_OR_RETURN(Index index, ParseIndex(r.top_bytes));
    std::vector<const Descriptor*> picks = SelectPlatform(index, o.platform);
    if (picks.empty()) {
      return absl::NotFoundError(
          StrCat("no image for platform ", o.platform.ToString(), " in the index"));
    }
    r.manifest_desc = *picks[0];
    r.index_entry = static_cast<int>(picks[0] - index.manifests.data());
    ASSIGN_OR_RETURN(r.manifest_bytes, source.FetchManifest(r.manifest_desc));
  } else {
    r.manifest_desc = r.top;
    r.manifest_bytes = r.top_bytes;
  }
  auto m = ParseManifest(r.manifest_bytes);
  if (!m.ok() || !IsImageConfig(m->config.media_type)) {
    return absl::InvalidArgumentError(StrCat(
        "not a container image (", m.ok() ? StrCat("config media type ", m->config.media_type)
                                          : std::string(m.status().message()),
        ")"));
  }
  r.manifest = *std::move(m);
  if (r.manifest_desc.media_type.empty()) {
    r.manifest_desc.media_type =
        r.manifest.media_type.empty() ? kOciManifestMediaType : r.manifest.media_type;
  }
  if (r.top.media_type.empty()) r.top.media_type = mt.empty() ? kOciManifestMediaType : mt;
  return r;
}

absl::StatusOr<PullResult> PullLeased(ContainerdApi& api, ImageSource& source,
                                      const PullOptions& o, Resolved& r,
                                      const std::vector<Sha256>& diff_ids,
                                      const std::string& config_bytes) {
  PullResult result;
  result.target = r.top;
  result.manifest = r.manifest_desc;
  result.config = r.manifest.config;
  std::vector<Sha256> chains = ChainIds(diff_ids);
  // Config and manifest, each with the GC labels that keep its children, go to the content
  // store on another thread while the layers are prepared: containerd commits each write to
  // disk, and a remote layer's Prepare waits on the registry. (Under the lease, a GC label may
  // name a snapshot not yet made.) Joined before anything else happens: on every return
  // (std::async's future waits when destroyed).
  std::future<absl::Status> content = std::async(std::launch::async, [&]() -> absl::Status {
    Labels config_labels;
    if (!chains.empty()) {
      config_labels[StrCat("containerd.io/gc.ref.snapshot.", o.snapshotter)] =
          chains.back().ToString();
    }
    RETURN_IF_ERROR(PutBytes(api, r.manifest.config, config_bytes, config_labels));
    Labels manifest_labels = {{"containerd.io/gc.ref.content.config",
                               r.manifest.config.digest.ToString()}};
    for (size_t i = 0; i < r.manifest.layers.size(); ++i) {
      manifest_labels[StrCat("containerd.io/gc.ref.content.l.", i)] =
          r.manifest.layers[i].digest.ToString();
    }
    return PutBytes(api, r.manifest_desc, r.manifest_bytes, manifest_labels);
  });
  std::string parent;
  for (size_t i = 0; i < r.manifest.layers.size(); ++i) {
    PulledLayer l{r.manifest.layers[i], diff_ids[i], chains[i].ToString(), LayerOutcome::kRemote};
    ASSIGN_OR_RETURN(l.outcome, UnpackLayer(api, source, o, r.manifest, r.manifest_desc.digest, i,
                                            parent, l.chain_id, l.diff_id));
    Progress(o, StrCat("layer ", i + 1, "/", r.manifest.layers.size(), " ",
                       l.blob.digest.ToString(), ": ", LayerOutcomeName(l.outcome)));
    parent = l.chain_id;
    result.layers.push_back(std::move(l));
  }

  RETURN_IF_ERROR(content.get());
  if (r.index_entry >= 0) {
    RETURN_IF_ERROR(PutBytes(api, r.top, r.top_bytes,
                             {{StrCat("containerd.io/gc.ref.content.m.", r.index_entry),
                               r.manifest_desc.digest.ToString()}}));
  }
  RETURN_IF_ERROR(Annotate(api.PutImage(ImageRecord{o.name, {}, r.top}),
                           StrCat("image record ", o.name)));
  return result;
}

}  // namespace

std::string_view LayerOutcomeName(LayerOutcome o) {
  switch (o) {
    case LayerOutcome::kRemote:
      return "remote";
    case LayerOutcome::kApplied:
      return "applied";
    case LayerOutcome::kPresent:
      return "present";
  }
  return "?";
}

std::vector<Sha256> ChainIds(const std::vector<Sha256>& diff_ids) {
  std::vector<Sha256> out;
  for (const Sha256& d : diff_ids) {
    out.push_back(out.empty() ? d : Sha256::Of(StrCat(out.back().ToString(), " ", d.ToString())));
  }
  return out;
}

Labels LayerLabels(const Manifest& manifest, const Sha256& manifest_digest, size_t index,
                   const std::string& chain_id, const std::string& image_ref) {
  Labels labels;
  for (const auto& [k, v] : manifest.layers[index].annotations) {
    std::string key = k.rfind(kSnapshotLabelPrefix, 0) == 0 ? k : StrCat(kSnapshotLabelPrefix, k);
    if (key.size() + v.size() <= kMaxLabelSize) labels[key] = v;
  }
  labels[kTargetSnapshotLabel] = chain_id;
  labels[kCriImageRefLabel] = image_ref;
  labels[kCriLayerDigestLabel] = manifest.layers[index].digest.ToString();
  labels[kCriManifestDigestLabel] = manifest_digest.ToString();
  // As containerd's CRI plugin: this and the following layers, as many as fit in a label.
  std::string layers;
  for (size_t i = index; i < manifest.layers.size(); ++i) {
    std::string next = StrCat(layers.empty() ? "" : ",", manifest.layers[i].digest.ToString());
    if (std::string_view(kCriImageLayersLabel).size() + layers.size() + next.size() > kMaxLabelSize) {
      break;
    }
    layers += next;
  }
  labels[kCriImageLayersLabel] = layers;
  return labels;
}

absl::StatusOr<PullResult> PullImage(ContainerdApi& api, ImageSource& source,
                                     const PullOptions& o) {
  ASSIGN_OR_RETURN(Resolved r, Resolve(source, o));
  Progress(o, StrCat("manifest ", r.manifest_desc.digest.ToString(), ": ",
                     r.manifest.layers.size(), " layers"));
  auto config_bytes = source.FetchBlob(r.manifest.config);
  RETURN_IF_ERROR(Annotate(config_bytes.status(),
                           StrCat("config ", r.manifest.config.digest.ToString())));
  ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(*config_bytes));
  if (config.diff_ids.size() != r.manifest.layers.size()) {
    return absl::InvalidArgumentError(
        StrCat("the config lists ", config.diff_ids.size(), " diff IDs for ",
               r.manifest.layers.size(), " layers"));
  }

  auto lease = api.CreateLease(o.lease_expire);
  RETURN_IF_ERROR(Annotate(lease.status(), "create lease"));
  api.UseLease(*lease);
  auto result = PullLeased(api, source, o, r, config.diff_ids, *config_bytes);
  api.UseLease("");
  // The GC labels (and the image record) keep what was pulled; without them (an error),
  // deleting the lease lets containerd collect everything this pull created: at once then,
  // later after a pull that worked (a synchronous collection is local time the pull waits).
  absl::Status d = api.DeleteLease(*lease, /*sync=*/!result.ok());
  if (!result.ok()) return result.status();
  RETURN_IF_ERROR(Annotate(d, StrCat("delete lease ", *lease)));
  return result;
}

}  // namespace lazysnap::containerd
