// ConvertLayer: spool and parse the input tar (pass 1), plan the member order, lay the
// output out as independent units (gzip members / zstd frames), compress them in parallel
// and write them in order (pass 2), then the TOC and footer. Layout: format/writer.md.
#include "format/convert.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <memory>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/compress.h"
#include "format/convert_layout.h"
#include "format/convert_pipeline.h"
#include "format/convert_plan.h"
#include "format/convert_spool.h"
#include "format/decompress.h"
#include "format/estargz.h"
#include "format/layer.h"
#include "format/tar.h"
#include "format/toc_writer.h"
#include "format/zstd_chunked.h"

namespace lazysnap {
namespace {

constexpr char kMediaTypeGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr char kMediaTypeZstd[] = "application/vnd.oci.image.layer.v1.tar+zstd";
// Members held in memory while converting (a few hundred bytes each).
constexpr size_t kMaxMembers = 4'000'000;

struct Spooled {
  std::deque<InputMember> members;  // stable addresses: jobs point into it
  uint64_t trailer_offset = 0;      // where the end-of-archive marker starts
  bool had_trailer = false;
};

// Pass 1: decompress, parse and spool the whole input. `complete(i)` is called (on this
// thread) once member i's bytes are all in the spool; `cancel` stops reading early.
absl::Status SpoolInput(InputStream& in, SpoolFile* spool, Spooled* s,
                        const std::function<void(uint32_t)>& complete,
                        const std::atomic<bool>& cancel) {
  ASSIGN_OR_RETURN(std::unique_ptr<InputStream> plain, NewDecompressingStream(&in));
  SpoolingInputStream tee(plain.get(), spool, nullptr);
  TarReader reader(&tee);
  const size_t first = s->members.size();  // a landmark may come first
  for (;;) {
    if (cancel.load()) return absl::CancelledError("conversion cancelled");
    ASSIGN_OR_RETURN(std::optional<TarEntry> e, reader.Next());
    if (s->members.size() > first) {
      s->members.back().end_offset = reader.header_offset();
      complete(static_cast<uint32_t>(s->members.size() - 1));
    }
    if (!e.has_value()) break;
    if (s->members.size() >= kMaxMembers) {
      return absl::InvalidArgumentError(
          StrCat("input layer has more than ", kMaxMembers, " entries"));
    }
    InputMember m;
    auto clean = CleanEntryName(e->name);
    if (!clean.ok()) {
      return absl::InvalidArgumentError(StrCat("input layer: ", clean.status().message()));
    }
    m.clean_name = *std::move(clean);
    m.entry = *std::move(e);
    m.header_offset = reader.header_offset();
    m.data_offset = reader.offset();
    s->members.push_back(std::move(m));
  }
  s->trailer_offset = reader.header_offset();
  s->had_trailer = reader.offset() > s->trailer_offset;
  // Keep what follows the archive (zstd:chunked keeps the tar stream byte for byte) and read
  // the compressed input to its end, so its integrity check runs.
  std::string buf(1 << 16, '\0');
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, tee.Read(absl::MakeSpan(buf)));
    if (n == 0) break;
  }
  return absl::OkStatus();
}

// The in-order half of pass 2: writes units, hashes, records chunk offsets and digests.
class Sink {
 public:
  Sink(OutputStream* out, bool crc, std::function<void(uint64_t)> progress)
      : out_(out), crc_(crc), progress_(std::move(progress)) {}

  absl::Status Unit(std::string_view compressed, std::string_view raw) {
    RETURN_IF_ERROR(out_.Write(compressed));
    diff_.Update(raw);
    uncompressed_ += raw.size();
    if (progress_ && uncompressed_ - reported_ >= (8u << 20)) {
      reported_ = uncompressed_;
      progress_(uncompressed_);
    }
    return absl::OkStatus();
  }
  void ReportDone() {
    if (progress_) progress_(uncompressed_);
  }

  absl::Status Consume(const Job& job, JobOutput* o) {
    uint64_t at = out_.bytes();
    RETURN_IF_ERROR(Unit(o->compressed, o->raw));
    if (job.chunk < 0) return absl::OkStatus();
    if (static_cast<uint64_t>(job.chunk) != chunks_.size()) {
      return absl::InternalError("converter: chunks out of order");
    }
    WrittenChunk c;
    c.offset = at;
    c.end_offset = out_.bytes();
    c.file_offset = job.chunk_file_offset;
    c.size = job.chunk_size;
    c.digest = o->chunk_digest;
    chunks_.push_back(c);
    uint32_t m = job.member;
    if (file_digest_.size() <= m) {
      file_digest_.resize(m + 1, Sha256::Of(""));
      file_crc_.resize(m + 1, 0);
    }
    if (job.chunks_in_file == 1) {
      file_digest_[m] = o->chunk_digest;
      file_crc_[m] = o->chunk_crc64;
      return absl::OkStatus();
    }
    std::string_view data = std::string_view(o->raw).substr(0, c.size);
    file_hasher_.Update(data);
    if (crc_) running_crc_ = Crc64Iso(running_crc_, data);
    if (job.chunk_in_file + 1 == job.chunks_in_file) {
      file_digest_[m] = file_hasher_.Finish();
      file_crc_[m] = running_crc_;
      running_crc_ = 0;
    }
    return absl::OkStatus();
  }

  Sha256 file_digest(uint32_t m) const {
    return m < file_digest_.size() ? file_digest_[m] : Sha256::Of("");
  }
  uint64_t file_crc(uint32_t m) const { return m < file_crc_.size() ? file_crc_[m] : 0; }
  absl::Span<const WrittenChunk> ChunksOf(const LayoutBuilder& l, uint32_t m) const {
    return absl::MakeConstSpan(chunks_).subspan(l.chunks_begin(m),
                                                l.chunks_end(m) - l.chunks_begin(m));
  }
  uint64_t bytes() const { return out_.bytes(); }
  uint64_t uncompressed() const { return uncompressed_; }
  Sha256 FinishBlob() { return out_.Finish(); }
  Sha256 FinishDiff() { return diff_.Finish(); }

 private:
  DigestingOutputStream out_;
  bool crc_;
  std::function<void(uint64_t)> progress_;
  Sha256Hasher diff_, file_hasher_;
  uint64_t running_crc_ = 0, uncompressed_ = 0, reported_ = 0;
  std::vector<WrittenChunk> chunks_;
  std::vector<Sha256> file_digest_;
  std::vector<uint64_t> file_crc_;
};

// eStargz tail: the TOC as a tar (stargz.index.json + end-of-archive) in its own gzip member,
// then the footer.
absl::Status WriteEstargzTail(const std::deque<InputMember>& members, const LayoutBuilder& l,
                              Sink& sink, Compressor& gz, uint64_t chunk_size,
                              ConvertResult* r) {
  EstargzTocWriter toc(chunk_size);
  for (uint32_t m : l.order()) {
    const TarEntry& e = members[m].entry;
    bool reg = e.typeflag == '0';
    Sha256 digest = sink.file_digest(m);
    toc.Add(e, reg ? &digest : nullptr, sink.ChunksOf(l, m));
  }
  std::string json = toc.Finish();
  TarEntry te;
  te.name = kEstargzTocTarName;
  te.typeflag = '0';
  te.size = json.size();
  std::string raw = EncodeTarHeader(te);
  raw += json;
  raw.append(TarPaddingFor(json.size()), '\0');
  raw += TarTrailer();
  std::string compressed;
  RETURN_IF_ERROR(gz.Compress(raw, &compressed));
  uint64_t toc_offset = sink.bytes();
  RETURN_IF_ERROR(sink.Unit(compressed, raw));
  RETURN_IF_ERROR(sink.Unit(EncodeEstargzFooter(toc_offset), ""));
  r->toc_digest = Sha256::Of(json);
  r->media_type = kMediaTypeGzip;
  r->annotations[kEstargzTocDigestAnnotation] = r->toc_digest.ToString();
  r->annotations[kLazysnapTocTailSizeAnnotation] = StrCat(sink.bytes() - toc_offset);
  return absl::OkStatus();
}

// zstd:chunked tail: manifest, tar-split and footer in skippable frames.
absl::Status WriteZstdChunkedTail(const Spooled& spooled, const LayoutBuilder& l,
                                  const SpoolFile& spool, Sink& sink, Compressor& zs,
                                  ConvertResult* r) {
  const std::deque<InputMember>& members = spooled.members;
  // tar-split: the raw bytes between file contents as segments, each file as a record.
  TarSplitWriter ts;
  std::string seg;
  for (uint32_t m : l.order()) {
    const InputMember& im = members[m];
    Piece header = im.synthetic ? Piece{Piece::kHeader, &im}
                                : Piece{Piece::kSpool, &im, im.header_offset,
                                        im.data_offset - im.header_offset};
    RETURN_IF_ERROR(AppendPiece(header, spool, &seg));
    ts.Segment(seg);
    seg.clear();
    uint64_t size = im.entry.typeflag == '0' ? im.entry.size : 0;
    ts.File(im.entry.name, size, sink.file_crc(m));
    if (im.synthetic) {
      seg.append(TarPaddingFor(size), '\0');
    } else if (im.end_offset > im.data_offset + size) {
      RETURN_IF_ERROR(AppendPiece({Piece::kSpool, &im, im.data_offset + size,
                                   im.end_offset - im.data_offset - size},
                                  spool, &seg));
    }
  }
  std::string tail;
  if (spooled.had_trailer) {
    RETURN_IF_ERROR(AppendPiece({Piece::kSpool, nullptr, spooled.trailer_offset,
                                 spool.size() - spooled.trailer_offset},
                                spool, &tail));
  } else {
    tail = TarTrailer();
  }
  size_t first = std::min<size_t>(tail.size(), 1024);
  ts.Segment(seg + tail.substr(0, first));
  for (size_t at = first; at < tail.size(); at += 1 << 20) ts.Segment(tail.substr(at, 1 << 20));
  ts.Segment("");
  std::string ts_compressed;
  RETURN_IF_ERROR(zs.Compress(ts.data(), &ts_compressed));
  Sha256 ts_digest = Sha256::Of(ts_compressed);

  ZstdChunkedTocWriter toc;
  for (uint32_t m : l.order()) {
    Sha256 digest = sink.file_digest(m);
    toc.Add(members[m].entry, &digest, sink.ChunksOf(l, m));
  }
  std::string json = toc.Finish(ts_digest);
  std::string manifest;
  RETURN_IF_ERROR(zs.Compress(json, &manifest));

  ZstdChunkedLocation loc;
  loc.manifest_offset = sink.bytes() + kZstdSkippableHeaderSize;
  loc.manifest_length = manifest.size();
  loc.manifest_uncompressed_length = json.size();
  loc.manifest_type = kZstdChunkedManifestTypeCrfs;
  loc.tar_split_offset = loc.manifest_offset + manifest.size() + kZstdSkippableHeaderSize;
  loc.tar_split_length = ts_compressed.size();
  loc.tar_split_uncompressed_length = ts.data().size();
  const uint64_t tail_start = sink.bytes();
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(manifest), ""));
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(ts_compressed), ""));
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(EncodeZstdChunkedFooter(loc)), ""));
  r->annotations[kLazysnapTocTailSizeAnnotation] = StrCat(sink.bytes() - tail_start);

  r->toc_digest = Sha256::Of(json);
  r->media_type = kMediaTypeZstd;
  r->annotations[kZstdChunkedManifestChecksumAnnotation] = Sha256::Of(manifest).ToString();
  r->annotations[kZstdChunkedManifestPositionAnnotation] =
      StrCat(loc.manifest_offset, ":", loc.manifest_length, ":",
             loc.manifest_uncompressed_length, ":", loc.manifest_type);
  r->annotations[kZstdChunkedTarsplitPositionAnnotation] =
      StrCat(loc.tar_split_offset, ":", loc.tar_split_length, ":",
             loc.tar_split_uncompressed_length);
  r->annotations[kZstdChunkedTarsplitChecksumAnnotation] = ts_digest.ToString();
  return absl::OkStatus();
}

// Pass 2 over `layout`: compress its jobs on `threads` workers and write them to `sink`.
absl::Status Compress(LayoutBuilder& layout, const SpoolFile& spool, Sink& sink,
                      std::vector<std::unique_ptr<Compressor>>& compressors, int threads,
                      bool crc, const std::function<void()>& on_error) {
  auto has_job = [&](size_t i) {
    Job unused;
    return layout.Get(i, &unused);
  };
  auto work = [&](size_t i, int thread, JobOutput* o) -> absl::Status {
    Job job;
    if (!layout.Get(i, &job)) return absl::InternalError("converter: job vanished");
    uint64_t total = 0;
    for (const Piece& p : job.pieces) total += p.kind == Piece::kHeader ? 2048 : p.len;
    o->raw.reserve(total);
    for (const Piece& p : job.pieces) RETURN_IF_ERROR(AppendPiece(p, spool, &o->raw));
    if (job.chunk >= 0) {
      std::string_view data = std::string_view(o->raw).substr(0, job.chunk_size);
      o->chunk_digest = Sha256::Of(data);
      if (crc) o->chunk_crc64 = Crc64Iso(0, data);
    }
    absl::Status s = compressors[thread]->Compress(o->raw, &o->compressed);
    if (!s.ok()) on_error();
    return s;
  };
  auto consume = [&](size_t i, JobOutput* o) -> absl::Status {
    Job job;
    if (!layout.Get(i, &job)) return absl::InternalError("converter: job vanished");
    absl::Status s = sink.Consume(job, o);
    if (!s.ok()) on_error();
    return s;
  };
  size_t window = static_cast<size_t>(threads) * 2 + 2;
  return RunOrdered(has_job, threads, window, work, consume);
}

// Copies the whole of `spool` to `out`.
absl::Status CopySpool(const SpoolFile& spool, OutputStream& out) {
  std::string buf(1 << 20, '\0');
  for (uint64_t at = 0; at < spool.size(); at += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), spool.size() - at));
    RETURN_IF_ERROR(spool.ReadAt(at, absl::MakeSpan(buf.data(), n)));
    RETURN_IF_ERROR(out.Write(std::string_view(buf.data(), n)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ConvertResult> ConvertLayer(InputStream& in, OutputStream& out,
                                           const ConvertOptions& options) {
  const bool estargz = options.format == LayerFormat::kEstargz;
  if (options.chunk_size < 4096) {
    return absl::InvalidArgumentError(StrCat("chunk size ", options.chunk_size, " below 4096"));
  }
  int threads = options.threads > 0
                    ? options.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, 64);
  auto make = [&]() {
    return estargz ? NewGzipCompressor(options.level) : NewZstdCompressor(options.level);
  };
  std::vector<std::unique_ptr<Compressor>> compressors;
  for (int t = 0; t <= threads; ++t) {  // one per worker, the last for the tail
    ASSIGN_OR_RETURN(auto c, make());
    compressors.push_back(std::move(c));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SpoolFile> spool, SpoolFile::Create(options.temp_dir));

  // Without prioritized files the output order is the input order unless a name repeats:
  // compress while reading (into a second spool), and keep the result if no name repeated.
  // Otherwise (or then) plan the order once everything is read, and compress from the spool.
  Spooled spooled;
  std::optional<InputMember> landmark = LandmarkFor(options.format, options.prioritized_files);
  if (landmark.has_value()) spooled.members.push_back(*std::move(landmark));
  const bool has_landmark = !spooled.members.empty();
  const bool streaming = options.prioritized_files.empty();
  LayoutBuilder stream_layout(options.format, options.chunk_size);
  std::unique_ptr<SpoolFile> blob_spool;
  std::unique_ptr<SpoolOutputStream> blob_out;
  if (streaming) {
    ASSIGN_OR_RETURN(blob_spool, SpoolFile::Create(options.temp_dir));
    blob_out = std::make_unique<SpoolOutputStream>(blob_spool.get());
    if (has_landmark) stream_layout.Add(0, spooled.members[0]);
  }
  std::atomic<bool> cancel{false};
  absl::Status read_status;
  auto read = [&]() {
    read_status = SpoolInput(in, spool.get(), &spooled, [&](uint32_t i) {
      const InputMember& m = spooled.members[i];
      if (streaming && !DroppedFromInput(m, options.format, has_landmark)) stream_layout.Add(i, m);
    }, cancel);
    if (streaming) {
      if (read_status.ok()) {
        stream_layout.Finish(spooled.had_trailer, spooled.trailer_offset, spool->size());
      } else {
        stream_layout.Abort();
      }
    }
  };
  ConvertResult result;
  std::optional<Sink> sink;
  LayoutBuilder* layout = &stream_layout;
  LayoutBuilder planned(options.format, options.chunk_size);
  auto on_error = [&cancel]() { cancel.store(true); };
  if (streaming) {
    sink.emplace(blob_out.get(), !estargz, options.progress);
    std::thread reader(read);
    absl::Status s = Compress(stream_layout, *spool, *sink, compressors, threads, !estargz,
                              on_error);
    if (!s.ok()) cancel.store(true);
    reader.join();
    RETURN_IF_ERROR(read_status);
    RETURN_IF_ERROR(s);
  } else {
    read();
    RETURN_IF_ERROR(read_status);
  }
  std::vector<uint32_t> order = PlanMemberOrder(&spooled.members, options.format,
                                                options.prioritized_files,
                                                &result.missed_prioritized_files);
  if (!streaming || order != stream_layout.order()) {
    if (streaming) LZ_LOG(kDebug, "convert: names repeat in the layer; writing it again in order");
    for (uint32_t m : order) planned.Add(m, spooled.members[m]);
    planned.Finish(spooled.had_trailer, spooled.trailer_offset, spool->size());
    layout = &planned;
    sink.emplace(&out, !estargz, options.progress);
    RETURN_IF_ERROR(Compress(planned, *spool, *sink, compressors, threads, !estargz, on_error));
  }

  Compressor& tail = *compressors.back();
  if (estargz) {
    RETURN_IF_ERROR(WriteEstargzTail(spooled.members, *layout, *sink, tail, options.chunk_size,
                                     &result));
  } else {
    RETURN_IF_ERROR(WriteZstdChunkedTail(spooled, *layout, *spool, *sink, tail, &result));
  }
  if (layout == &stream_layout) RETURN_IF_ERROR(CopySpool(*blob_spool, out));
  sink->ReportDone();
  result.blob_size = sink->bytes();
  result.blob_digest = sink->FinishBlob();
  result.uncompressed_size = sink->uncompressed();
  result.diff_id = sink->FinishDiff();
  // Both formats: stargz-snapshotter verifies zstd:chunked TOCs with these too (as
  // ctr-remote's zstd:chunked converter writes them); containers/storage ignores them.
  result.annotations[kEstargzTocDigestAnnotation] = result.toc_digest.ToString();
  result.annotations[kEstargzUncompressedSizeAnnotation] = StrCat(result.uncompressed_size);
  return result;
}

}  // namespace lazysnap
