// A SQLite VFS over the default one that writes each commit's WAL frames with one system call.
//
// SQLite writes a WAL frame as two pwrite() calls (its 24-byte header, then the page), so a commit
// of n pages costs 2n system calls before its fsync; on virtual machines, where a system call is
// expensive, that was a quarter of the writer thread's time. Through this VFS the frames a
// connection appends to its WAL gather in a per-file buffer and reach the file in one pwrite when
// SQLite syncs the WAL, when the commit frame is written (so readers, which learn of the frames
// from the shared-memory index only after that, never find them missing even without a sync), when
// the buffer fills, or before any other operation on the file (read, size, truncate, lock, close).
// What is still buffered when the connection gives up the WAL write lock belongs to a rolled-back
// transaction and is dropped: written later, it could land on frames another writer (another
// process) appended meanwhile. A WAL the VFS cannot pair with its connection's database file is
// written through unbuffered. Nothing else changes: the database, the WAL format and the fsyncs
// are SQLite's own, and other processes open the same files with the default VFS.
#pragma once

#include <cstdint>

namespace kura::store {

// Registers the VFS (once; thread-safe) and returns its name for sqlite3_open_v2, or nullptr when
// SQLite has no default VFS to build on (then the caller uses the default).
const char* BufferedWalVfsName();

// Process-wide counts of what connections through the VFS did.
struct BufferedWalStats {
  int64_t frames_written = 0;   // WAL frames (header and page) SQLite wrote to buffered WALs.
  int64_t file_writes = 0;      // pwrite() calls they became.
  int64_t temporary_files = 0;  // Temporary files opened (sub-journals, spilled sorts).
};
BufferedWalStats GetBufferedWalStats();

}  // namespace kura::store
