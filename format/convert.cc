// ConvertLayer: spool and parse the input tar (pass 1), plan the member order, lay the
// output out as independent units (gzip members / zstd frames), compress them in parallel
// and write them in order (pass 2), then the TOC and footer. Layout: format/writer.md.
#include "format/convert.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

#include "base/status_macros.h"
#include "base/strings.h"
#include "format/compress.h"
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

// A piece of a unit's uncompressed bytes.
struct Piece {
  enum Kind : uint8_t { kSpool, kHeader, kData, kZeros };
  Kind kind;
  uint32_t member;   // kHeader: EncodeTarHeader(member); kData: member's synthetic data
  uint64_t off = 0;  // kSpool: spool offset; kData: offset into the data
  uint64_t len = 0;  // kSpool, kData, kZeros
};

// One independently compressed unit of the output.
struct Job {
  std::vector<Piece> pieces;
  int64_t chunk = -1;  // index into Layout::chunks of the file chunk that starts the unit
};

struct Layout {
  std::vector<Job> jobs;
  std::vector<WrittenChunk> chunks;      // all file chunks, in output order
  std::vector<uint32_t> chunk_member;    // the member each chunk belongs to
  std::vector<uint32_t> chunks_begin;    // per member: first chunk (chunks_end = next)
  std::vector<uint32_t> chunks_end;
};

struct Spooled {
  std::vector<InputMember> members;
  uint64_t trailer_offset = 0;  // where the end-of-archive marker starts
  bool had_trailer = false;
};

// Pass 1: decompress, parse and spool the whole input.
absl::StatusOr<Spooled> SpoolInput(InputStream& in, SpoolFile* spool) {
  ASSIGN_OR_RETURN(std::unique_ptr<InputStream> plain, NewDecompressingStream(&in));
  SpoolingInputStream tee(plain.get(), spool, nullptr);
  TarReader reader(&tee);
  Spooled s;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<TarEntry> e, reader.Next());
    if (!s.members.empty()) s.members.back().end_offset = reader.header_offset();
    if (!e.has_value()) break;
    if (s.members.size() >= kMaxMembers) {
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
    s.members.push_back(std::move(m));
  }
  s.trailer_offset = reader.header_offset();
  s.had_trailer = reader.offset() > s.trailer_offset;
  // Keep what follows the archive (zstd:chunked keeps the tar stream byte for byte) and read
  // the compressed input to its end, so its integrity check runs.
  std::string buf(1 << 16, '\0');
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, tee.Read(absl::MakeSpan(buf)));
    if (n == 0) break;
  }
  RETURN_IF_ERROR(spool->Flush());
  return s;
}

// Splits each regular file of `order` into chunks and groups everything into jobs.
// eStargz (as the Go writer): a unit per chunk; the member's padding and the headers that
// follow stay in its last chunk's unit; headers are re-encoded. zstd:chunked (as
// containers/storage): a frame per chunk holding only the chunk, the raw tar bytes between
// file contents in frames of their own.
Layout PlanLayout(const std::vector<InputMember>& members, const std::vector<uint32_t>& order,
                  const Spooled& spooled, uint64_t spool_size, LayerFormat format,
                  uint64_t chunk_size) {
  const bool estargz = format == LayerFormat::kEstargz;
  Layout l;
  l.chunks_begin.assign(members.size(), 0);
  l.chunks_end.assign(members.size(), 0);
  Job cur;
  auto flush = [&]() {
    if (!cur.pieces.empty()) l.jobs.push_back(std::move(cur));
    cur = Job();
  };
  for (uint32_t m : order) {
    const InputMember& im = members[m];
    if (estargz || im.synthetic) {
      cur.pieces.push_back({Piece::kHeader, m});
    } else {
      cur.pieces.push_back({Piece::kSpool, m, im.header_offset, im.data_offset - im.header_offset});
    }
    uint64_t size = im.entry.typeflag == '0' ? im.entry.size : 0;
    l.chunks_begin[m] = l.chunks.size();
    for (uint64_t off = 0; off < size; off += chunk_size) {
      uint64_t len = std::min(chunk_size, size - off);
      flush();
      cur.chunk = static_cast<int64_t>(l.chunks.size());
      WrittenChunk c;
      c.file_offset = off;
      c.size = len;
      l.chunks.push_back(c);
      l.chunk_member.push_back(m);
      if (im.synthetic) {
        cur.pieces.push_back({Piece::kData, m, off, len});
      } else {
        cur.pieces.push_back({Piece::kSpool, m, im.data_offset + off, len});
      }
      if (!estargz) flush();
    }
    l.chunks_end[m] = l.chunks.size();
    // Padding after the data: raw from the spool (zstd:chunked keeps input bytes) or zeros.
    uint64_t pad_at = im.data_offset + size;
    if (!estargz && !im.synthetic) {
      if (im.end_offset > pad_at) {
        cur.pieces.push_back({Piece::kSpool, m, pad_at, im.end_offset - pad_at});
      }
    } else if (TarPaddingFor(size) > 0) {
      cur.pieces.push_back({Piece::kZeros, m, 0, TarPaddingFor(size)});
    }
  }
  if (!estargz) {
    if (spooled.had_trailer) {
      cur.pieces.push_back({Piece::kSpool, 0, spooled.trailer_offset, spool_size - spooled.trailer_offset});
    } else {
      cur.pieces.push_back({Piece::kZeros, 0, 0, 1024});
    }
  }
  flush();
  return l;
}

// Appends the bytes of `p` to `out`.
absl::Status AppendPiece(const Piece& p, const std::vector<InputMember>& members,
                         const SpoolFile& spool, std::string* out) {
  switch (p.kind) {
    case Piece::kHeader: {
      TarEntry e = members[p.member].entry;
      if (e.typeflag != '0') e.size = 0;
      out->append(EncodeTarHeader(e));
      return absl::OkStatus();
    }
    case Piece::kData:
      out->append(members[p.member].data, p.off, p.len);
      return absl::OkStatus();
    case Piece::kZeros:
      out->append(p.len, '\0');
      return absl::OkStatus();
    case Piece::kSpool: {
      size_t at = out->size();
      out->resize(at + p.len);
      return spool.ReadAt(p.off, absl::MakeSpan(out->data() + at, p.len));
    }
  }
  return absl::InternalError("bad piece");
}

// The in-order half of pass 2: writes units, hashes, fills in chunk offsets and digests.
class Sink {
 public:
  Sink(OutputStream* out, Layout* layout, bool crc, std::function<void(uint64_t)> progress)
      : out_(out), layout_(layout), crc_(crc), progress_(std::move(progress)) {}

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
    WrittenChunk& c = layout_->chunks[job.chunk];
    c.offset = at;
    c.end_offset = out_.bytes();
    c.digest = o->chunk_digest;
    uint32_t m = layout_->chunk_member[job.chunk];
    uint32_t begin = layout_->chunks_begin[m], end = layout_->chunks_end[m];
    if (end - begin == 1) {
      file_digest_[m] = o->chunk_digest;
      file_crc_[m] = o->chunk_crc64;
      return absl::OkStatus();
    }
    std::string_view data = std::string_view(o->raw).substr(0, c.size);
    file_hasher_.Update(data);
    if (crc_) running_crc_ = Crc64Iso(running_crc_, data);
    if (static_cast<uint32_t>(job.chunk) + 1 == end) {
      file_digest_[m] = file_hasher_.Finish();
      file_crc_[m] = running_crc_;
      running_crc_ = 0;
    }
    return absl::OkStatus();
  }

  void Resize(size_t members) {
    file_digest_.assign(members, Sha256::Of(""));
    file_crc_.assign(members, 0);
  }
  const Sha256& file_digest(uint32_t m) const { return file_digest_[m]; }
  uint64_t file_crc(uint32_t m) const { return file_crc_[m]; }
  uint64_t bytes() const { return out_.bytes(); }
  uint64_t uncompressed() const { return uncompressed_; }
  Sha256 FinishBlob() { return out_.Finish(); }
  Sha256 FinishDiff() { return diff_.Finish(); }

 private:
  DigestingOutputStream out_;
  Layout* layout_;
  bool crc_;
  std::function<void(uint64_t)> progress_;
  Sha256Hasher diff_, file_hasher_;
  uint64_t running_crc_ = 0, uncompressed_ = 0, reported_ = 0;
  std::vector<Sha256> file_digest_;
  std::vector<uint64_t> file_crc_;
};

// eStargz tail: the TOC as a tar (stargz.index.json + end-of-archive) in its own gzip member,
// then the footer.
absl::Status WriteEstargzTail(const std::vector<InputMember>& members,
                              const std::vector<uint32_t>& order, const Layout& l, Sink& sink,
                              Compressor& gz, uint64_t chunk_size, ConvertResult* r) {
  EstargzTocWriter toc(chunk_size);
  for (uint32_t m : order) {
    const TarEntry& e = members[m].entry;
    bool reg = e.typeflag == '0';
    Sha256 digest = sink.file_digest(m);
    toc.Add(e, reg ? &digest : nullptr,
            absl::MakeConstSpan(l.chunks).subspan(l.chunks_begin[m],
                                                  l.chunks_end[m] - l.chunks_begin[m]));
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
  return absl::OkStatus();
}

// zstd:chunked tail: manifest, tar-split and footer in skippable frames.
absl::Status WriteZstdChunkedTail(const std::vector<InputMember>& members,
                                  const std::vector<uint32_t>& order, const Layout& l,
                                  const Spooled& spooled, const SpoolFile& spool, Sink& sink,
                                  Compressor& zs, ConvertResult* r) {
  // tar-split: the raw bytes between file contents as segments, each file as a record.
  TarSplitWriter ts;
  std::string seg;
  for (uint32_t m : order) {
    const InputMember& im = members[m];
    Piece header = im.synthetic ? Piece{Piece::kHeader, m}
                                : Piece{Piece::kSpool, m, im.header_offset,
                                        im.data_offset - im.header_offset};
    RETURN_IF_ERROR(AppendPiece(header, members, spool, &seg));
    ts.Segment(seg);
    seg.clear();
    uint64_t size = im.entry.typeflag == '0' ? im.entry.size : 0;
    ts.File(im.entry.name, size, sink.file_crc(m));
    if (im.synthetic) {
      seg.append(TarPaddingFor(size), '\0');
    } else if (im.end_offset > im.data_offset + size) {
      RETURN_IF_ERROR(AppendPiece({Piece::kSpool, m, im.data_offset + size,
                                   im.end_offset - im.data_offset - size},
                                  members, spool, &seg));
    }
  }
  std::string tail;
  if (spooled.had_trailer) {
    RETURN_IF_ERROR(AppendPiece({Piece::kSpool, 0, spooled.trailer_offset,
                                 spool.size() - spooled.trailer_offset},
                                members, spool, &tail));
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
  for (uint32_t m : order) {
    Sha256 digest = sink.file_digest(m);
    toc.Add(members[m].entry, &digest,
            absl::MakeConstSpan(l.chunks).subspan(l.chunks_begin[m],
                                                  l.chunks_end[m] - l.chunks_begin[m]));
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
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(manifest), ""));
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(ts_compressed), ""));
  RETURN_IF_ERROR(sink.Unit(ZstdSkippableFrame(EncodeZstdChunkedFooter(loc)), ""));

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
  auto make = [&]() { return estargz ? NewGzipCompressor(options.level) : NewZstdCompressor(options.level); };
  std::vector<std::unique_ptr<Compressor>> compressors;
  for (int t = 0; t <= threads; ++t) {  // one per worker, the last for the tail
    ASSIGN_OR_RETURN(auto c, make());
    compressors.push_back(std::move(c));
  }

  ASSIGN_OR_RETURN(std::unique_ptr<SpoolFile> spool, SpoolFile::Create(options.temp_dir));
  ASSIGN_OR_RETURN(Spooled spooled, SpoolInput(in, spool.get()));
  ConvertResult result;
  std::vector<uint32_t> order = PlanMemberOrder(&spooled.members, options.format,
                                                options.prioritized_files,
                                                &result.missed_prioritized_files);
  const std::vector<InputMember>& members = spooled.members;
  Layout layout = PlanLayout(members, order, spooled, spool->size(), options.format,
                             options.chunk_size);

  Sink sink(&out, &layout, !estargz, options.progress);
  sink.Resize(members.size());
  auto work = [&](size_t i, int thread, JobOutput* o) -> absl::Status {
    const Job& job = layout.jobs[i];
    uint64_t total = 0;
    for (const Piece& p : job.pieces) total += p.kind == Piece::kHeader ? 2048 : p.len;
    o->raw.reserve(total);
    for (const Piece& p : job.pieces) RETURN_IF_ERROR(AppendPiece(p, members, *spool, &o->raw));
    if (job.chunk >= 0) {
      const WrittenChunk& c = layout.chunks[job.chunk];
      std::string_view data = std::string_view(o->raw).substr(0, c.size);
      o->chunk_digest = Sha256::Of(data);
      if (!estargz) o->chunk_crc64 = Crc64Iso(0, data);
    }
    return compressors[thread]->Compress(o->raw, &o->compressed);
  };
  auto consume = [&](size_t i, JobOutput* o) { return sink.Consume(layout.jobs[i], o); };
  size_t window = static_cast<size_t>(threads) * 2 + 2;
  RETURN_IF_ERROR(RunOrdered(layout.jobs.size(), threads, window, work, consume));

  Compressor& tail = *compressors.back();
  if (estargz) {
    RETURN_IF_ERROR(WriteEstargzTail(members, order, layout, sink, tail, options.chunk_size,
                                     &result));
  } else {
    RETURN_IF_ERROR(WriteZstdChunkedTail(members, order, layout, spooled, *spool, sink, tail,
                                         &result));
  }
  sink.ReportDone();
  result.blob_size = sink.bytes();
  result.blob_digest = sink.FinishBlob();
  result.uncompressed_size = sink.uncompressed();
  result.diff_id = sink.FinishDiff();
  if (estargz) {
    result.annotations[kEstargzUncompressedSizeAnnotation] = StrCat(result.uncompressed_size);
  }
  return result;
}

}  // namespace lazysnap
