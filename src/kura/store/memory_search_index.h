// MemorySearchIndex: the search-index rows of every current resource, held in memory as posting
// lists, and the IndexQuery evaluator over them (search_index.h).
//
// A backend keeps the rows durably in a compact form, one encoded value per resource
// (EncodeIndexRows), written in the resource's own commit, and rebuilds this index from them when
// it opens. Searches then never touch the database: a write adds one value instead of a B-tree
// entry per row, and a search intersects sorted lists of document numbers.
//
// Layout: every (type, id) gets a document number for life. A document keeps its rows with every
// string interned (reference counted, so values of deleted resources are freed); a posting list
// per (type, param, blind, key) and per (type, compartment) holds the numbers of the documents
// with such a row, sorted. A query starts from its smallest candidate list (the ids, an equality
// clause's values, the compartment, or else all documents of the type), intersects the other
// single-value equality lists and the compartment's, and checks every clause against each
// survivor's own rows. Results are ordered by the sort keys then by id, so a page sorts only the
// matches, never the whole type.
//
// Thread-safe: Apply() takes an exclusive lock, Search() a shared one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"
#include "kura/store/search_index.h"

namespace kura::store {

namespace internal {
struct SearchIndexState;
}  // namespace internal

// The durable form of one resource's rows. Decode returns DataLoss for malformed bytes.
std::string EncodeIndexRows(const std::vector<IndexEntry>& rows);
StatusOr<std::vector<IndexEntry>> DecodeIndexRows(std::string_view bytes);

// InvalidArgument unless every row has a parameter and either both range bounds or neither.
Status CheckIndexRows(const std::vector<IndexEntry>& rows);

// One resource's new state: its rows (current and not deleted) or its removal (deleted).
struct IndexChange {
  std::string_view type;
  std::string_view id;
  std::string_view compartment;
  bool deleted = false;
  const std::vector<IndexEntry>* rows = nullptr;  // Read during Apply only; unused when deleted.
};

struct MemorySearchIndexStats {
  int64_t documents = 0;  // Current, not deleted resources.
  int64_t rows = 0;
  int64_t strings = 0;  // Distinct interned values.
};

class MemorySearchIndex {
 public:
  MemorySearchIndex();
  ~MemorySearchIndex();
  MemorySearchIndex(const MemorySearchIndex&) = delete;
  MemorySearchIndex& operator=(const MemorySearchIndex&) = delete;

  // Applies the changes in order, atomically for searches (one exclusive lock).
  void Apply(const std::vector<IndexChange>& changes);

  // The matches of `query` (search_index.h, Store::Search). InvalidArgument for a malformed query.
  StatusOr<IndexPage> Search(const IndexQuery& query) const;
  // Search() when it examines at most `max_candidates` resources (over the query and its chains),
  // or nullopt: bounds the work a caller that must not stall (an I/O thread) can take on.
  std::optional<StatusOr<IndexPage>> Search(const IndexQuery& query, size_t max_candidates) const;

  MemorySearchIndexStats Stats() const;

 private:
  mutable std::shared_mutex mu_;
  std::unique_ptr<internal::SearchIndexState> state_;  // Guarded by mu_.
};

}  // namespace kura::store
