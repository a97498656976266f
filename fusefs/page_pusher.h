// PagePusher: daemon-side readahead for sequential reads of cached files. When a file is read
// sequentially (consecutive FUSE read requests), it pushes the next `window_bytes` of the file
// from the cache's data file into the kernel's page cache of the FUSE inode
// (FUSE_NOTIFY_STORE), from its own thread, ahead of the reader.
//
// Why: the kernel allocates a FUSE file's page cache in 4 KiB folios (6.18), in the reader's
// context, when its readahead runs; for a local ext4 file it uses large folios. On a
// sequential read of a cached file that allocation is most of the reader's CPU (profile in
// docs/fusefs.md). Pushed pages are allocated and filled on another CPU, so the reader only
// copies. Only bytes whose chunks are all present are pushed: a push never fetches, and a lazy
// read never pushes what is not cached. Pages the reader's own readahead already asked for are
// skipped (the push resumes behind the newest read request).
//
// Thread-safety: OnRead may be called from any thread; Stop and the destructor from one owner
// thread, not from a FUSE handler. The session and cache must outlive the pusher (Stop first).
#ifndef LAZYSNAP_FUSEFS_PAGE_PUSHER_H_
#define LAZYSNAP_FUSEFS_PAGE_PUSHER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache/layer_cache.h"
#include "format/index.h"

struct fuse_session;

namespace lazysnap {

struct PagePusherOptions {
  uint64_t window_bytes = 8ull << 20;  // pushed ahead of the newest read request; 0: off
  uint32_t piece_bytes = 256u << 10;   // one notify each (must fit a splice pipe)
};

struct PagePusherStats {
  uint64_t pushes = 0;        // successful notifies
  uint64_t pushed_bytes = 0;
  uint64_t skipped_bytes = 0;  // left out: the reader's readahead got there first, or not cached
  uint64_t errors = 0;        // failed notifies (the kernel no longer has the inode, ...)
};

class PagePusher {
 public:
  // `session` and `cache` are borrowed.
  PagePusher(fuse_session* session, LayerCache* cache, const PagePusherOptions& options);
  ~PagePusher();  // Stop()
  PagePusher(const PagePusher&) = delete;
  PagePusher& operator=(const PagePusher&) = delete;

  // The kernel asked for [offset, offset + size) of inode `ino` (regular file `file`, which
  // lives as long as the cache's index) and got it. Never blocks on I/O.
  void OnRead(uint64_t ino, const Entry& file, uint64_t offset, uint64_t size);
  // Ends the thread; later OnReads do nothing. Idempotent.
  void Stop();
  PagePusherStats stats() const;

 private:
  // A sequential reader of one inode.
  struct Stream {
    uint64_t id = 0;      // unique; 0: unused
    uint64_t ino = 0;
    const Entry* file = nullptr;
    uint64_t next = 0;    // end of the newest read request
    uint64_t pushed = 0;  // end of what was queued for pushing
    uint64_t used = 0;    // for LRU replacement
    int reads = 0;        // consecutive read requests seen
  };
  struct Job {
    size_t slot;  // in streams_
    uint64_t id;  // the stream's; the job ends when the slot holds another stream
    uint64_t ino;
    const Entry* file;
    uint64_t begin, end;
  };
  void Run();
  // Pushes [job.begin, job.end) piece by piece, skipping what the reader requested meanwhile.
  void Push(const Job& job);
  // The newest read end of the job's stream; UINT64_MAX once the stream was replaced.
  uint64_t ReadEnd(const Job& job);

  fuse_session* const session_;
  LayerCache* const cache_;
  const PagePusherOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar work_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::array<Stream, 8> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);  // started by the first job
  PagePusherStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_PAGE_PUSHER_H_
