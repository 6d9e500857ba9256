"""`kura audit verify` on real data directories, and the audit records of administrative commands.

One server run (checkpoints every 5 records, JSON-lines sink configured) fills a pristine data
directory with audited FHIR requests. Every test works on its own copy of it (whole directory,
modes preserved) and edits the copy's database with sqlite3 as someone with disk access would:
each kind of tampering must make verify exit 1 and name the right finding; a clean log exits 0
and documents the run with a system/verify record; a tampered log is never appended to.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import time
import unittest

from harness import FHIR, KuraServer, KuraTestCase, find_bytes_in_tree, make_temp_root, \
    observation, run_cli

CHECKPOINT_EVERY = 5
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3

PRISTINE = {}  # root, data_dir, token, sink (path of the JSON-lines sink file)


def setUpModule():
    root = make_temp_root("kura-it-audit-")
    PRISTINE["root"] = root
    sink = os.path.join(root, "audit.jsonl")
    srv = KuraServer(root=root, env={"KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": str(CHECKPOINT_EVERY),
                                     "KURA_AUDIT_JSON_LINES_FILE": sink})
    try:
        p = srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        assert p.status == 201, p
        pid = p.json()["id"]
        for i in range(8):
            o = srv.request("POST", f"{FHIR}/Observation",
                            observation(f"v{i}", subject={"reference": f"Patient/{pid}"}))
            assert o.status == 201, o
            r = srv.request("GET", f"{FHIR}/Observation/{o.json()['id']}")
            assert r.status == 200, r
        assert srv.request("GET", f"{FHIR}/Patient/{pid}").status == 200
        # Every kind of write, so that the resource tables are compared with all of them:
        # update, patch, delete, deleting again, a refused update, a conditional create that
        # finds its match, and a transaction.
        obs = srv.request("GET", f"{FHIR}/Observation?subject=Patient/{pid}").json()
        first, second = (e["resource"] for e in obs["entry"][:2])
        first["status"] = "amended"
        assert srv.request("PUT", f"{FHIR}/Observation/{first['id']}", first).status == 200
        patch = [{"op": "replace", "path": "/status", "value": "corrected"}]
        assert srv.request("PATCH", f"{FHIR}/Observation/{first['id']}", patch,
                           content_type="application/json-patch+json").status == 200
        assert srv.request("DELETE", f"{FHIR}/Observation/{second['id']}").status == 204
        assert srv.request("DELETE", f"{FHIR}/Observation/{second['id']}").status == 204
        stale = srv.request("PUT", f"{FHIR}/Observation/{first['id']}", first,
                            headers={"If-Match": 'W/"1"'})
        assert stale.status == 412, stale
        tagged = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "t1"}]}
        assert srv.request("POST", f"{FHIR}/Patient", tagged).status == 201
        again = srv.request("POST", f"{FHIR}/Patient", tagged,
                            headers={"If-None-Exist": "identifier=urn:x|t1"})
        assert again.status == 200, again
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:8f4c1a5e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": dict(first, status="final"),
             "request": {"method": "PUT", "url": f"Observation/{first['id']}"}},
            {"request": {"method": "DELETE", "url": f"Patient/{again.json()['id']}"}}]}
        t = srv.request("POST", FHIR, bundle)
        assert t.status == 200, t
        rc = srv.stop(signal.SIGTERM)
        assert rc == 0, f"kura serve exited {rc}: {srv.log_text()}"
    except BaseException:
        srv.close()
        shutil.rmtree(root, ignore_errors=True)
        raise
    srv.close()  # The root is ours (root= given), so close() leaves the directory in place.
    PRISTINE.update(data_dir=srv.data_dir, token=srv.token, sink=sink)


def tearDownModule():
    shutil.rmtree(PRISTINE.get("root", ""), ignore_errors=True)


def open_db(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "kura.db"), timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def checkpoint_json_line(tree_size, time_us, note):
    """A checkpoint as the JSON-lines sink writes it (FormatCheckpointJsonLine)."""
    return json.dumps({"type": "checkpoint", "tree_size": tree_size, "time": "-",
                       "time_us": time_us, "note": note}, ensure_ascii=False) + "\n"


def checkpoint_syslog_line(tree_size, time_us, note):
    """A checkpoint as an RFC 5424 receiver stores it (docs/formats/audit-export.md, section 4)."""
    b64 = base64.b64encode(note.encode()).decode()
    return (f"<85>1 2026-01-01T00:00:00.000000Z host kura - audit.checkpoint "
            f"[kuraCheckpoint@32473 tree_size=\"{tree_size}\" time_us=\"{time_us}\" "
            f"note=\"{b64}\"] audit checkpoint tree_size={tree_size}\n")


def checkpoint_cef_line(tree_size, time_us, note):
    """A checkpoint as a CEF receiver stores it (`=` escaped as `\\=` in extension values)."""
    b64 = base64.b64encode(note.encode()).decode().replace("=", "\\=")
    return (f"CEF:0|Kura|Kura|0.1.0|audit.checkpoint|audit checkpoint|3|rt={time_us // 1000} "
            f"cn1Label=treeSize cn1={tree_size} cn2Label=timeMicros cn2={time_us} "
            f"cs1Label=checkpointNote cs1={b64}\n")


class AuditVerifyTests(KuraTestCase):

    # ---- helpers ---------------------------------------------------------------------------
    def fresh_copy(self):
        """A copy of the pristine data directory (modes preserved), removed after the test."""
        root = make_temp_root("kura-it-audit-copy-")
        self.addCleanup(shutil.rmtree, root, True)
        data = os.path.join(root, "data")
        shutil.copytree(PRISTINE["data_dir"], data, symlinks=True)
        self.assertEqual(mode(data), 0o700)
        self.assertEqual(mode(os.path.join(data, "keys", "master.key")), 0o600)
        return data

    def verify(self, data_dir, *extra, expect=None):
        """Runs `kura audit verify --json`; returns (CompletedProcess, report or None)."""
        res = run_cli(["audit", "verify", "--data-dir", data_dir, "--json", *extra])
        if expect is not None:
            self.assertEqual(res.returncode, expect, f"stdout: {res.stdout}\nstderr: {res.stderr}")
        report = None
        if res.stdout.strip():
            lines = res.stdout.strip().splitlines()
            self.assertEqual(len(lines), 1, f"--json must print one line: {res.stdout!r}")
            report = json.loads(lines[0])
        return res, report

    def assert_finding(self, data_dir, kind, sequence=None, extra=()):
        """Verify exits 1, names `kind` (at `sequence`) and appends nothing to the tampered log."""
        before = self.rows(data_dir)
        res, report = self.verify(data_dir, *extra, expect=EXIT_TAMPERED)
        self.assertIsNotNone(report, res.stderr)
        self.assertFalse(report["ok"], report)
        self.assertGreaterEqual(report["issue_count"], 1, report)
        kinds = [i["kind"] for i in report["issues"]]
        self.assertIn(kind, kinds, report)
        if sequence is not None:
            self.assertIn(sequence, [i["sequence"] for i in report["issues"] if i["kind"] == kind],
                          report)
        self.assertFalse(report["recorded"], report)
        self.assertEqual(self.rows(data_dir), before, "verify appended to a tampered log")
        self.assertIn("does not verify", res.stderr)
        # The human form names the finding too.
        plain = run_cli(["audit", "verify", "--data-dir", data_dir, *extra])
        self.assertEqual(plain.returncode, EXIT_TAMPERED, plain.stderr)
        self.assertIn("FAILED", plain.stdout)
        self.assertIn(kind, plain.stdout)
        return report

    def rows(self, data_dir):
        db = open_db(data_dir)
        try:
            return db.execute("SELECT seq, category, action, actor FROM audit_log ORDER BY seq"
                              ).fetchall()
        finally:
            db.close()

    def execute(self, data_dir, *statements):
        db = open_db(data_dir)
        try:
            db.execute("BEGIN")
            for sql, *args in statements:
                db.execute(sql, *args)
            db.execute("COMMIT")
        finally:
            db.close()

    def checkpoints(self, data_dir):
        """[(tree_size, time_us, note)] of the stored checkpoints, ascending."""
        db = open_db(data_dir)
        try:
            return db.execute("SELECT tree_size, time_us, note FROM audit_statements "
                              "WHERE kind = 0 ORDER BY tree_size").fetchall()
        finally:
            db.close()

    def sink_copy(self):
        """A file of checkpoints as kept outside the database.

        The server's JSON-lines sink when it shipped every checkpoint the database holds;
        otherwise (the exporter not wired into `kura serve` when this was written) a simulated
        SIEM copy: the pristine database's checkpoints written in FormatCheckpointJsonLine's
        shape, between record-like lines that verify must skip.
        """
        sink = PRISTINE["sink"]
        stored = {c[0] for c in self.checkpoints(PRISTINE["data_dir"])}
        if os.path.exists(sink):
            shipped = set()
            with open(sink, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and entry.get("type") == "checkpoint":
                        shipped.add(entry.get("tree_size"))
            if stored <= shipped:
                return sink
        path = os.path.join(make_temp_root("kura-it-audit-sink-"), "siem.jsonl")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "w", encoding="utf-8") as f:
            for tree_size, time_us, note in self.checkpoints(PRISTINE["data_dir"]):
                f.write('{"type":"record","sequence":0,"category":"fhir","action":"read"}\n')
                f.write(checkpoint_json_line(tree_size, time_us, note))
            f.write("\n")
        return path

    def write_lines(self, lines):
        path = os.path.join(make_temp_root("kura-it-audit-file-"), "checkpoints.log")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
        return path

    def middle_seq(self, data_dir):
        seqs = [r[0] for r in self.rows(data_dir)]
        return seqs[len(seqs) // 2]

    def flip_sealed_byte(self, data_dir):
        """Flips one bit in the middle of the middle record's sealed bytes; returns its sequence."""
        seq = self.middle_seq(data_dir)
        db = open_db(data_dir)
        (record,) = db.execute("SELECT record FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        db.close()
        flipped = bytearray(record)
        flipped[len(flipped) // 2] ^= 0x01
        self.execute(data_dir,
                     ("UPDATE audit_log SET record = ? WHERE seq = ?", (bytes(flipped), seq)))
        return seq

    # ---- a clean log ----------------------------------------------------------------------
    def test_pristine_log_holds_the_requests(self):
        rows = self.rows(PRISTINE["data_dir"])
        self.assertEqual(rows[0][1:], ("admin", "init", "kura-cli"), rows[:3])
        actions = {(r[1], r[2]) for r in rows}
        self.assertIn(("fhir", "create"), actions, rows)
        self.assertIn(("fhir", "read"), actions, rows)
        self.assertGreaterEqual(len(self.checkpoints(PRISTINE["data_dir"])), 3,
                                "the server signed too few checkpoints to test truncation")

    def test_clean_log_verifies_and_is_recorded(self):
        data = self.fresh_copy()
        before = self.rows(data)
        res, report = self.verify(data, expect=0)
        self.assertTrue(report["ok"], report)
        self.assertEqual(report["issues"], [])
        self.assertEqual(report["records_checked"], len(before))
        self.assertGreater(report["records_checked"], 0)
        self.assertEqual(report["tree_size"], len(before))
        self.assertGreaterEqual(report["checkpoints_matched"], 3, report)
        self.assertTrue(report["verifier_key"].startswith("kura/default/audit+"), report)
        self.assertTrue(report["recorded"], report)
        # Every resource ever written was compared with its writes, and all agree.
        self.assertIsNone(report["resources_not_checked"], report)
        db = open_db(data)
        (written,) = db.execute("SELECT COUNT(*) FROM resources").fetchone()
        (versions,) = db.execute("SELECT COUNT(*) FROM resource_versions").fetchone()
        db.close()
        self.assertEqual(report["resources_checked"], written, report)
        # And every stored version, delete markers included.
        self.assertEqual(report["versions_checked"], versions, report)
        self.assertGreater(versions, written)
        self.assertEqual(report["versions_unjudged"], 0, report)
        after = self.rows(data)
        self.assertEqual(len(after), len(before) + 1)
        self.assertEqual(after[-1][1:], ("system", "verify", "kura-cli"))
        self.assertEqual(res.stderr, "")
        # The next run checks the verify record too; the human form says OK.
        plain = run_cli(["audit", "verify", "--data-dir", data])
        self.assertEqual(plain.returncode, 0, plain.stderr)
        self.assertTrue(plain.stdout.startswith("OK: records [0, %d)" % len(after)), plain.stdout)
        self.assertIn("Recorded", plain.stdout)

    def test_no_record_leaves_the_database_untouched(self):
        data = self.fresh_copy()
        db_file = os.path.join(data, "kura.db")
        with open(db_file, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        _res, report = self.verify(data, "--no-record", expect=0)
        self.assertFalse(report["recorded"])
        self.assertEqual(report["not_recorded_reason"], "--no-record")
        with open(db_file, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest)

    def test_sink_copy_of_checkpoints_is_accepted(self):
        data = self.fresh_copy()
        sink = self.sink_copy()
        stored = len(self.checkpoints(data))
        _res, report = self.verify(data, "--checkpoints", sink, "--no-record", expect=0)
        self.assertGreater(report["external_checkpoints"], 0, report)
        # The same checkpoints as RFC 5424 and CEF lines, as other SIEMs keep them.
        for fmt in (checkpoint_syslog_line, checkpoint_cef_line):
            with self.subTest(fmt=fmt.__name__):
                path = self.write_lines([fmt(*c) for c in self.checkpoints(data)])
                _res, report = self.verify(data, "--checkpoints", path, "--no-record", expect=0)
                self.assertEqual(report["external_checkpoints"], stored, report)

    # ---- tampering ------------------------------------------------------------------------
    def test_modified_sealed_byte(self):
        data = self.fresh_copy()
        seq = self.flip_sealed_byte(data)
        self.assert_finding(data, "modified", seq)

    def test_modified_chain_hash(self):
        data = self.fresh_copy()
        seq = self.middle_seq(data)
        self.execute(data, ("UPDATE audit_log SET chain_hash = zeroblob(32) WHERE seq = ?", (seq,)))
        self.assert_finding(data, "modified", seq)

    def test_deleted_middle_row(self):
        data = self.fresh_copy()
        seq = self.middle_seq(data)
        self.execute(data, ("DELETE FROM audit_log WHERE seq = ?", (seq,)))
        self.assert_finding(data, "deleted", seq)

    def test_inserted_copied_row(self):
        # The sequence column is the table's primary key, so a copy cannot carry its own number
        # twice: it lands at a sequence that is not the one sealed inside it. The verifier names
        # that "reordered" (the row holds another record), at the row that was inserted.
        columns = "time_us, category, action, outcome, actor, record, leaf_hash, chain_hash"
        with self.subTest(where="end"):
            data = self.fresh_copy()
            seq = self.middle_seq(data)
            end = len(self.rows(data))
            self.execute(data, (f"INSERT INTO audit_log(seq, {columns}) SELECT ?, {columns} "
                                f"FROM audit_log WHERE seq = ?", (end, seq)))
            self.assert_finding(data, "reordered", end)
        with self.subTest(where="middle, tail renumbered"):
            data = self.fresh_copy()
            seq = self.middle_seq(data)
            self.execute(
                data,
                ("UPDATE audit_log SET seq = -(seq + 1) WHERE seq > ?", (seq,)),
                ("UPDATE audit_log SET seq = -seq WHERE seq < 0",),
                (f"INSERT INTO audit_log(seq, {columns}) SELECT ?, {columns} "
                 f"FROM audit_log WHERE seq = ?", (seq + 1, seq)))
            self.assert_finding(data, "reordered", seq + 1)

    def test_swapped_rows(self):
        data = self.fresh_copy()
        a = self.middle_seq(data)
        b = a + 2
        self.execute(data,
                     ("UPDATE audit_log SET seq = -1 WHERE seq = ?", (a,)),
                     ("UPDATE audit_log SET seq = ? WHERE seq = ?", (a, b)),
                     ("UPDATE audit_log SET seq = ? WHERE seq = -1", (b,)))
        self.assert_finding(data, "reordered", a)

    def test_edited_index_columns(self):
        # Record intact, search columns edited: the record no longer turns up under its actor or
        # its patients. Verification compares the columns with the sealed record.
        data = self.fresh_copy()
        seq = self.middle_seq(data)
        self.execute(data, ("UPDATE audit_log SET actor = 'kura-cli', patients = '[]' WHERE seq = ?",
                            (seq,)))
        report = self.assert_finding(data, "index-mismatch", seq)
        self.assertEqual([i["kind"] for i in report["issues"]], ["index-mismatch"], report)
        self.assertIn("actor, patients", report["issues"][0]["reason"], report)

    # ---- the resource tables against the writes the log records ---------------------------
    def resource(self, data_dir, where):
        """(type, id, version, seq) of the first current resource matching `where`."""
        db = open_db(data_dir)
        try:
            return db.execute("SELECT type, id, version, seq FROM resources WHERE deleted = 0 AND "
                              + where + " ORDER BY type, id LIMIT 1").fetchone()
        finally:
            db.close()

    def test_resource_pointed_back_at_an_older_version(self):
        data = self.fresh_copy()
        rtype, rid, version, _seq = self.resource(data, "version >= 3")
        self.execute(data, ("UPDATE resources SET version = 1, seq = (SELECT seq FROM "
                            "resource_versions WHERE type = ?1 AND id = ?2 AND version = 1) "
                            "WHERE type = ?1 AND id = ?2", (rtype, rid)))
        report = self.assert_finding(data, "resource-mismatch")
        (issue,) = [i for i in report["issues"] if i["kind"] == "resource-mismatch"]
        self.assertIn(f"{rtype}/{rid} is current at version 1, but its latest write", issue["reason"])
        self.assertIn(f"made version {version}", issue["reason"])
        self.assertEqual([i["kind"] for i in report["issues"]], ["resource-mismatch"], report)

    def test_resource_rows_deleted_undeleted_or_planted(self):
        with self.subTest("a current row deleted"):
            data = self.fresh_copy()
            rtype, rid, _v, _s = self.resource(data, "type = 'Observation'")
            self.execute(data, ("DELETE FROM resources WHERE type = ? AND id = ?", (rtype, rid)))
            report = self.assert_finding(data, "resource-mismatch")
            self.assertIn(f"{rtype}/{rid} has no current version",
                          " ".join(i["reason"] for i in report["issues"]))
        with self.subTest("a deleted resource made current again"):
            data = self.fresh_copy()
            self.execute(data, ("UPDATE resources SET deleted = 0, version = version - 1, seq = "
                                "(SELECT v.seq FROM resource_versions v WHERE v.type = "
                                "resources.type AND v.id = resources.id AND v.version = "
                                "resources.version - 1) WHERE type = 'Observation' AND "
                                "deleted = 1",))
            report = self.assert_finding(data, "resource-mismatch")
            self.assertIn("deleted it", " ".join(i["reason"] for i in report["issues"]))
        with self.subTest("a resource no request wrote"):
            data = self.fresh_copy()
            self.execute(data, ("INSERT INTO resources(type, id, version, deleted, seq) SELECT "
                                "type, 'planted', version, 0, seq FROM resources WHERE "
                                "type = 'Observation' AND deleted = 0 LIMIT 1",))
            report = self.assert_finding(data, "resource-mismatch")
            self.assertRegex(" ".join(i["reason"] for i in report["issues"]),
                             "Observation/planted is current at version [0-9]+, but the audit log "
                             "records no write of it")
        with self.subTest("--no-resources leaves them alone"):
            _res, report = self.verify(data, "--no-resources", expect=0)
            self.assertEqual(report["resources_not_checked"], "--no-resources")

    def test_history_rows_deleted_flipped_or_moved(self):
        older = "version = 1 AND (type, id) IN (SELECT type, id FROM resources WHERE version >= 3)"
        filed = "type = 'Observation' AND compartment != ''"
        # (what, which version, the edit, the finding's words, whether it is the only finding)
        cases = [
            ("an older version deleted", older, "DELETE FROM resource_versions",
             "is not stored, but record", False),
            ("an older version turned into a delete marker", older,
             "UPDATE resource_versions SET deleted = 1", "is stored as a delete marker", False),
            # A day earlier: `_lastUpdated` searches and `_since` history now place it there.
            ("a version moved in time", older,
             "UPDATE resource_versions SET last_updated = last_updated - 86400000000",
             "is stored with another lastUpdated", True),
            ("a version filed under another patient", filed,
             "UPDATE resource_versions SET compartment = 'someone-else'",
             "is stored in a patient compartment", True),
        ]
        for what, which, edit, words, only in cases:
            with self.subTest(what):
                data = self.fresh_copy()
                db = open_db(data)
                rtype, rid, version = db.execute(
                    "SELECT type, id, version FROM resource_versions WHERE " + which +
                    " ORDER BY seq LIMIT 1").fetchone()
                db.close()
                self.execute(data, (edit + " WHERE type = ? AND id = ? AND version = ?",
                                    (rtype, rid, version)))
                report = self.assert_finding(data, "resource-mismatch")
                if only:
                    self.assertEqual([i["kind"] for i in report["issues"]], ["resource-mismatch"],
                                     report)
                self.assertIn(f"{rtype}/{rid} version {version} {words}",
                              " ".join(i["reason"] for i in report["issues"]))

    def test_truncated_tail_needs_the_sink_copy(self):
        data = self.fresh_copy()
        stored = self.checkpoints(data)
        cut = stored[len(stored) // 2][0]  # A checkpoint with later ones after it.
        self.assertLess(cut, stored[-1][0])
        # Cut the records after the checkpoint and, to hide it, the later checkpoints too. The
        # saved appender state is left alone (an attacker could rewrite it; verify does not use it).
        self.execute(data,
                     ("DELETE FROM audit_log WHERE seq >= ?", (cut,)),
                     ("DELETE FROM audit_postings WHERE first_seq >= ?", (cut,)),
                     ("DELETE FROM audit_time_blocks WHERE last_seq >= ?", (cut,)),
                     ("DELETE FROM audit_statements WHERE kind = 0 AND tree_size > ?", (cut,)))
        report = self.assert_finding(data, "truncated", cut,
                                     extra=("--checkpoints", self.sink_copy()))
        self.assertEqual(report["tree_size"], cut)
        # The RFC 5424 copy of the same checkpoints proves it as well.
        syslog = self.write_lines([checkpoint_syslog_line(*c) for c in stored])
        self.assert_finding(data, "truncated", cut, extra=("--checkpoints", syslog))

    def test_forged_stored_checkpoint(self):
        data = self.fresh_copy()
        tree_size, _time, note = self.checkpoints(data)[0]
        lines = note.split("\n")
        lines[2] = base64.b64encode(b"\x00" * 32).decode()  # Another Merkle root.
        self.execute(data, ("UPDATE audit_statements SET note = ? WHERE kind = 0 AND tree_size = ?",
                            ("\n".join(lines), tree_size)))
        self.assert_finding(data, "bad-checkpoint")

    def test_forged_external_checkpoint(self):
        data = self.fresh_copy()
        tree_size, time_us, note = self.checkpoints(data)[-1]
        forged = note.replace(f"\n{tree_size}\n", f"\n{tree_size + 100}\n", 1)
        self.assertNotEqual(forged, note)
        path = self.write_lines([checkpoint_json_line(tree_size + 100, time_us, forged)])
        self.assert_finding(data, "bad-checkpoint", extra=("--checkpoints", path))

    def test_deleted_signing_key(self):
        data = self.fresh_copy()
        self.execute(data, ("DELETE FROM data_keys WHERE scope = 'audit-checkpoint-signing'",))
        report = self.assert_finding(data, "bad-checkpoint")
        self.assertIsNone(report["verifier_key"])

    # ---- refusals -------------------------------------------------------------------------
    def assert_cannot_run(self, args, *needles):
        res = run_cli(args)
        self.assertEqual(res.returncode, EXIT_CANNOT_RUN,
                         f"stdout: {res.stdout}\nstderr: {res.stderr}")
        self.assertEqual(res.stdout, "")
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertTrue(lines[0].startswith("kura audit verify: "), lines)
        for n in needles:
            self.assertIn(n, lines[0])

    def test_group_readable_key_file_is_refused(self):
        data = self.fresh_copy()
        key = os.path.join(data, "keys", "master.key")
        os.chmod(key, 0o640)
        self.assert_cannot_run(["audit", "verify", "--data-dir", data, "--json"], key)

    def test_missing_data_dir_and_database(self):
        root = make_temp_root()
        self.addCleanup(shutil.rmtree, root, True)
        missing = os.path.join(root, "missing")
        self.assert_cannot_run(["audit", "verify", "--data-dir", missing], missing)
        data = self.fresh_copy()
        os.remove(os.path.join(data, "kura.db"))
        self.assert_cannot_run(["audit", "verify", "--data-dir", data], "kura.db")
        self.assertFalse(os.path.exists(os.path.join(data, "kura.db")), "verify created a database")

    def test_foreign_key_file_is_refused(self):
        data = self.fresh_copy()
        other = os.path.join(make_temp_root(), "other")
        self.addCleanup(shutil.rmtree, os.path.dirname(other), True)
        self.assertEqual(run_cli(["init", "--data-dir", other]).returncode, 0)
        shutil.copy2(os.path.join(other, "keys", "master.key"),
                     os.path.join(data, "keys", "master.key"))
        self.assert_cannot_run(["audit", "verify", "--data-dir", data], "does not unwrap")

    def test_unreadable_checkpoint_file(self):
        data = self.fresh_copy()
        missing = os.path.join(data, "no-such-file.jsonl")
        self.assert_cannot_run(["audit", "verify", "--data-dir", data, "--checkpoints", missing],
                               missing)

    def test_verify_fails_closed_when_it_cannot_record(self):
        # The records verify, but the saved appender state is garbage: the log cannot be
        # continued, so the run cannot be documented and the command fails.
        data = self.fresh_copy()
        self.execute(data, ("UPDATE audit_state SET state = x'00'",))
        res, report = self.verify(data, expect=EXIT_CANNOT_RUN)
        self.assertTrue(report["ok"], report)
        self.assertFalse(report["recorded"], report)
        self.assertIn("audit record could not be written", res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)

    def test_usage_errors(self):
        for args, mention in ((["audit", "verify"], "--data-dir"),
                              (["audit"], None),
                              (["audit", "verify", "--data-dir", "/nonexistent", "--bogus"],
                               "--bogus")):
            with self.subTest(args=args):
                res = run_cli(args)
                self.assertEqual(res.returncode, EXIT_USAGE, res.stderr)
                self.assertEqual(res.stdout, "")
                self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
                if mention:
                    self.assertIn(mention, res.stderr)
        res = run_cli(["audit", "verify", "--help"])
        self.assertEqual(res.returncode, 0)
        for flag in ("--data-dir", "--json", "--checkpoints", "--no-record"):
            self.assertIn(flag, res.stdout)

    # ---- alongside the server, and the administrative commands -----------------------------
    def test_verify_while_the_server_runs(self):
        data = self.fresh_copy()
        srv = KuraServer(data_dir=data, root=os.path.dirname(data),
                         env={"KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": str(CHECKPOINT_EVERY)})
        self.addCleanup(srv.close)
        srv.token = PRISTINE["token"]
        for round_ in range(2):
            for i in range(3):
                self.assertStatus(srv.request("POST", f"{FHIR}/Observation",
                                              observation(f"r{round_}-{i}")), 201)
            _res, report = self.verify(data, expect=0)
            self.assertTrue(report["recorded"], report)
            # The server's writes would race a comparison of the resource tables.
            self.assertIn("kura server", report["resources_not_checked"], report)
        # The server goes on after the records this process appended, and so does the log.
        self.assertStatus(srv.request("POST", f"{FHIR}/Observation", observation("after")), 201)
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        _res, report = self.verify(data, expect=0)
        self.assertEqual(report["records_checked"], len(self.rows(data)) - 1)
        self.assertIsNone(report["resources_not_checked"], report)
        verify_rows = [r for r in self.rows(data) if r[1:] == ("system", "verify", "kura-cli")]
        self.assertEqual(len(verify_rows), 3)

    def server_verify_rows(self, data_dir):
        return [r for r in self.rows(data_dir) if r[1:] == ("system", "verify", "kura-server")]

    def test_the_server_verifies_on_schedule_and_reports_tampering(self):
        data = self.fresh_copy()
        # The server exports to its own copy of the pristine sink file, whose latest checkpoint
        # then joins every scheduled run.
        sink = os.path.join(os.path.dirname(data), "audit.jsonl")
        shutil.copyfile(PRISTINE["sink"], sink)
        srv = KuraServer(data_dir=data, root=os.path.dirname(data),
                         env={"KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": str(CHECKPOINT_EVERY),
                              "KURA_AUDIT_JSON_LINES_FILE": sink,
                              "KURA_AUDIT_VERIFY_EVERY_SECONDS": "1"})
        self.addCleanup(srv.close)
        srv.token = PRISTINE["token"]
        first = srv.wait_for_log(lambda r: r.get("event") == "audit_verified", 30)
        self.assertIsNotNone(first, srv.log_text())
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["external_checkpoints"], 1, first)
        self.assertGreaterEqual(first["records"], len(self.rows(PRISTINE["data_dir"])), first)
        self.assertGreaterEqual(len(self.server_verify_rows(data)), 1)
        # Runs go on, and cover what was appended since.
        for i in range(3):
            self.assertStatus(srv.request("POST", f"{FHIR}/Observation", observation(f"s{i}")),
                              201)
        start = len(srv.logs)
        later = srv.wait_for_log(lambda r: r.get("event") == "audit_verified"
                                 and r["records"] > first["records"] + 3, 30, start)
        self.assertIsNotNone(later, srv.log_text())
        self.assertNotIn("audit_log_tampered", srv.log_text())

        # Someone with write access to the database edits a record under the running server.
        seq = self.flip_sealed_byte(data)
        start = len(srv.logs)
        found = srv.wait_for_log(lambda r: r.get("event") == "audit_log_tampered", 30, start)
        self.assertIsNotNone(found, srv.log_text())
        self.assertEqual(found["level"], "error")
        self.assertEqual(found["first_issue"], "modified", found)
        self.assertEqual(found["first_bad_sequence"], seq, found)
        self.assertFalse(found["read_failed"], found)
        # Reported at every run until the log verifies again, and never recorded as clean.
        clean_rows = len(self.server_verify_rows(data))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(
                r.get("event") == "audit_log_tampered" for r in srv.log_records()) < 2:
            time.sleep(0.2)
        self.assertGreaterEqual(
            sum(r.get("event") == "audit_log_tampered" for r in srv.log_records()), 2,
            srv.log_text())
        self.assertIsNone(srv.wait_for_log(lambda r: r.get("event") == "audit_verified", 0.1,
                                           start))
        self.assertEqual(len(self.server_verify_rows(data)), clean_rows)
        # The server keeps serving (the finding is for people to act on, not a denial of service).
        self.assertStatus(srv.request("POST", f"{FHIR}/Observation", observation("after")), 201)
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        self.assert_finding(data, "modified", seq)

    def test_token_create_is_audited_and_fails_closed(self):
        data = self.fresh_copy()
        res = run_cli(["token", "create", "--data-dir", data, "--name", "ci-bot"])
        self.assertEqual(res.returncode, 0, res.stderr)
        token = res.stdout.strip()
        self.assertEqual(self.rows(data)[-1][1:], ("admin", "token-create", "kura-cli"))
        self.assertEqual(find_bytes_in_tree(data, [token.encode(), token[5:].encode()]), [])
        self.verify(data, expect=0)

        # An audit log that cannot be continued: the command fails and issues no token.
        db = open_db(data)
        (tokens,) = db.execute("SELECT COUNT(*) FROM api_tokens").fetchone()
        db.close()
        self.execute(data, ("UPDATE audit_state SET state = x'00'",))
        res = run_cli(["token", "create", "--data-dir", data, "--name", "refused"])
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout, "")
        self.assertIn("audit record could not be written", res.stderr)
        self.assertIn("no token was issued", res.stderr)
        db = open_db(data)
        self.assertEqual(db.execute("SELECT COUNT(*) FROM api_tokens").fetchone()[0], tokens)
        db.close()


if __name__ == "__main__":
    unittest.main()
