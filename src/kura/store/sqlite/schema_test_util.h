// Test-only: SQL that undoes a schema migration on a database file, for the tests that open a
// database an older version wrote and check what the migration makes of it.
#pragma once

namespace kura::store::testing {

// Schema 11 undone: its schema_migrations row. index_rows values written in version 2 stay so;
// the code reads both versions, and tests that go back further start here.
inline constexpr const char* kUndoSchemaElevenSql = R"sql(
DELETE FROM schema_migrations WHERE version = 11;
)sql";

// Schema 10 undone, its schema_migrations row included (after kUndoSchemaElevenSql): the
// per-record folded tables back, rebuilt from the folded records (their posting lists cannot be
// read in SQL).
inline constexpr const char* kUndoSchemaTenSql = R"sql(
CREATE TABLE audit_patients(
  patient TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(patient, seq)) WITHOUT ROWID;
INSERT OR IGNORE INTO audit_patients(patient, seq) SELECT p.value, a.seq
  FROM audit_log a, json_each(a.patients) p
  WHERE a.seq <= (SELECT through_seq FROM audit_index_fold);
CREATE TABLE audit_actors(
  actor TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(actor, seq)) WITHOUT ROWID;
INSERT INTO audit_actors(actor, seq) SELECT actor, seq FROM audit_log
  WHERE seq <= (SELECT through_seq FROM audit_index_fold);
DROP TABLE audit_postings;
DELETE FROM schema_migrations WHERE version = 10;
)sql";

// Schema 9 undone, its schema_migrations row included (after kUndoSchemaTenSql).
inline constexpr const char* kUndoSchemaNineSql = R"sql(
DROP TABLE index_state;
DELETE FROM schema_migrations WHERE version = 9;
)sql";

// Schema 8's tables, column and dropped indexes back as version 7 had them. Patient links of
// version 7 (audit_record_patients, audit_patient_fold) and the schema_migrations row are left to
// the caller, since each test wants them in its own state.
inline constexpr const char* kUndoSchemaEightSql = R"sql(
DROP TABLE audit_actors;
DROP TABLE audit_time_blocks;
DROP TABLE audit_index_fold;
ALTER TABLE audit_log DROP COLUMN patients;
CREATE INDEX audit_log_time ON audit_log(time_us);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
)sql";

}  // namespace kura::store::testing
