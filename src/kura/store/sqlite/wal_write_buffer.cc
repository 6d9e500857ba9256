// The buffered-WAL VFS: a shim over SQLite's default VFS whose WAL files gather appended frames.
#include "kura/store/sqlite/wal_write_buffer.h"

#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace kura::store {
namespace {

// The default VFS writes at most 128 KiB - 1 bytes per call (it masks larger lengths, so a
// larger buffer would not be written whole): 30 frames of 4 KiB pages fit below that.
constexpr size_t kBufferCapacity = 124 * 1024;
constexpr int kWalHeaderBytes = 32;
constexpr int kWalFrameHeaderBytes = 24;

sqlite3_vfs* g_real_vfs = nullptr;
sqlite3_vfs g_vfs;
std::atomic<int64_t> g_frames_written{0};
std::atomic<int64_t> g_file_writes{0};
std::atomic<int64_t> g_temporary_files{0};

// What SQLite allocates for a file of this VFS: this struct, then the default VFS's own file.
// SQLite hands over raw memory, so xOpen constructs the struct and xClose destroys it.
struct ShimFile {
  sqlite3_file base;  // Its pMethods is kShimMethods.
  sqlite3_file* real = nullptr;
  // A database file and its connection's WAL point at each other (see Open): the WAL buffers
  // only while it has its database file, which tells it when the write lock goes.
  ShimFile* wal = nullptr;         // Database file: its connection's WAL file, once open.
  ShimFile* db = nullptr;          // WAL file: its connection's database file.
  const char* wal_name = nullptr;  // Database file: the name its WAL will be opened with.
  bool commit_page_next = false;   // The last write was the header of a commit frame.
  sqlite3_int64 pending_offset = 0;
  std::vector<char> pending;  // WAL only: bytes not yet written, to go at pending_offset.
};

// Database files waiting for their WAL, by the WAL name's address: SQLite opens a connection's WAL
// with exactly the pointer sqlite3_filename_wal() gives for its database file's name, so the
// address tells connections to the same database apart.
std::mutex g_links_mu;
std::unordered_map<const char*, ShimFile*>& Links() {
  static auto* links = new std::unordered_map<const char*, ShimFile*>();
  return *links;
}

constexpr size_t kRealFileOffset = (sizeof(ShimFile) + 15) & ~size_t{15};

ShimFile* Shim(sqlite3_file* file) { return reinterpret_cast<ShimFile*>(file); }
const sqlite3_io_methods& Real(ShimFile* f) { return *f->real->pMethods; }

int Flush(ShimFile* f) {
  if (f->pending.empty()) return SQLITE_OK;
  g_file_writes.fetch_add(1, std::memory_order_relaxed);
  const int rc = Real(f).xWrite(f->real, f->pending.data(), static_cast<int>(f->pending.size()),
                                f->pending_offset);
  // On failure SQLite abandons the transaction; its frames must not be written later.
  f->pending.clear();
  return rc;
}

int Close(sqlite3_file* file) {
  ShimFile* f = Shim(file);
  const int flushed = Flush(f);
  {
    std::lock_guard<std::mutex> lock(g_links_mu);
    if (f->wal_name != nullptr) Links().erase(f->wal_name);
    if (f->wal != nullptr) f->wal->db = nullptr;
    if (f->db != nullptr) f->db->wal = nullptr;
  }
  const int closed = Real(f).xClose(f->real);
  f->~ShimFile();
  return flushed != SQLITE_OK ? flushed : closed;
}

// The default VFS's method `kMethod` on the file's own file, either straight or after writing out
// what the WAL buffer holds (whatever reads, sizes, locks or controls the file must find every
// frame in it).
template <auto kMethod>
struct Forward;
template <typename R, typename... Args, R (*sqlite3_io_methods::*kMethod)(sqlite3_file*, Args...)>
struct Forward<kMethod> {
  static R Call(sqlite3_file* file, Args... args) {
    ShimFile* f = Shim(file);
    return (Real(f).*kMethod)(f->real, args...);
  }
  static R FlushThenCall(sqlite3_file* file, Args... args) {
    ShimFile* f = Shim(file);
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
    return (Real(f).*kMethod)(f->real, args...);
  }
};

int Write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  ShimFile* f = Shim(file);
  if (f->db == nullptr) return Real(f).xWrite(f->real, data, amount, offset);
  // SQLite writes a frame as its header, then its page; a header with a non-zero database size
  // is a commit frame, and once its page is written the commit's frames are complete.
  const bool ends_commit = f->commit_page_next;
  f->commit_page_next = false;
  if (amount == kWalFrameHeaderBytes && offset >= kWalHeaderBytes) {
    g_frames_written.fetch_add(1, std::memory_order_relaxed);
    const auto* header = static_cast<const unsigned char*>(data);
    f->commit_page_next = (header[4] | header[5] | header[6] | header[7]) != 0;
  }
  const size_t size = static_cast<size_t>(amount);
  const bool follows = !f->pending.empty() &&
                       offset == f->pending_offset + static_cast<sqlite3_int64>(f->pending.size());
  if (!follows || f->pending.size() + size > kBufferCapacity) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (size > kBufferCapacity) {
    g_file_writes.fetch_add(1, std::memory_order_relaxed);
    return Real(f).xWrite(f->real, data, amount, offset);
  }
  if (f->pending.empty()) f->pending_offset = offset;
  const char* bytes = static_cast<const char*>(data);
  f->pending.insert(f->pending.end(), bytes, bytes + size);
  return ends_commit ? Flush(f) : SQLITE_OK;
}

// SQLite's WAL write lock is shared-memory lock 0 (WAL_WRITE_LOCK in wal.c).
constexpr int kWalWriteLock = 0;

int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  ShimFile* f = Shim(file);
  if (f->wal != nullptr && offset <= kWalWriteLock && kWalWriteLock < offset + n &&
      flags == (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE)) {
    // The write transaction is over. A commit left nothing behind (its commit frame flushed);
    // what is left belongs to a rolled-back one and must never be written: once the lock goes,
    // another writer (another process) may append its own frames at those offsets.
    f->wal->pending.clear();
    f->wal->commit_page_next = false;
  }
  return Real(f).xShmLock(f->real, offset, n, flags);
}

template <auto kMethod>
constexpr auto kCall = Forward<kMethod>::Call;
template <auto kMethod>
constexpr auto kFlushThenCall = Forward<kMethod>::FlushThenCall;

// Version 3, as the default unix VFS's files have (Open refuses a file with fewer methods).
const sqlite3_io_methods kShimMethods = {
    .iVersion = 3,
    .xClose = Close,
    .xRead = kFlushThenCall<&sqlite3_io_methods::xRead>,
    .xWrite = Write,
    .xTruncate = kFlushThenCall<&sqlite3_io_methods::xTruncate>,
    .xSync = kFlushThenCall<&sqlite3_io_methods::xSync>,
    .xFileSize = kFlushThenCall<&sqlite3_io_methods::xFileSize>,
    .xLock = kFlushThenCall<&sqlite3_io_methods::xLock>,
    .xUnlock = kFlushThenCall<&sqlite3_io_methods::xUnlock>,
    .xCheckReservedLock = kCall<&sqlite3_io_methods::xCheckReservedLock>,
    .xFileControl = kFlushThenCall<&sqlite3_io_methods::xFileControl>,
    .xSectorSize = kCall<&sqlite3_io_methods::xSectorSize>,
    .xDeviceCharacteristics = kCall<&sqlite3_io_methods::xDeviceCharacteristics>,
    .xShmMap = kCall<&sqlite3_io_methods::xShmMap>,
    .xShmLock = ShmLock,
    .xShmBarrier = kCall<&sqlite3_io_methods::xShmBarrier>,
    .xShmUnmap = kCall<&sqlite3_io_methods::xShmUnmap>,
    .xFetch = kFlushThenCall<&sqlite3_io_methods::xFetch>,
    .xUnfetch = kCall<&sqlite3_io_methods::xUnfetch>,
};

int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  ShimFile* f = new (file) ShimFile();
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealFileOffset);
  if ((flags & (SQLITE_OPEN_SUBJOURNAL | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TEMP_DB |
                SQLITE_OPEN_TRANSIENT_DB)) != 0) {
    g_temporary_files.fetch_add(1, std::memory_order_relaxed);
  }
  const int rc = g_real_vfs->xOpen(g_real_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK || f->real->pMethods == nullptr || f->real->pMethods->iVersion < 3) {
    // SQLite does not close a file whose open failed: nothing of ours may stay behind.
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    f->~ShimFile();
    file->pMethods = nullptr;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  file->pMethods = &kShimMethods;
  if (name != nullptr && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0) {
    std::lock_guard<std::mutex> lock(g_links_mu);
    if ((flags & SQLITE_OPEN_MAIN_DB) != 0) {
      f->wal_name = sqlite3_filename_wal(name);
      Links()[f->wal_name] = f;
    } else if (auto found = Links().find(name); found != Links().end()) {
      // (A WAL that matches no database file keeps db null and writes through unbuffered.)
      f->db = found->second;
      f->db->wal = f;
    }
  }
  return SQLITE_OK;
}

void Register() {
  g_real_vfs = sqlite3_vfs_find(nullptr);
  if (g_real_vfs == nullptr) return;
  g_vfs = *g_real_vfs;  // Everything but opening files is the default VFS's.
  g_vfs.pNext = nullptr;
  g_vfs.zName = "kura-buffered-wal";
  g_vfs.szOsFile = static_cast<int>(kRealFileOffset) + g_real_vfs->szOsFile;
  g_vfs.xOpen = Open;
  if (sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0) != SQLITE_OK) g_real_vfs = nullptr;
}

}  // namespace

const char* BufferedWalVfsName() {
  static std::once_flag once;
  std::call_once(once, Register);
  return g_real_vfs != nullptr ? g_vfs.zName : nullptr;
}

BufferedWalStats GetBufferedWalStats() {
  return {g_frames_written.load(std::memory_order_relaxed),
          g_file_writes.load(std::memory_order_relaxed),
          g_temporary_files.load(std::memory_order_relaxed)};
}

}  // namespace kura::store
