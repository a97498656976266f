// MetadataStore: the snapshotter's persistent metadata in SQLite (WAL), with the semantics of
// containerd's snapshots/storage package: snapshots by key, numeric ids that are never reused
// (they name the directories), parent chains by id, kinds, labels, times and committed usage.
//
// Every operation runs inside a Transaction; a write transaction either commits as a whole or
// leaves nothing behind, also across a crash, so there is never a half-made snapshot.
#ifndef LAZYSNAP_SNAPSHOTTER_METADATA_STORE_H_
#define LAZYSNAP_SNAPSHOTTER_METADATA_STORE_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "snapshotter/filter.h"
#include "snapshotter/snapshot.h"

struct sqlite3;

namespace lazysnap {

// What a snapshot's mounts are built from (containerd's storage.Snapshot).
struct SnapshotRecord {
  std::string id;
  Kind kind = Kind::kUnknown;
  std::vector<std::string> parent_ids;  // nearest parent first
};

// Full metadata of one snapshot.
struct SnapshotEntry {
  std::string id;
  Info info;
  Usage usage;  // as recorded at commit; zero for active and view snapshots
};

class MetadataStore {
 public:
  class Transaction;

  // Opens (creating if needed) the database at `path`. The store owns the connection.
  static absl::StatusOr<std::unique_ptr<MetadataStore>> Open(const std::string& path);
  ~MetadataStore();
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  // Starts a transaction. Transactions of one store are serialized: this blocks until the
  // previous one has ended. The Transaction must not outlive the store. Thread-safe.
  absl::StatusOr<std::unique_ptr<Transaction>> Begin(bool writable);

 private:
  explicit MetadataStore(sqlite3* db) : db_(db) {}
  absl::Mutex mu_;        // held for the lifetime of each Transaction
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);  // owned; used by the Transaction holding mu_
};

// One transaction. Not thread-safe; use from one thread. Destroying it without Commit() rolls
// everything back. Errors carry containerd's codes: NotFound, AlreadyExists,
// FailedPrecondition, InvalidArgument.
class MetadataStore::Transaction {
 public:
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Makes the writes durable. After Commit (even a failed one) the transaction is over.
  absl::Status Commit();

  // Inserts an active or view snapshot `key` on the committed snapshot `parent` (may be
  // empty). NotFound: no such parent; InvalidArgument: parent not committed or bad kind;
  // AlreadyExists: key taken.
  absl::StatusOr<SnapshotRecord> CreateSnapshot(Kind kind, const std::string& key,
                                                const std::string& parent, const Labels& labels);
  // Any snapshot by key or name. NotFound when absent.
  absl::StatusOr<SnapshotEntry> GetInfo(const std::string& key);
  // An active or view snapshot with its parent chain. FailedPrecondition for committed ones.
  absl::StatusOr<SnapshotRecord> GetSnapshot(const std::string& key);
  // Updates the mutable fields of info.name: `fieldpaths` "labels" or "labels.KEY", or all
  // of them (the labels) when empty. Any other path is InvalidArgument. Returns the result.
  absl::StatusOr<Info> UpdateInfo(const Info& info, const std::vector<std::string>& fieldpaths);
  // All snapshots matching `filter` (fields: name, parent, kind, labels.KEY), in key order.
  absl::StatusOr<std::vector<Info>> List(const Filter& filter);
  // Deletes `key`; returns its id and kind. FailedPrecondition ("cannot remove snapshot with
  // child") while any snapshot names it as parent.
  absl::StatusOr<SnapshotRecord> Remove(const std::string& key);
  // Turns active `key` into committed `name` with `usage` and (replaced, not inherited)
  // `labels`; the id is kept. AlreadyExists: name taken; NotFound: no key;
  // FailedPrecondition: key not active.
  absl::StatusOr<std::string> CommitActive(const std::string& key, const std::string& name,
                                           const Usage& usage, const Labels& labels);
  // Ids of all snapshots: a directory whose name is not among them is garbage.
  absl::StatusOr<std::set<std::string>> Ids();

 private:
  friend class MetadataStore;
  Transaction(MetadataStore* store, bool writable) : store_(store), writable_(writable) {}
  absl::Status RequireWritable() const;
  absl::StatusOr<std::vector<std::string>> ParentChain(int64_t id);

  MetadataStore* const store_;  // mu_ held from Begin until destruction
  const bool writable_;
  bool done_ = false;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_METADATA_STORE_H_
