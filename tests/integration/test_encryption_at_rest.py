"""Encryption at rest: no plaintext on disk (db, -wal, -shm, anything), tamper detection."""

import base64
import os
import signal
import sqlite3
import unittest

from harness import FHIR, KuraServer, KuraTestCase, find_bytes_in_tree, observation, random_marker


def open_db(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


class PlaintextScanTests(KuraTestCase):

    def setUp(self):
        self.srv = KuraServer()
        self.addCleanup(self.srv.close)

    def marker_forms(self, markers):
        """The markers as raw bytes plus UTF-16 and base64 forms."""
        forms = []
        for m in markers:
            b = m.encode()
            forms += [b, m.encode("utf-16-le"), m.encode("utf-16-be"), base64.b64encode(b)[:20],
                      b.hex().encode()]
        return forms

    def test_no_plaintext_in_any_file_or_log(self):
        fam = random_marker("Fam")          # in a created Patient
        upd = random_marker("Upd")          # only in an update of that Patient
        obs = random_marker("Obs")          # in an Observation in the patient's compartment
        sysm = random_marker("Sys")         # in a resource outside any compartment
        markers = [fam, upd, obs, sysm]
        c = self.srv.request("POST", f"{FHIR}/Patient", {
            "resourceType": "Patient", "name": [{"family": fam, "given": [fam]}],
            "identifier": [{"system": "urn:ssn", "value": fam}]})
        self.assertEqual(c.status, 201, c)
        pid = c.json()["id"]
        u = self.srv.request("PUT", f"{FHIR}/Patient/{pid}", {
            "resourceType": "Patient", "id": pid, "name": [{"family": upd}],
            "telecom": [{"system": "email", "value": upd + "@example.org"}]})
        self.assertEqual(u.status, 200, u)
        for i in range(20):  # Enough writes to leave WAL frames behind.
            r = self.srv.request("POST", f"{FHIR}/Observation", observation(
                f"{obs}-{i}", subject={"reference": f"Patient/{pid}"}))
            self.assertEqual(r.status, 201, r)
        oid = r.json()["id"]
        r = self.srv.request("POST", f"{FHIR}/Organization", {"resourceType": "Organization", "name": sysm})
        self.assertEqual(r.status, 201, r)
        self.assertStatus(self.srv.request("DELETE", f"{FHIR}/Observation/{oid}"), 204)

        # Positive controls: the data is really there (API) and the scan really reads the db.
        self.assertIn(upd, self.srv.request("GET", f"{FHIR}/Patient/{pid}").text)
        self.assertIn(fam, self.srv.request("GET", f"{FHIR}/Patient/{pid}/_history/1").text)
        hist = self.srv.request("GET", f"{FHIR}/_history?_count=1000")
        self.assertIn(obs, hist.text)
        self.assertIn(sysm, hist.text)
        files = sorted(os.listdir(self.srv.data_dir))
        self.assertIn("kura.db", files)
        self.assertTrue(find_bytes_in_tree(self.srv.data_dir, [pid.encode()]),
                        "control: resource ids are stored in clear, the scan should see them")

        forms = self.marker_forms(markers)
        hits = find_bytes_in_tree(self.srv.data_dir, forms)
        self.assertEqual(hits, [], "plaintext found on disk while the server runs")
        self.assertTrue(any(f.endswith("-wal") for f in os.listdir(self.srv.data_dir)),
                        "expected a WAL file while running: " + str(os.listdir(self.srv.data_dir)))

        self.assertEqual(self.srv.stop(signal.SIGTERM), 0)
        hits = find_bytes_in_tree(self.srv.data_dir, forms)
        self.assertEqual(hits, [], "plaintext found on disk after shutdown")
        logs = self.srv.log_text().encode()
        for f in forms:
            self.assertNotIn(f, logs, "a marker reached the logs")

        # And after a restart the data is still readable (it was encrypted, not lost).
        self.srv.start()
        self.assertIn(upd, self.srv.request("GET", f"{FHIR}/Patient/{pid}").text)


class TamperTests(KuraTestCase):
    # These tests edit the database under a running server. The record cache would keep serving
    # the authentic copy it already holds, so it is off here and every read meets the edited row;
    # test_tampering_is_caught_once_the_cache_is_gone covers the default configuration.

    def setUp(self):
        self.srv = KuraServer(env={"KURA_STORAGE_RECORD_CACHE_MIB": "0"})
        self.addCleanup(self.srv.close)

    def create(self, value, type_="Observation"):
        body = observation(value) if type_ == "Observation" else {
            "resourceType": "Patient", "name": [{"family": value}]}
        r = self.srv.request("POST", f"{FHIR}/{type_}", body)
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def payload(self, db, type_, rid, version=1):
        row = db.execute("SELECT payload FROM resource_versions WHERE type=? AND id=? AND version=?",
                         (type_, rid, version)).fetchone()
        self.assertIsNotNone(row, (type_, rid, version))
        return bytes(row[0])

    def set_payload(self, db, type_, rid, version, data):
        cur = db.execute("UPDATE resource_versions SET payload=? WHERE type=? AND id=? AND version=?",
                         (data, type_, rid, version))
        self.assertEqual(cur.rowcount, 1)

    def assert_decryption_failed(self, path, secret=None):
        start = len(self.srv.logs)
        r = self.srv.request("GET", path)
        self.assertOperationOutcome(r, 500, diagnostics="decryption failed")
        if secret:
            self.assertNotIn(secret, r.text)
        self.assertEqual(r.json()["issue"][0]["severity"], "fatal")
        self.assertSecurityHeaders(r, "500 decryption failed")
        rec = self.srv.wait_for_log(lambda x: x.get("event") == "integrity_failure", 5, start)
        self.assertIsNotNone(rec, "no integrity_failure log line")
        self.assertEqual(rec.get("level"), "error")
        req = self.srv.request_log(r.header("X-Request-Id"))
        self.assertIsNotNone(req, "no request log line for the failed read")
        self.assertEqual(req["status"], 500)
        return r

    def assert_no_payload_in_logs(self, secrets, payloads):
        text = self.srv.log_text()
        for s in secrets:
            self.assertNotIn(s, text)
        for p in payloads:
            for form in (p.hex(), base64.b64encode(p).decode()):
                self.assertNotIn(form[8:40], text, "payload bytes reached the logs")

    def flip(self, data, index):
        b = bytearray(data)
        b[index] ^= 0x01
        return bytes(b)

    def test_flipped_byte_detected_while_running(self):
        secrets = [random_marker("Sec") for _ in range(4)]
        ids = [self.create(s) for s in secrets[:3]]
        pid = self.create(secrets[3], "Patient")
        db = open_db(self.srv.db_path)
        self.addCleanup(db.close)
        originals = []
        # Positions: ciphertext middle, tag (last byte), nonce (header byte 12).
        for rid, pos in zip(ids, ("mid", "last", 12)):
            p = self.payload(db, "Observation", rid)
            originals.append(p)
            index = len(p) // 2 if pos == "mid" else len(p) - 1 if pos == "last" else pos
            self.set_payload(db, "Observation", rid, 1, self.flip(p, index))
        for rid, secret in zip(ids, secrets):
            with self.subTest(rid=rid):
                self.assert_decryption_failed(f"{FHIR}/Observation/{rid}", secret)
                self.assert_decryption_failed(f"{FHIR}/Observation/{rid}/_history/1", secret)
        # The server keeps running; untouched resources are fine.
        g = self.srv.request("GET", f"{FHIR}/Patient/{pid}")
        self.assertStatus(g, 200)
        self.assertIn(secrets[3], g.text)
        self.assertStatus(self.srv.request("GET", f"{FHIR}/metadata"), 200)
        new = self.create("after")
        self.assertStatus(self.srv.request("GET", f"{FHIR}/Observation/{new}"), 200)
        self.assertTrue(self.srv.running())
        self.assert_no_payload_in_logs(secrets, originals)

    def test_flipped_byte_detected_after_restart(self):
        secret, other = random_marker("Sec"), random_marker("Oth")
        rid = self.create(secret)
        keep = self.create(other)
        self.assertEqual(self.srv.stop(), 0)
        db = open_db(self.srv.db_path)
        p = self.payload(db, "Observation", rid)
        self.set_payload(db, "Observation", rid, 1, self.flip(p, 30))
        db.close()
        self.srv.start()
        self.assert_decryption_failed(f"{FHIR}/Observation/{rid}", secret)
        self.assert_decryption_failed(f"{FHIR}/Observation/{rid}/_history", secret)
        g = self.srv.request("GET", f"{FHIR}/Observation/{keep}")
        self.assertStatus(g, 200)
        self.assertIn(other, g.text)
        self.assert_no_payload_in_logs([secret, other], [p])

    def test_tampering_is_caught_once_the_cache_is_gone(self):
        # Default configuration (record cache on): the running server keeps answering from the
        # authentic copy it holds, and once restarted it reads the edited row and fails closed.
        self.srv.close()
        self.srv = KuraServer()
        self.addCleanup(self.srv.close)
        secret = random_marker("Sec")
        rid = self.create(secret)
        db = open_db(self.srv.db_path)
        p = self.payload(db, "Observation", rid)
        self.set_payload(db, "Observation", rid, 1, self.flip(p, len(p) // 2))
        db.close()
        r = self.srv.request("GET", f"{FHIR}/Observation/{rid}")
        self.assertStatus(r, 200)
        self.assertIn(secret, r.text)
        self.assertEqual(self.srv.stop(), 0)
        self.srv.start()
        self.assert_decryption_failed(f"{FHIR}/Observation/{rid}", secret)

    def test_truncated_and_header_damaged_records(self):
        secrets = [random_marker("Sec") for _ in range(3)]
        ids = [self.create(s) for s in secrets]
        db = open_db(self.srv.db_path)
        self.addCleanup(db.close)
        p0 = self.payload(db, "Observation", ids[0])
        self.set_payload(db, "Observation", ids[0], 1, p0[:10])           # truncated
        p1 = self.payload(db, "Observation", ids[1])
        self.set_payload(db, "Observation", ids[1], 1, self.flip(p1, 0))  # format version
        p2 = self.payload(db, "Observation", ids[2])
        self.set_payload(db, "Observation", ids[2], 1, self.flip(p2, 5))  # key id
        for rid, s in zip(ids, secrets):
            with self.subTest(rid=rid):
                self.assert_decryption_failed(f"{FHIR}/Observation/{rid}", s)
        self.assertTrue(self.srv.running())

    def test_record_swapped_between_resources(self):
        a_secret, b_secret = random_marker("A"), random_marker("B")
        a = self.create(a_secret)
        b = self.create(b_secret)
        db = open_db(self.srv.db_path)
        self.addCleanup(db.close)
        pa = self.payload(db, "Observation", a)
        self.set_payload(db, "Observation", b, 1, pa)  # A's valid record under B's row
        r = self.assert_decryption_failed(f"{FHIR}/Observation/{b}")
        self.assertNotIn(a_secret, r.text, "a record moved to another row decrypted")
        g = self.srv.request("GET", f"{FHIR}/Observation/{a}")
        self.assertStatus(g, 200)
        self.assertIn(a_secret, g.text)

    def test_record_swapped_between_versions(self):
        v1, v2 = random_marker("V1"), random_marker("V2")
        rid = self.create(v1)
        u = self.srv.request("PUT", f"{FHIR}/Observation/{rid}", observation(v2, id=rid))
        self.assertStatus(u, 200)
        db = open_db(self.srv.db_path)
        self.addCleanup(db.close)
        p1 = self.payload(db, "Observation", rid, 1)
        self.set_payload(db, "Observation", rid, 2, p1)  # roll version 2 back to version 1's record
        r = self.assert_decryption_failed(f"{FHIR}/Observation/{rid}")
        self.assertNotIn(v1, r.text, "an old version replayed as the current one decrypted")
        g = self.srv.request("GET", f"{FHIR}/Observation/{rid}/_history/1")
        self.assertStatus(g, 200)
        self.assertIn(v1, g.text)

    def test_record_swapped_between_types(self):
        secret = random_marker("T")
        oid = self.create(secret)
        rid = "swap-" + os.urandom(6).hex()
        p = self.srv.request("PUT", f"{FHIR}/Basic/{rid}", {"resourceType": "Basic", "id": rid,
                                                             "code": {"text": "x"}})
        self.assertStatus(p, 201)
        db = open_db(self.srv.db_path)
        self.addCleanup(db.close)
        self.set_payload(db, "Basic", rid, 1, self.payload(db, "Observation", oid))
        r = self.assert_decryption_failed(f"{FHIR}/Basic/{rid}")
        self.assertNotIn(secret, r.text)


if __name__ == "__main__":
    unittest.main()
