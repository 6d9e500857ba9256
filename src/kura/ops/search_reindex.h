// Search indexes and the data register: which register the stored search rows were built under,
// the check `kura serve` runs before it serves, and `kura fhir reindex`, which rebuilds every
// current resource's rows under the configured register without writing new versions.
//
// The fingerprint is the hex SHA-256 of the index format (api::kSearchIndexFormat) and the
// register's canonical form, so a register file rewritten without changing a class keeps it.
// A register that moved a parameter from clear to blind would otherwise leave that parameter's
// existing rows in clear (and searches on it would miss them), so the server refuses to start on
// a mismatch (fail closed) until the reindex ran.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "kura/base/config.h"
#include "kura/base/status.h"
#include "kura/fhir/data_register.h"
#include "kura/store/store.h"

namespace kura::ops {

// The configured data register: fhir.data_register_file (relative to the data directory), or the
// one shipped with Kura. FailedPrecondition when the file cannot be read; the parser's
// InvalidArgument when it is not a valid register.
StatusOr<fhir::DataRegister> LoadDataRegister(const Config& config);

std::string SearchIndexFingerprint(const fhir::DataRegister& data_register);

// OK when the stored rows were built under `data_register`. With no fingerprint stored yet (a new
// database, or one from before fingerprints were kept) it records this one. FailedPrecondition
// naming `kura fhir reindex` when they differ.
Status CheckSearchIndexFingerprint(store::Store& store, const fhir::DataRegister& data_register);

struct ReindexResult {
  int64_t resources = 0;             // Current resources whose rows were rebuilt.
  std::string fingerprint;           // Now recorded.
  std::string previous_fingerprint;  // Recorded before; empty when none was.
};

// `kura fhir reindex`: with the directory locked (the server stopped), rebuilds the search rows
// of every current resource under the configured register, a few hundred resources per durable
// commit, then records the register's fingerprint. The rows replaced are deleted securely
// (SqliteStore zeroes freed content) and the WAL goes when the store closes, so no row of the
// previous classification is left in the database's files. Audited: an `admin`/`reindex` record
// before anything is read (none written: nothing done) and one with the count after; a failure
// after the first record is recorded when it can be. Safe to run again after an interruption:
// the fingerprint changes only once every resource is done.
StatusOr<ReindexResult> ReindexDataDirectory(const std::filesystem::path& data_dir,
                                             const Environment& env);

}  // namespace kura::ops
