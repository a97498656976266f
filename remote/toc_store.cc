#include "remote/toc_store.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr char kTocFile[] = "/toc.json";
constexpr char kMetaFile[] = "/toc.meta";

const char* FormatName(LayerFormat f) {
  return f == LayerFormat::kEstargz ? "estargz" : "zstd:chunked";
}

}  // namespace

absl::Status SaveToc(const std::string& dir, const SeekableLayer& layer) {
  return SaveToc(dir, layer, layer.toc_json);
}

absl::Status SaveToc(const std::string& dir, const SeekableLayer& layer,
                     std::string_view toc_json) {
  RETURN_IF_ERROR(WriteFileAtomically(StrCat(dir, kTocFile), toc_json));
  nlohmann::json meta = {
      {"format", FormatName(layer.index.format())},
      {"toc_digest", layer.toc_digest.ToString()},
      {"toc_offset", layer.index.toc_offset()},
      {"blob_size", layer.blob_size},
  };
  return WriteFileAtomically(StrCat(dir, kMetaFile), meta.dump());
}

absl::StatusOr<std::unique_ptr<SeekableLayer>> LoadToc(const std::string& dir,
                                                       const LayerLimits& limits,
                                                       LayerFormat* format_out) {
  const std::string meta_path = StrCat(dir, kMetaFile);
  if (access(meta_path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(StrCat("no TOC stored in ", dir));
  }
  ASSIGN_OR_RETURN(std::string meta_text, ReadFileToString(meta_path));
  ASSIGN_OR_RETURN(std::string toc, ReadFileToString(StrCat(dir, kTocFile)));
  LayerFormat format;
  std::string digest_text;
  uint64_t toc_offset = 0, blob_size = 0;
  try {
    nlohmann::json meta = nlohmann::json::parse(meta_text);
    const std::string f = meta.at("format").get<std::string>();
    if (f == "estargz") {
      format = LayerFormat::kEstargz;
    } else if (f == "zstd:chunked") {
      format = LayerFormat::kZstdChunked;
    } else {
      return absl::DataLossError(StrCat(meta_path, ": unknown format \"", f, "\""));
    }
    digest_text = meta.at("toc_digest").get<std::string>();
    toc_offset = meta.at("toc_offset").get<uint64_t>();
    blob_size = meta.at("blob_size").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(StrCat(meta_path, ": ", e.what()));
  }
  auto want = Sha256::Parse(digest_text);
  if (!want.ok()) return absl::DataLossError(StrCat(meta_path, ": bad toc_digest"));
  if (Sha256::Of(toc) != *want) {
    return absl::DataLossError(StrCat(dir, kTocFile, " does not hash to ", digest_text));
  }
  if (format_out != nullptr) *format_out = format;
  return OpenLayerFromToc(std::move(toc), format, toc_offset, blob_size, limits);
}

}  // namespace lazysnap
