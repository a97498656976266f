#include "snapshotter/metadata_store.h"

#include <sqlite3.h>

#include <map>
#include <utility>

#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

absl::Status SqliteError(sqlite3* db, std::string_view what) {
  return absl::InternalError(StrCat("metadata: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement; finalized on destruction. Move-only.
class Stmt {
 public:
  static absl::StatusOr<Stmt> Prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
      return SqliteError(db, StrCat("prepare ", sql));
    }
    return Stmt(db, s);
  }
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  // Makes the statement ready to run again with new bindings.
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  // True when a row is available, false when done.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, StrCat("step ", sqlite3_sql(s_)));
  }
  absl::Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return absl::OkStatus();
  }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col))
             : std::string();
  }

 private:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  sqlite3* db_;
  sqlite3_stmt* s_;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(StrCat("metadata: ", sql, ": ", msg));
  }
  return absl::OkStatus();
}

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS snapshots (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  key        TEXT NOT NULL UNIQUE,
  parent_id  INTEGER REFERENCES snapshots(id),
  kind       INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  size       INTEGER NOT NULL DEFAULT 0,
  inodes     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS labels (
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
  name        TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, name)
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

// Columns: s.id, s.key, parent key, s.kind, created, updated, size, inodes.
constexpr char kSelectInfo[] =
    "SELECT s.id, s.key, p.key, s.kind, s.created_ns, s.updated_ns, s.size, s.inodes "
    "FROM snapshots s LEFT JOIN snapshots p ON s.parent_id = p.id ";

SnapshotEntry ReadEntry(Stmt& st) {
  SnapshotEntry e;
  e.id = std::to_string(st.Int(0));
  e.info.name = st.Text(1);
  e.info.parent = st.IsNull(2) ? "" : st.Text(2);
  e.info.kind = static_cast<Kind>(st.Int(3));
  e.info.created = absl::FromUnixNanos(st.Int(4));
  e.info.updated = absl::FromUnixNanos(st.Int(5));
  e.usage.size = st.Int(6);
  e.usage.inodes = st.Int(7);
  return e;
}

absl::StatusOr<Labels> ReadLabels(sqlite3* db, int64_t id) {
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT name, value FROM labels WHERE snapshot_id = ?"));
  st.Bind(1, id);
  Labels labels;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    labels[st.Text(0)] = st.Text(1);
  }
  return labels;
}

absl::Status WriteLabels(sqlite3* db, int64_t id, const Labels& labels) {
  ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db, "DELETE FROM labels WHERE snapshot_id = ?"));
  RETURN_IF_ERROR(del.Bind(1, id).Run());
  ASSIGN_OR_RETURN(Stmt ins,
                   Stmt::Prepare(db, "INSERT INTO labels(snapshot_id, name, value) VALUES(?, ?, ?)"));
  for (const auto& [k, v] : labels) {
    if (v.empty()) continue;  // as containerd's boltutil.WriteLabels: empty means unset
    ins.Reset();
    RETURN_IF_ERROR(ins.Bind(1, id).Bind(2, k).Bind(3, v).Run());
  }
  return absl::OkStatus();
}

std::optional<std::string> InfoField(const Info& info, const std::vector<std::string>& path) {
  if (path.empty()) return std::nullopt;
  const std::string& f = path[0];
  if (f == "kind") {
    if (info.kind == Kind::kUnknown) return std::nullopt;
    return std::string(KindName(info.kind));
  }
  if (f == "name") return info.name;
  if (f == "parent") return info.parent;
  if (f == "labels") {
    if (info.labels.empty()) return std::nullopt;
    std::vector<std::string> rest(path.begin() + 1, path.end());
    auto it = info.labels.find(absl::StrJoin(rest, "."));
    if (it == info.labels.end()) return std::nullopt;
    return it->second;
  }
  return std::nullopt;
}

int64_t ParseId(const std::string& id) { return std::stoll(id); }

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kView: return "view";
    case Kind::kActive: return "active";
    case Kind::kCommitted: return "committed";
    default: return "unknown";
  }
}

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<MetadataStore> store(new MetadataStore(db));
  sqlite3_busy_timeout(db, 10000);
  RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON"));
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  absl::Status s = Exec(db, kSchema);
  if (!s.ok()) {
    Exec(db, "ROLLBACK").IgnoreError();
    return s;
  }
  RETURN_IF_ERROR(Exec(db, "COMMIT"));
  return store;
}

MetadataStore::~MetadataStore() { sqlite3_close(db_); }

absl::StatusOr<std::unique_ptr<MetadataStore::Transaction>> MetadataStore::Begin(bool writable)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu_.Lock();
  absl::Status s = Exec(db_, writable ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!s.ok()) {
    mu_.Unlock();
    return s;
  }
  return std::unique_ptr<Transaction>(new Transaction(this, writable));
}

MetadataStore::Transaction::~Transaction() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (!done_) Exec(store_->db_, "ROLLBACK").IgnoreError();
  store_->mu_.Unlock();
}

absl::Status MetadataStore::Transaction::Commit() {
  if (done_) return absl::FailedPreconditionError("metadata: transaction already ended");
  done_ = true;
  absl::Status s = Exec(store_->db_, "COMMIT");
  if (!s.ok()) Exec(store_->db_, "ROLLBACK").IgnoreError();
  return s;
}

absl::Status MetadataStore::Transaction::RequireWritable() const {
  if (done_) return absl::FailedPreconditionError("metadata: transaction already ended");
  if (!writable_) return absl::FailedPreconditionError("metadata: read-only transaction");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MetadataStore::Transaction::ParentChain(int64_t id) {
  sqlite3* db = store_->db_;
  std::vector<std::string> chain;
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, "SELECT parent_id FROM snapshots WHERE id = ?"));
  std::optional<int64_t> cur = id;
  while (cur) {
    chain.push_back(std::to_string(*cur));
    q.Reset();
    q.Bind(1, *cur);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return absl::NotFoundError("missing parent: not found");
    cur = q.IsNull(0) ? std::nullopt : std::optional<int64_t>(q.Int(0));
  }
  return chain;
}

absl::StatusOr<SnapshotRecord> MetadataStore::Transaction::CreateSnapshot(
    Kind kind, const std::string& key, const std::string& parent, const Labels& labels) {
  RETURN_IF_ERROR(RequireWritable());
  if (kind != Kind::kActive && kind != Kind::kView) {
    return absl::InvalidArgumentError(
        StrCat("snapshot type ", KindName(kind),
               " invalid; only snapshots of type Active or View can be created"));
  }
  sqlite3* db = store_->db_;
  std::optional<int64_t> parent_id;
  if (!parent.empty()) {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT id, kind FROM snapshots WHERE key = ?"));
    ASSIGN_OR_RETURN(bool row, st.Bind(1, parent).Step());
    if (!row) return absl::NotFoundError(StrCat("missing parent \"", parent, "\": not found"));
    if (static_cast<Kind>(st.Int(1)) != Kind::kCommitted) {
      return absl::InvalidArgumentError(
          StrCat("parent \"", parent, "\" is not committed snapshot"));
    }
    parent_id = st.Int(0);
  }
  {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT 1 FROM snapshots WHERE key = ?"));
    ASSIGN_OR_RETURN(bool row, st.Bind(1, key).Step());
    if (row) return absl::AlreadyExistsError(StrCat("snapshot ", key, ": already exists"));
  }
  const int64_t now = absl::ToUnixNanos(absl::Now());
  ASSIGN_OR_RETURN(Stmt ins, Stmt::Prepare(db,
                                           "INSERT INTO snapshots(key, parent_id, kind, created_ns, "
                                           "updated_ns) VALUES(?, ?, ?, ?, ?)"));
  ins.Bind(1, key);
  if (parent_id) {
    ins.Bind(2, *parent_id);
  } else {
    ins.BindNull(2);
  }
  ins.Bind(3, static_cast<int64_t>(kind)).Bind(4, now).Bind(5, now);
  RETURN_IF_ERROR(ins.Run());
  const int64_t id = sqlite3_last_insert_rowid(db);
  RETURN_IF_ERROR(WriteLabels(db, id, labels));
  SnapshotRecord rec;
  rec.id = std::to_string(id);
  rec.kind = kind;
  if (parent_id) {
    ASSIGN_OR_RETURN(rec.parent_ids, ParentChain(*parent_id));
  }
  return rec;
}

absl::StatusOr<SnapshotEntry> MetadataStore::Transaction::GetInfo(const std::string& key) {
  if (done_) return absl::FailedPreconditionError("metadata: transaction already ended");
  sqlite3* db = store_->db_;
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, StrCat(kSelectInfo, "WHERE s.key = ?").c_str()));
  ASSIGN_OR_RETURN(bool row, st.Bind(1, key).Step());
  if (!row) return absl::NotFoundError(StrCat("snapshot ", key, " does not exist: not found"));
  SnapshotEntry e = ReadEntry(st);
  ASSIGN_OR_RETURN(e.info.labels, ReadLabels(db, ParseId(e.id)));
  return e;
}

absl::StatusOr<SnapshotRecord> MetadataStore::Transaction::GetSnapshot(const std::string& key) {
  ASSIGN_OR_RETURN(SnapshotEntry e, GetInfo(key));
  if (e.info.kind != Kind::kActive && e.info.kind != Kind::kView) {
    return absl::FailedPreconditionError(
        StrCat("requested snapshot ", key, " not active or view: failed precondition"));
  }
  SnapshotRecord rec;
  rec.id = e.id;
  rec.kind = e.info.kind;
  ASSIGN_OR_RETURN(std::vector<std::string> chain, ParentChain(ParseId(e.id)));
  rec.parent_ids.assign(chain.begin() + 1, chain.end());
  return rec;
}

absl::StatusOr<Info> MetadataStore::Transaction::UpdateInfo(
    const Info& info, const std::vector<std::string>& fieldpaths) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(SnapshotEntry e, GetInfo(info.name));
  Info updated = e.info;
  if (fieldpaths.empty()) {
    updated.labels = info.labels;
  }
  for (const std::string& path : fieldpaths) {
    if (path.rfind("labels.", 0) == 0) {
      std::string k = path.substr(7);
      auto it = info.labels.find(k);
      // containerd stores the (possibly empty) value it finds; an empty value is a delete
      // because labels with empty values are never written.
      if (it == info.labels.end() || it->second.empty()) {
        updated.labels.erase(k);
      } else {
        updated.labels[k] = it->second;
      }
    } else if (path == "labels") {
      updated.labels = info.labels;
    } else {
      return absl::InvalidArgumentError(
          StrCat("cannot update \"", path, "\" field on snapshot \"", info.name,
                 "\": invalid argument"));
    }
  }
  // containerd's boltutil.WriteLabels skips empty values.
  for (auto it = updated.labels.begin(); it != updated.labels.end();) {
    it = it->second.empty() ? updated.labels.erase(it) : std::next(it);
  }
  updated.updated = absl::Now();
  sqlite3* db = store_->db_;
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "UPDATE snapshots SET updated_ns = ? WHERE id = ?"));
  RETURN_IF_ERROR(st.Bind(1, absl::ToUnixNanos(updated.updated)).Bind(2, ParseId(e.id)).Run());
  RETURN_IF_ERROR(WriteLabels(db, ParseId(e.id), updated.labels));
  return updated;
}

absl::StatusOr<std::vector<Info>> MetadataStore::Transaction::List(const Filter& filter) {
  if (done_) return absl::FailedPreconditionError("metadata: transaction already ended");
  sqlite3* db = store_->db_;
  std::map<int64_t, Labels> labels;
  {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT snapshot_id, name, value FROM labels"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      labels[st.Int(0)][st.Text(1)] = st.Text(2);
    }
  }
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, StrCat(kSelectInfo, "ORDER BY s.key").c_str()));
  std::vector<Info> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    SnapshotEntry e = ReadEntry(st);
    auto it = labels.find(ParseId(e.id));
    if (it != labels.end()) e.info.labels = std::move(it->second);
    const Info& info = e.info;
    if (filter.Match([&info](const std::vector<std::string>& p) { return InfoField(info, p); })) {
      out.push_back(std::move(e.info));
    }
  }
  return out;
}

absl::StatusOr<SnapshotRecord> MetadataStore::Transaction::Remove(const std::string& key) {
  RETURN_IF_ERROR(RequireWritable());
  sqlite3* db = store_->db_;
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT id, kind FROM snapshots WHERE key = ?"));
  ASSIGN_OR_RETURN(bool row, st.Bind(1, key).Step());
  if (!row) return absl::NotFoundError(StrCat("snapshot ", key, ": not found"));
  const int64_t id = st.Int(0);
  SnapshotRecord rec;
  rec.id = std::to_string(id);
  rec.kind = static_cast<Kind>(st.Int(1));
  {
    ASSIGN_OR_RETURN(Stmt c, Stmt::Prepare(db, "SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1"));
    ASSIGN_OR_RETURN(bool child, c.Bind(1, id).Step());
    if (child) {
      return absl::FailedPreconditionError(
          StrCat("cannot remove snapshot ", key, " with child: failed precondition"));
    }
  }
  ASSIGN_OR_RETURN(Stmt dl, Stmt::Prepare(db, "DELETE FROM labels WHERE snapshot_id = ?"));
  RETURN_IF_ERROR(dl.Bind(1, id).Run());
  ASSIGN_OR_RETURN(Stmt ds, Stmt::Prepare(db, "DELETE FROM snapshots WHERE id = ?"));
  RETURN_IF_ERROR(ds.Bind(1, id).Run());
  return rec;
}

absl::StatusOr<std::string> MetadataStore::Transaction::CommitActive(const std::string& key,
                                                                     const std::string& name,
                                                                     const Usage& usage,
                                                                     const Labels& labels) {
  RETURN_IF_ERROR(RequireWritable());
  sqlite3* db = store_->db_;
  {
    ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT 1 FROM snapshots WHERE key = ?"));
    ASSIGN_OR_RETURN(bool row, st.Bind(1, name).Step());
    if (row) return absl::AlreadyExistsError(StrCat("committed snapshot ", name, ": already exists"));
  }
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, "SELECT id, kind FROM snapshots WHERE key = ?"));
  ASSIGN_OR_RETURN(bool row, st.Bind(1, key).Step());
  if (!row) {
    return absl::NotFoundError(StrCat("failed to get active snapshot \"", key, "\": not found"));
  }
  const int64_t id = st.Int(0);
  if (static_cast<Kind>(st.Int(1)) != Kind::kActive) {
    return absl::FailedPreconditionError(
        StrCat("snapshot \"", key, "\" is not active: failed precondition"));
  }
  const int64_t now = absl::ToUnixNanos(absl::Now());
  ASSIGN_OR_RETURN(Stmt up, Stmt::Prepare(db,
                                          "UPDATE snapshots SET key = ?, kind = ?, created_ns = ?, "
                                          "updated_ns = ?, size = ?, inodes = ? WHERE id = ?"));
  up.Bind(1, name).Bind(2, static_cast<int64_t>(Kind::kCommitted)).Bind(3, now).Bind(4, now);
  up.Bind(5, usage.size).Bind(6, usage.inodes).Bind(7, id);
  RETURN_IF_ERROR(up.Run());
  RETURN_IF_ERROR(WriteLabels(db, id, labels));
  return std::to_string(id);
}

absl::StatusOr<std::set<std::string>> MetadataStore::Transaction::Ids() {
  if (done_) return absl::FailedPreconditionError("metadata: transaction already ended");
  ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(store_->db_, "SELECT id FROM snapshots"));
  std::set<std::string> ids;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ids.insert(std::to_string(st.Int(0)));
  }
  return ids;
}

}  // namespace lazysnap
