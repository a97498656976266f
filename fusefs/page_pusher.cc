#include "fusefs/page_pusher.h"


#include <algorithm>
#include <cstdint>
#include <utility>

#include "base/log.h"
#include "fusefs/fuse_ops.h"

namespace lazysnap {
namespace {

constexpr uint64_t kPage = 4096;

uint64_t PageUp(uint64_t x) { return (x + kPage - 1) / kPage * kPage; }

}  // namespace

PagePusher::PagePusher(fuse_session* session, LayerCache* cache, const PagePusherOptions& options)
    : session_(session), cache_(cache), options_(options) {}

PagePusher::~PagePusher() { Stop(); }

void PagePusher::Stop() {
  std::thread t;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    jobs_.clear();
    t = std::move(thread_);
  }
  work_.SignalAll();
  if (t.joinable()) t.join();
}

PagePusherStats PagePusher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void PagePusher::OnRead(uint64_t ino, const Entry& file, uint64_t offset, uint64_t size) {
  const uint64_t window = options_.window_bytes;
  if (window == 0 || size == 0) return;
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  clock_++;
  Stream* s = nullptr;
  for (Stream& c : streams_) {
    if (c.id != 0 && c.ino == ino && offset <= std::max(c.next, c.pushed) + window &&
        offset + size + window >= c.next) {
      s = &c;
      break;
    }
  }
  if (s == nullptr) {  // a new reader: replace the least recently used stream
    s = &*std::min_element(streams_.begin(), streams_.end(),
                           [](const Stream& a, const Stream& b) { return a.used < b.used; });
    *s = Stream{clock_, ino, &file, offset + size, offset + size, clock_, 1};
    return;
  }
  s->used = clock_;
  s->next = std::max(s->next, offset + size);
  if (++s->reads < 2) return;  // one request is not yet a sequential reader
  uint64_t begin = std::max(s->pushed, PageUp(s->next));
  uint64_t end = std::min<uint64_t>(file.size, s->next + window);
  if (end <= begin || (end - begin < options_.piece_bytes && end != file.size)) return;
  s->pushed = end;
  jobs_.push_back(Job{static_cast<size_t>(s - streams_.data()), s->id, ino, &file, begin, end});
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  work_.Signal();
}

uint64_t PagePusher::ReadEnd(const Job& job) {
  absl::MutexLock lock(&mu_);
  const Stream& s = streams_[job.slot];
  return s.id == job.id ? s.next : UINT64_MAX;
}

void PagePusher::Run() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      while (!stopped_ && jobs_.empty()) work_.Wait(&mu_);
      if (stopped_) return;
      job = jobs_.front();
      jobs_.pop_front();
    }
    Push(job);
  }
}

void PagePusher::Push(const Job& job) {
  uint64_t pushed = 0, skipped = 0, pushes = 0, errors = 0;
  uint64_t off = job.begin;
  while (off < job.end) {
    uint64_t read_end = ReadEnd(job);
    if (read_end >= job.end) {  // the reader got past the job, or another reader replaced it
      skipped += job.end - off;
      break;
    }
    if (read_end > off) {  // the reader's own readahead asked for these pages already
      read_end = std::min(PageUp(read_end), job.end);
      skipped += read_end - off;
      off = read_end;
      continue;
    }
    uint64_t len = std::min<uint64_t>(options_.piece_bytes, job.end - off);
    absl::StatusOr<DataRange> r = cache_->CachedRange(*job.file, off, len);
    if (!r.ok() || r->length == 0) {  // not cached: the reader's requests will fetch it
      skipped += job.end - off;
      break;
    }
    fuse_bufvec buf = FUSE_BUFVEC_INIT(r->length);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = r->fd;
    buf.buf[0].pos = static_cast<off_t>(r->offset);
    int rc = fuse_lowlevel_notify_store(session_, static_cast<fuse_ino_t>(job.ino),
                                        static_cast<off_t>(off), &buf,
                                        static_cast<fuse_buf_copy_flags>(0));
    if (rc != 0) {  // e.g. ENOENT: the kernel dropped the inode; ENODEV: unmounted
      LZ_LOG(kDebug, "fusefs: pushing ", r->length, " bytes of inode ", job.ino, ": errno ", -rc);
      errors++;
      skipped += job.end - off;
      break;
    }
    pushes++;
    pushed += r->length;
    off += r->length;
  }
  absl::MutexLock lock(&mu_);
  stats_.pushes += pushes;
  stats_.pushed_bytes += pushed;
  stats_.skipped_bytes += skipped;
  stats_.errors += errors;
}

}  // namespace lazysnap
