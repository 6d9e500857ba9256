"""The audit log as a client, an administrator and a SIEM see it, on the real server.

- Every FHIR interaction leaves exactly one record (plus, on a token-cache miss, one
  authentication record before it) with the right fields, durable when the response arrives.
- The log fails closed: when a record cannot be written, the request fails with 503 and a write
  is not applied; once the log works again so does everything else, and it still verifies.
- The /audit/v1 API: filters, paging, refusals, and its own calls are audited.
- Inclusion proofs verify with an independent RFC 6962 implementation written here.
- The FHIR AuditEvent projection: searchset bundles, reads, refused writes.
- Export: a real rsyslogd on a loopback port receives every record in order across an outage
  (RFC 5424 and CEF), and the JSON-lines sink is a complete copy that `kura audit verify`
  accepts as the external checkpoint source.
- No PHI (a resource's content) reaches the audit log or its exports.
"""

import base64
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
import unittest
import urllib.parse
from contextlib import closing

from harness import FHIR, KuraServer, KuraTestCase, ServerStartError, make_temp_root, \
    observation, random_marker, run_cli

ADMIN = "bootstrap-admin"  # The actor id of the token `kura init` issues.
POLL = 0.05


# ---- small helpers ---------------------------------------------------------------------------

def wait_until(predicate, timeout, interval=POLL):
    """Polls `predicate` until it returns a truthy value or `timeout` passes; returns the last
    value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def open_db(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def audit_rows_after(db_path, seq):
    """(seq, category, action, outcome, actor) of the stored audit rows after `seq`, read straight
    from the database (no request, so nothing is added to the log)."""
    with closing(open_db(db_path)) as db:
        return db.execute("SELECT seq, category, action, outcome, actor FROM audit_log "
                          "WHERE seq > ? ORDER BY seq", (seq,)).fetchall()


def max_audit_seq(db_path):
    with closing(open_db(db_path)) as db:
        (m,) = db.execute("SELECT COALESCE(MAX(seq), -1) FROM audit_log").fetchone()
        return m


def local_path(url):
    """The path and query of a link the server built with its public base URL."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(canonical):
    return sha256(b"\x00" + canonical)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def merkle_root(leaves):
    """RFC 6962 MTH over leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def parse_checkpoint(note):
    """(origin, tree_size, root bytes, signature lines) of a signed checkpoint note."""
    text, sep, sigs = note.partition("\n\n")
    assert sep, f"no blank line in note: {note!r}"
    lines = text.split("\n")
    assert len(lines) == 5, f"a checkpoint has five lines: {note!r}"
    assert lines[3].startswith("chain ") and lines[4].startswith("time "), note
    assert sigs.endswith("\n"), note
    return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True), \
        sigs.rstrip("\n").split("\n")


# ---- a real rsyslogd -------------------------------------------------------------------------

def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the receiver dies with the test process even after a crash.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def find_rsyslogd():
    for candidate in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rsyslogd")


def listening_on_loopback(port):
    wanted = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":
                return True
    return False


class RsyslogReceiver:
    """rsyslogd in the foreground with its own configuration, listening with imtcp on a loopback
    port and storing every message as its RFC 5424 line (RSYSLOG_SyslogProtocol23Format) in
    received.log. Stop and start again on the same port to simulate a SIEM outage."""

    def __init__(self, directory):
        self.dir = directory
        self.proc = None
        self.port = 0
        os.makedirs(os.path.join(directory, "work"), exist_ok=True)

    @property
    def received_path(self):
        return os.path.join(self.dir, "received.log")

    def start(self, port=0, timeout=20.0):
        assert self.proc is None, "rsyslogd is already running"
        rsyslogd = find_rsyslogd()
        if not rsyslogd:
            raise unittest.SkipTest("rsyslogd not found (Debian packages rsyslog, rsyslog-openssl)")
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(f'global(workDirectory="{self.dir}/work" maxMessageSize="64k" '
                    f'net.enableDNS="off")\n'
                    f'module(load="imtcp")\n'
                    f'input(type="imtcp" port="{port}" address="127.0.0.1" '
                    f'listenPortFileName="{port_file}" ruleset="remote")\n'
                    f'ruleset(name="remote") {{\n'
                    f'  action(type="omfile" file="{self.received_path}" '
                    f'template="RSYSLOG_SyslogProtocol23Format")\n'
                    f'}}\n'
                    f'action(type="omfile" file="{self.dir}/internal.log")\n')
        out = open(os.path.join(self.dir, "rsyslogd.out"), "ab")
        try:
            self.proc = subprocess.Popen(
                [rsyslogd, "-n", "-f", conf, "-i", os.path.join(self.dir, "rsyslogd.pid")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise AssertionError(f"rsyslogd exited during start-up ({rc})\n"
                                     + self.diagnostics())
            if port:
                if listening_on_loopback(port):
                    self.port = port
                    return port
            else:
                try:
                    with open(port_file) as f:
                        text = f.read().strip()
                except FileNotFoundError:
                    text = ""
                if text.isdigit():
                    self.port = int(text)
                    return self.port
            time.sleep(0.02)
        self.stop()
        raise AssertionError("rsyslogd did not listen within %ss\n%s" % (timeout,
                                                                        self.diagnostics()))

    def stop(self):
        """SIGTERM (rsyslogd flushes its files), SIGKILL after a grace period."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def text(self):
        try:
            with open(self.received_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self):
        """The complete lines stored so far (a line still being written is left out)."""
        text = self.text()
        return text[:text.rfind("\n") + 1].splitlines()

    def diagnostics(self):
        parts = []
        for name in ("rsyslogd.out", "internal.log", "received.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    parts.append(f"--- {name}:\n" + f.read()[-6000:].decode("utf-8", "replace"))
            except FileNotFoundError:
                parts.append(f"--- {name}: (none)")
        return "\n".join(parts)


RFC5424_RECORD = re.compile(
    r'^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[kura@32473 seq="(\d+)" category="([^"]*)" '
    r'action="([^"]*)" outcome="([^"]*)"')
RFC5424_CHECKPOINT = re.compile(r'\[kuraCheckpoint@32473 tree_size="(\d+)" time_us="(\d+)" '
                                r'note="([A-Za-z0-9+/=]+)"\]')
CEF_RECORD = re.compile(r'CEF:0\|Kura\|Kura\|[^|]*\|([^|]*)\|[^|]*\|(\d+)\|.*\bcn1Label=sequence '
                        r'cn1=(\d+)\b')
CEF_CHECKPOINT = re.compile(r'CEF:0\|Kura\|Kura\|[^|]*\|audit\.checkpoint\|.*cn1Label=treeSize '
                            r'cn1=(\d+)\b')


class AuditTestCase(KuraTestCase):
    """Helpers around one server `self.srv`."""

    def records(self, query="", token=None):
        """Every record matching `query` (one page of up to 1000), newest first."""
        sep = "&" if query else ""
        r = self.srv.request("GET", f"/audit/v1/records?{query}{sep}_count=1000",
                             **({"token": token} if token else {}))
        self.assertStatus(r, 200)
        body = r.json()
        self.assertNotIn("next", body, "more than 1000 records: the test expects fewer")
        return body["records"]

    def record(self, seq):
        r = self.srv.request("GET", f"/audit/v1/records/{seq}")
        self.assertStatus(r, 200)
        return r.json()

    def exchange(self, method, path, body=None, **kw):
        """One request (keyword arguments as for KuraServer.request); returns (response, rows):
        the audit rows the database holds for it the moment the response has arrived (read
        directly, before any other request)."""
        before = max_audit_seq(self.srv.db_path)
        resp = self.srv.request(method, path, body, **kw)
        rows = audit_rows_after(self.srv.db_path, before)
        return resp, rows

    def the_record(self, resp, rows, category, action, outcome, reason=""):
        """Checks that `rows` are this request's records: exactly one of category/action (after
        at most one authentication success from a token-cache miss), durable before the response
        arrived; returns its JSON (fetched from the API) after checking the common fields."""
        outcome_code = {"success": 0, "minor-failure": 4, "serious-failure": 8}[outcome]
        own = [r for r in rows if not (r[1] == "auth" and r[2] == "authenticate" and r[3] == 0
                                       and category != "auth")]
        extra = [r for r in rows if r not in own]
        self.assertEqual(len(own), 1, f"expected exactly one record for the request: {rows}")
        self.assertLessEqual(len(extra), 1, rows)
        seq, cat, act, out, _actor = own[0]
        self.assertEqual((cat, act, out), (category, action, outcome_code), rows)
        rec = self.record(seq)
        rid = resp.header("X-Request-Id")
        self.assertTrue(rid, "the server sends X-Request-Id")
        self.assertEqual(rec["request_id"], rid, rec)
        self.assertEqual(rec["source_address"], "127.0.0.1", rec)
        self.assertEqual(rec["category"], category, rec)
        self.assertEqual(rec["action"], action, rec)
        self.assertEqual(rec["outcome"], outcome, rec)
        self.assertEqual(rec["outcome_code"], outcome_code, rec)
        self.assertEqual(rec["outcome_reason"], reason, rec)
        self.assertEqual(rec["details"].get("http.status"), str(resp.status), rec)
        self.assertEqual(rec["actor"]["tenant"], "default", rec)
        for r in extra:  # The authentication that preceded it belongs to the same request.
            auth = self.record(r[0])
            self.assertLess(r[0], seq)
            self.assertEqual(auth["request_id"], rid, auth)
            self.assertEqual(auth["outcome"], "success", auth)
        return rec

    def assert_admin_actor(self, rec):
        self.assertEqual(rec["actor"]["kind"], "api-token", rec)
        self.assertEqual(rec["actor"]["id"], ADMIN, rec)
        self.assertEqual(rec["actor"]["role"], "system-admin", rec)

    def new_patient(self):
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertStatus(r, 201)
        return r.json()["id"]

    def new_observation(self, patient, value="v"):
        r = self.srv.request("POST", f"{FHIR}/Observation",
                             observation(value, subject={"reference": f"Patient/{patient}"}))
        self.assertStatus(r, 201)
        return r.json()["id"]


# ---- 1. one record per interaction -----------------------------------------------------------

class InteractionRecordTests(AuditTestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = KuraServer()
        cls.addClassCleanup(cls.srv.close)
        # The first request misses the token cache; later ones usually hit it.
        assert cls.srv.request("GET", f"{FHIR}/Patient/warm-up").status == 404

    def test_create_is_recorded_in_the_same_commit_as_the_write(self):
        pid = self.new_patient()
        resp, rows = self.exchange("POST", f"{FHIR}/Observation",
                                   observation("c", subject={"reference": f"Patient/{pid}"}))
        self.assertStatus(resp, 201)
        oid = resp.json()["id"]
        rec = self.the_record(resp, rows, "fhir", "create", "success")
        self.assert_admin_actor(rec)
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "1"})
        self.assertEqual(rec["patient_compartments"], [pid])
        self.assertEqual(rec["details"]["http.method"], "POST")
        self.assertEqual(rec["details"]["http.route"], "/fhir/R4/{type}")

    def test_read_and_vread(self):
        pid = self.new_patient()
        oid = self.new_observation(pid)
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/{oid}")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "fhir", "read", "success")
        self.assert_admin_actor(rec)
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "1"})
        self.assertEqual(rec["patient_compartments"], [pid])

        resp, rows = self.exchange("GET", f"{FHIR}/Observation/{oid}/_history/1")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "fhir", "vread", "success")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "1"})
        self.assertEqual(rec["patient_compartments"], [pid])
        self.assertEqual(rec["details"]["http.route"], "/fhir/R4/{type}/{id}/_history/{vid}")

    def test_update(self):
        pid = self.new_patient()
        oid = self.new_observation(pid)
        resp, rows = self.exchange(
            "PUT", f"{FHIR}/Observation/{oid}",
            observation("u", id=oid, subject={"reference": f"Patient/{pid}"}))
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "fhir", "update", "success")
        self.assert_admin_actor(rec)
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "2"})
        self.assertEqual(rec["patient_compartments"], [pid])

    def test_delete_then_read_is_gone(self):
        pid = self.new_patient()
        oid = self.new_observation(pid)
        resp, rows = self.exchange("DELETE", f"{FHIR}/Observation/{oid}")
        self.assertStatus(resp, 204)
        rec = self.the_record(resp, rows, "fhir", "delete", "success")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "2"})
        self.assertEqual(rec["patient_compartments"], [pid])

        resp, rows = self.exchange("GET", f"{FHIR}/Observation/{oid}")
        self.assertStatus(resp, 410)
        rec = self.the_record(resp, rows, "fhir", "read", "minor-failure", "gone")
        self.assertEqual(rec["resource"]["type"], "Observation")
        self.assertEqual(rec["resource"]["id"], oid)
        self.assertEqual(rec["patient_compartments"], [pid])

    def test_history(self):
        pid = self.new_patient()
        oid = self.new_observation(pid)
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/{oid}/_history")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "fhir", "history", "success")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": ""})
        self.assertEqual(rec["patient_compartments"], [pid])
        self.assertEqual(rec["details"]["fhir.entries"], "1")

    def test_search_records_the_patients_it_returned(self):
        pid = self.new_patient()
        self.new_observation(pid)
        resp, rows = self.exchange("GET", f"{FHIR}/Observation?subject=Patient/{pid}")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "fhir", "search", "success")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": "", "version": ""})
        self.assertEqual(rec["patient_compartments"], [pid])
        self.assertEqual(rec["details"]["fhir.entries"], "1")

    def test_bad_search_is_a_minor_failure(self):
        resp, rows = self.exchange("GET", f"{FHIR}/Observation?date=notadate")
        self.assertOperationOutcome(resp, 400)
        rec = self.the_record(resp, rows, "fhir", "search", "minor-failure", "invalid")
        self.assertEqual(rec["patient_compartments"], [])

    def test_bad_json_is_a_minor_failure(self):
        resp, rows = self.exchange("POST", f"{FHIR}/Observation", b'{"resourceType": ')
        self.assertOperationOutcome(resp, 400)
        rec = self.the_record(resp, rows, "fhir", "create", "minor-failure", "invalid")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": "", "version": ""})
        self.assertEqual(rec["patient_compartments"], [])

    def test_unknown_id_is_not_found(self):
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/no-such-id")
        self.assertOperationOutcome(resp, 404)
        rec = self.the_record(resp, rows, "fhir", "read", "minor-failure", "not-found")
        self.assertEqual(rec["resource"], {"type": "Observation", "id": "no-such-id",
                                           "version": ""})

    def test_names_that_are_not_utf8_are_recorded_not_refused(self):
        # Bytes that are not UTF-8 in a path segment must not make the request's own audit
        # record unwritable (which fails the request closed, 503): the request is answered and
        # recorded, the bytes standing as U+FFFD.
        for path, expected in ((b"/fhir/R4/Observation/ab\xffc", ("Observation", "ab\ufffdc")),
                               (b"/fhir/R4/Obs\xffervation/abc", ("Obs\ufffdervation", "abc")),
                               (b"/fhir/R4/Patient/p\xc3/$everything", ("Patient", "p\ufffd")),
                               # 70 bytes of two-byte characters: recorded up to 64, none cut.
                               (b"/fhir/R4/Observation/" + "\u00e9".encode() * 35,
                                ("Observation", "\u00e9" * 32))):
            before = max_audit_seq(self.srv.db_path)
            resp = self.srv.raw_request(
                b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                self.srv.token.encode() + b"\r\nConnection: close\r\n\r\n")
            self.assertIsNotNone(resp, path)
            self.assertIn(resp.status, (400, 404), (path, resp.status, resp.body))
            rows = audit_rows_after(self.srv.db_path, before)
            own = [r for r in rows if r[1] == "fhir"]
            self.assertEqual(len(own), 1, (path, rows))
            rec = self.record(own[0][0])
            self.assertEqual((rec["resource"]["type"], rec["resource"]["id"]), expected, rec)
            self.assertEqual(rec["outcome"], "minor-failure", rec)

    def test_missing_token_is_an_authentication_failure(self):
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/x", token=None)
        self.assertOperationOutcome(resp, 401)
        rec = self.the_record(resp, rows, "auth", "authenticate", "minor-failure",
                              "unauthenticated")
        self.assertEqual(rec["details"]["auth.failure"], "missing-token", rec)
        self.assertEqual(rec["details"]["requested.category"], "fhir", rec)
        self.assertEqual(rec["details"]["requested.action"], "read", rec)
        self.assertEqual(rec["actor"]["kind"], "anonymous", rec)
        self.assertEqual(rec["actor"]["id"], "", rec)

    def test_invalid_token_is_an_authentication_failure(self):
        bogus = "kura_" + os.urandom(24).hex()
        resp, rows = self.exchange("POST", f"{FHIR}/Observation", observation("x"), token=bogus)
        self.assertOperationOutcome(resp, 401)
        rec = self.the_record(resp, rows, "auth", "authenticate", "minor-failure",
                              "unauthenticated")
        self.assertEqual(rec["details"]["auth.failure"], "invalid-token", rec)
        self.assertEqual(rec["details"]["requested.action"], "create", rec)
        self.assertEqual(rec["actor"]["kind"], "anonymous", rec)
        self.assertNotIn(bogus[5:], json.dumps(rec), "the presented token reached the log")

    def test_token_cache_miss_adds_an_authentication_record(self):
        # A token the server has never seen: its first use misses the cache.
        res = run_cli(["token", "create", "--data-dir", self.srv.data_dir, "--name", "fresh"])
        self.assertEqual(res.returncode, 0, res.stderr)
        fresh = res.stdout.strip()
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/missing", token=fresh)
        self.assertStatus(resp, 404)
        self.assertEqual([r[1:3] for r in rows],
                         [("auth", "authenticate"), ("fhir", "read")], rows)
        auth = self.record(rows[0][0])
        self.assertEqual(auth["request_id"], resp.header("X-Request-Id"))
        self.assertEqual(auth["outcome"], "success")
        self.assertEqual(auth["actor"]["id"], "fresh")
        rec = self.the_record(resp, rows, "fhir", "read", "minor-failure", "not-found")
        self.assertEqual(rec["actor"]["id"], "fresh")

    def test_patient_resource_is_in_its_own_compartment(self):
        # A Patient belongs to its own compartment (FHIR CompartmentDefinition "patient"), so
        # every access to it must be findable by patient=<its id>, including the create that
        # assigned the id and reads of the version it created.
        resp, rows = self.exchange("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertStatus(resp, 201)
        pid = resp.json()["id"]
        rec = self.the_record(resp, rows, "fhir", "create", "success")
        self.assertEqual(rec["resource"], {"type": "Patient", "id": pid, "version": "1"})
        resp2, rows2 = self.exchange("GET", f"{FHIR}/Patient/{pid}")
        self.assertStatus(resp2, 200)
        read = self.the_record(resp2, rows2, "fhir", "read", "success")
        self.assertEqual(rec["patient_compartments"], [pid], "create of a Patient")
        self.assertEqual(read["patient_compartments"], [pid], "read of a created Patient")
        found = {r["sequence"] for r in self.records(f"patient={pid}")}
        self.assertIn(rec["sequence"], found)


# ---- 2. fail closed ----------------------------------------------------------------------------

class FailClosedTests(AuditTestCase):

    def setUp(self):
        self.srv = KuraServer()
        self.addCleanup(self.srv.close)

    def set_trigger(self, present):
        with closing(open_db(self.srv.db_path)) as db:
            if present:
                db.execute("CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_log "
                           "BEGIN SELECT RAISE(ABORT, 'audit refused by test'); END;")
            else:
                db.execute("DROP TRIGGER audit_refuse")

    def resource_rows(self):
        with closing(open_db(self.srv.db_path)) as db:
            return db.execute("SELECT type, id, version FROM resource_versions "
                              "ORDER BY seq").fetchall()

    def test_requests_fail_closed_while_the_log_cannot_be_written(self):
        pid = self.new_patient()
        oid = self.new_observation(pid)
        self.assertStatus(self.srv.request("GET", f"{FHIR}/Observation/{oid}"), 200)
        audit_before = max_audit_seq(self.srv.db_path)
        resources_before = self.resource_rows()

        self.set_trigger(True)
        trigger_on = True
        try:
            # A read whose data is at hand is still refused: it cannot be recorded.
            r = self.srv.request("GET", f"{FHIR}/Observation/{oid}")
            issue = self.assertOperationOutcome(r, 503)
            self.assertIn("audit log unavailable", issue["diagnostics"])
            self.assertNotIn(b"valueString", r.body)
            # A write is not applied.
            r = self.srv.request("POST", f"{FHIR}/Observation",
                                 observation("refused", subject={"reference": f"Patient/{pid}"}))
            self.assertOperationOutcome(r, 503)
            self.assertIsNone(r.header("Location"))
            r = self.srv.request("PUT", f"{FHIR}/Observation/{oid}",
                                 observation("refused-update", id=oid))
            self.assertOperationOutcome(r, 503)
            r = self.srv.request("DELETE", f"{FHIR}/Observation/{oid}")
            self.assertOperationOutcome(r, 503)
            # Failures and refusals are not recorded either, so they fail the same way.
            self.assertOperationOutcome(self.srv.request("GET", f"{FHIR}/Observation/nope"), 503)
            self.assertOperationOutcome(self.srv.request("GET", f"{FHIR}/Observation/x",
                                                         token=None), 503)
            self.assertOperationOutcome(self.srv.request("GET", "/audit/v1/records"), 503)
            # What needs no record still works; the process is fine.
            self.assert_alive()
            self.assertEqual(max_audit_seq(self.srv.db_path), audit_before)
            self.assertEqual(self.resource_rows(), resources_before)
            self.set_trigger(False)
            trigger_on = False
        finally:
            if trigger_on:
                self.set_trigger(False)

        # Nothing refused was applied.
        self.assertEqual(self.resource_rows(), resources_before)
        r = self.srv.request("GET", f"{FHIR}/Observation/{oid}")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["valueString"], "v")
        self.assertEqual(r.json()["meta"]["versionId"], "1")
        hist = self.srv.request("GET", f"{FHIR}/Observation/_history")
        self.assertStatus(hist, 200)
        values = [e["resource"]["valueString"] for e in hist.json()["entry"] if "resource" in e]
        self.assertNotIn("refused", values)
        self.assertNotIn("refused-update", values)
        self.assertEqual(len(hist.json()["entry"]), 1)

        # Everything works again, and the log continues without a hole.
        r = self.srv.request("POST", f"{FHIR}/Observation",
                             observation("after", subject={"reference": f"Patient/{pid}"}))
        self.assertStatus(r, 201)
        resp, rows = self.exchange("GET", f"{FHIR}/Observation/{r.json()['id']}")
        self.assertStatus(resp, 200)
        self.the_record(resp, rows, "fhir", "read", "success")
        self.assertIn('"audit_append_failed"', self.srv.log_text(), "the failed appends are logged")
        seqs = [r["sequence"] for r in self.records()]
        self.assertEqual(sorted(seqs), list(range(len(seqs))), "the log has a hole")
        self.assertEqual(self.srv.stop(signal.SIGTERM), 0, self.srv.log_text())
        res = run_cli(["audit", "verify", "--data-dir", self.srv.data_dir, "--json"])
        self.assertEqual(res.returncode, 0, f"stdout: {res.stdout}\nstderr: {res.stderr}")
        report = json.loads(res.stdout)
        self.assertTrue(report["ok"], report)
        self.assertEqual(report["issues"], [])


# ---- 3. the admin API, 5. the AuditEvent projection --------------------------------------------

class AuditApiTests(AuditTestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = KuraServer(start=False)
        cls.addClassCleanup(cls.srv.close)
        res = run_cli(["token", "create", "--data-dir", cls.srv.data_dir, "--name", "ci-bot"])
        assert res.returncode == 0, res.stderr
        cls.bot = res.stdout.strip()
        cls.srv.start()
        srv = cls.srv
        new_patient = lambda: srv.request(  # noqa: E731
            "POST", f"{FHIR}/Patient", {"resourceType": "Patient"}).json()["id"]
        cls.patient, cls.other = new_patient(), new_patient()
        cls.bot_request_ids = set()

        def bot(method, path, body=None, status=None):
            r = srv.request(method, path, body, token=cls.bot)
            assert status is None or r.status == status, r
            cls.bot_request_ids.add(r.header("X-Request-Id"))
            return r

        obs = lambda v, p: observation(v, subject={"reference": f"Patient/{p}"})  # noqa: E731
        o1 = bot("POST", f"{FHIR}/Observation", obs("1", cls.patient), 201).json()["id"]
        bot("GET", f"{FHIR}/Observation/{o1}", status=200)
        bot("PUT", f"{FHIR}/Observation/{o1}", observation("1b", id=o1, subject={
            "reference": f"Patient/{cls.patient}"}), 200)
        bot("GET", f"{FHIR}/Observation/{o1}/_history/1", status=200)
        bot("GET", f"{FHIR}/Observation/nope", status=404)
        o2 = bot("POST", f"{FHIR}/Observation", obs("2", cls.other), 201).json()["id"]
        bot("DELETE", f"{FHIR}/Observation/{o2}", status=204)
        o3 = srv.request("POST", f"{FHIR}/Observation", obs("3", cls.patient)).json()["id"]
        srv.request("GET", f"{FHIR}/Observation/{o3}")
        srv.request("DELETE", f"{FHIR}/Observation/{o3}")
        srv.request("GET", f"{FHIR}/Observation/{o3}")  # 410
        srv.request("GET", f"{FHIR}/Observation/x", token=None)  # 401
        cls.observations = (o1, o2, o3)

    def test_filter_by_actor(self):
        recs = self.records("actor=ci-bot")
        self.assertTrue(recs)
        for r in recs:
            self.assertEqual(r["actor"]["id"], "ci-bot", r)
        self.assertEqual({r["request_id"] for r in recs} - {""}, self.bot_request_ids)
        fhir = [r for r in recs if r["category"] == "fhir"]
        self.assertEqual(len(fhir), len(self.bot_request_ids), fhir)
        # The full log agrees.
        everything = self.records()
        self.assertEqual([r["sequence"] for r in everything if r["actor"]["id"] == "ci-bot"],
                         [r["sequence"] for r in recs])

    def test_filter_by_patient(self):
        everything = self.records()
        recs = self.records(f"patient={self.patient}")
        self.assertTrue(recs)
        for r in recs:
            self.assertIn(self.patient, r["patient_compartments"], r)
        expected = [r["sequence"] for r in everything if self.patient in r["patient_compartments"]]
        newest = everything[0]["sequence"]
        self.assertEqual([r["sequence"] for r in recs if r["sequence"] <= newest], expected)
        actions = {(r["action"], r["resource"]["id"]) for r in recs}
        o1, o2, o3 = self.observations
        for want in (("create", o1), ("read", o1), ("update", o1), ("vread", o1), ("create", o3),
                     ("delete", o3)):
            self.assertIn(want, actions)
        self.assertNotIn(("create", o2), actions)
        # "Patient/<id>" works too.
        same = self.records(f"patient=Patient/{self.patient}")
        self.assertEqual([r["sequence"] for r in same if r["sequence"] <= recs[0]["sequence"]],
                         [r["sequence"] for r in recs])

    def test_filter_by_action_outcome_and_category(self):
        everything = self.records()
        for query, field, value in (("action=read", "action", "read"),
                                    ("action=delete", "action", "delete"),
                                    ("outcome=minor-failure", "outcome", "minor-failure"),
                                    ("outcome=4", "outcome", "minor-failure"),
                                    ("outcome=success", "outcome", "success"),
                                    ("category=auth", "category", "auth"),
                                    ("category=system", "category", "system")):
            with self.subTest(query=query):
                recs = self.records(query)
                self.assertTrue(recs, query)
                for r in recs:
                    self.assertEqual(r[field], value, r)
                expected = [r["sequence"] for r in everything if r[field] == value]
                got = [r["sequence"] for r in recs if r["sequence"] <= everything[0]["sequence"]]
                self.assertEqual(got, expected)
        reasons = {r["outcome_reason"] for r in self.records("outcome=minor-failure")}
        self.assertTrue({"not-found", "gone", "unauthenticated"} <= reasons, reasons)
        combined = self.records("category=fhir&action=read&outcome=minor-failure&actor=ci-bot")
        self.assertEqual(len(combined), 1, combined)
        self.assertEqual(combined[0]["outcome_reason"], "not-found")
        self.assertEqual(self.records("actor=nobody-at-all"), [])

    def test_since_and_until(self):
        everything = self.records()
        times = sorted({r["time_us"] for r in everything})
        self.assertGreaterEqual(len(times), 6)
        lo, hi = times[len(times) // 4], times[3 * len(times) // 4]
        by_us = {r["time_us"]: r["time"] for r in everything}
        recs = self.records(f"since={urllib.parse.quote(by_us[lo])}"
                            f"&until={urllib.parse.quote(by_us[hi])}")
        expected = [r["sequence"] for r in everything if lo <= r["time_us"] < hi]
        self.assertTrue(expected)
        self.assertEqual([r["sequence"] for r in recs], expected)
        newer = self.records(f"since={urllib.parse.quote(by_us[hi])}")
        self.assertTrue(all(r["time_us"] >= hi for r in newer))
        self.assertTrue({r["sequence"] for r in everything if r["time_us"] >= hi}
                        <= {r["sequence"] for r in newer})
        older = self.records(f"until={urllib.parse.quote(by_us[lo])}")
        self.assertEqual([r["sequence"] for r in older],
                         [r["sequence"] for r in everything if r["time_us"] < lo])
        self.assertEqual(self.records("since=2999-01-01T00:00:00Z"), [])

    def test_paging_covers_everything_once(self):
        full = [r["sequence"] for r in self.records("actor=ci-bot")]
        self.assertGreaterEqual(len(full), 5)
        seen, pages = [], 0
        path = "/audit/v1/records?actor=ci-bot&_count=2"
        while path:
            r = self.srv.request("GET", path)
            self.assertStatus(r, 200)
            body = r.json()
            self.assertLessEqual(len(body["records"]), 2)
            self.assertTrue(body["records"], "an empty page")
            seen += [x["sequence"] for x in body["records"]]
            pages += 1
            self.assertLess(pages, 100, "paging does not end")
            path = local_path(body["next"]) if "next" in body else None
            if path:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
                self.assertEqual(q["actor"], ["ci-bot"])
                self.assertEqual(q["_count"], ["2"])
        self.assertEqual(seen, full, "pages must cover every record once, newest first")
        self.assertEqual(len(set(seen)), len(seen))
        self.assertEqual(pages, (len(full) + 1) // 2)

    def test_requires_a_token(self):
        for path in ("/audit/v1/records", "/audit/v1/records/0", "/audit/v1/records/0/proof",
                     "/audit/v1/checkpoint", f"{FHIR}/AuditEvent", f"{FHIR}/AuditEvent/0"):
            with self.subTest(path=path):
                resp, rows = self.exchange("GET", path, token=None)
                self.assertOperationOutcome(resp, 401)
                self.assertNotIn(b'"records"', resp.body)
                rec = self.the_record(resp, rows, "auth", "authenticate", "minor-failure",
                                      "unauthenticated")
                self.assertEqual(rec["details"]["auth.failure"], "missing-token")
                resp, rows = self.exchange("GET", path, token="kura_" + "0" * 48)
                self.assertOperationOutcome(resp, 401)
                rec = self.the_record(resp, rows, "auth", "authenticate", "minor-failure",
                                      "unauthenticated")
                self.assertEqual(rec["details"]["auth.failure"], "invalid-token")

    def test_audit_search_is_itself_recorded(self):
        resp, rows = self.exchange("GET", f"/audit/v1/records?patient={self.patient}&action=read")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "admin", "audit-search", "success")
        self.assert_admin_actor(rec)
        self.assertEqual(rec["resource"]["type"], "AuditEvent")
        self.assertEqual(rec["patient_compartments"], [self.patient])
        self.assertEqual(rec["details"]["audit.results"], str(len(resp.json()["records"])))
        resp, rows = self.exchange("GET", "/audit/v1/records/1")
        self.assertStatus(resp, 200)
        rec = self.the_record(resp, rows, "admin", "audit-read", "success")
        self.assertEqual(rec["resource"]["id"], "1")
        self.assertEqual(resp.json()["sequence"], 1)
        resp, rows = self.exchange("GET", "/audit/v1/records/999999")
        self.assertOperationOutcome(resp, 404)
        self.the_record(resp, rows, "admin", "audit-read", "minor-failure", "not-found")

    def test_bad_parameters_are_400(self):
        for query in ("outcome=bogus", "since=yesterday", "until=2024-13-01T00:00:00Z",
                      "_count=0", "_count=ten", "_page=-1"):
            with self.subTest(query=query):
                resp, rows = self.exchange("GET", f"/audit/v1/records?{query}")
                issue = self.assertOperationOutcome(resp, 400)
                self.assertEqual(issue["code"], "invalid")
                name = query.split("=")[0]
                self.assertIn(name, issue["diagnostics"])
                self.the_record(resp, rows, "admin", "audit-search", "minor-failure", "invalid")
        resp = self.srv.request("GET", "/audit/v1/records/abc")
        self.assertOperationOutcome(resp, 400)

    # ---- the FHIR projection -------------------------------------------------------------
    def audit_events(self, query):
        r = self.srv.request("GET", f"{FHIR}/AuditEvent?{query}&_count=1000")
        self.assertStatus(r, 200)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/fhir+json"))
        bundle = r.json()
        self.assertEqual(bundle["resourceType"], "Bundle")
        self.assertEqual(bundle["type"], "searchset")
        self.assertNotIn("next", [link["relation"] for link in bundle["link"]])
        return [e["resource"] for e in bundle.get("entry", [])]

    def check_audit_event(self, e):
        self.assertEqual(e["resourceType"], "AuditEvent")
        self.assertRegex(e["id"], r"^\d+$")
        self.assertIn(e["action"], ("C", "R", "U", "D", "E"))
        self.assertRegex(e["recorded"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertIn(e["outcome"], ("0", "4", "8", "12"))
        self.assertEqual(e["type"]["code"], "rest")
        self.assertEqual(len(e["agent"]), 1, e)
        self.assertTrue(e["agent"][0]["requestor"])
        self.assertEqual(e["agent"][0]["network"], {"address": "127.0.0.1", "type": "2"})
        self.assertIn({"what": {"reference": f"Patient/{self.patient}"},
                       "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                          "audit-entity-type",
                                "code": "1", "display": "Person"},
                       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                "code": "1", "display": "Patient"}}, e["entity"])

    def test_audit_event_search_by_patient_and_subtype(self):
        events = self.audit_events(f"patient={self.patient}")
        self.assertTrue(events)
        crud = {}
        for e in events:
            self.check_audit_event(e)
            crud.setdefault(e["subtype"][0]["code"], set()).add(e["action"])
        self.assertEqual(crud.get("create"), {"C"}, crud)
        self.assertEqual(crud.get("read"), {"R"}, crud)
        self.assertEqual(crud.get("vread"), {"R"}, crud)
        self.assertEqual(crud.get("update"), {"U"}, crud)
        self.assertEqual(crud.get("delete"), {"D"}, crud)
        # The same records as the JSON API.
        api = self.records(f"patient={self.patient}")
        ids = [int(e["id"]) for e in events]
        self.assertEqual(ids, [r["sequence"] for r in api if r["sequence"] <= ids[0]])

        for subtype, code in (("create", "C"), ("update", "U"), ("delete", "D"), ("read", "R")):
            with self.subTest(subtype=subtype):
                events = self.audit_events(f"patient=Patient/{self.patient}&subtype={subtype}")
                self.assertTrue(events)
                for e in events:
                    self.check_audit_event(e)
                    self.assertEqual(e["action"], code)
                    self.assertEqual(e["subtype"], [{"system": "http://hl7.org/fhir/"
                                                              "restful-interaction",
                                                     "code": subtype}])
        bot = self.audit_events(f"patient={self.patient}&agent=ci-bot&subtype=create")
        self.assertEqual(len(bot), 1, bot)
        who = bot[0]["agent"][0]["who"]
        self.assertEqual(who["identifier"]["value"], "ci-bot")
        self.assertIn({"what": {"reference": f"Observation/{self.observations[0]}/_history/1"},
                       "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                          "audit-entity-type",
                                "code": "2", "display": "System Object"}}, bot[0]["entity"])
        admin = self.audit_events(f"patient={self.patient}&agent={ADMIN}&subtype=delete")
        self.assertEqual(len(admin), 1, admin)
        self.assertEqual(admin[0]["agent"][0]["who"]["identifier"]["value"], ADMIN)
        failed = self.audit_events(f"patient={self.patient}&outcome=minor-failure")
        self.assertTrue(failed)
        self.assertTrue(all(e["outcome"] == "4" for e in failed))
        self.assertIn("gone", {e.get("outcomeDesc") for e in failed})

    def test_audit_event_read_by_id(self):
        rec = self.records("actor=ci-bot&action=update")[0]
        r = self.srv.request("GET", f"{FHIR}/AuditEvent/{rec['sequence']}")
        self.assertStatus(r, 200)
        e = r.json()
        self.check_audit_event(e)
        self.assertEqual(e["id"], str(rec["sequence"]))
        self.assertEqual(e["action"], "U")
        self.assertEqual(e["recorded"], rec["time"])
        self.assertEqual(e["agent"][0]["who"]["identifier"]["value"], "ci-bot")
        self.assertIn({"what": {"identifier": {"value": rec["request_id"]}},
                       "type": {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/"
                                          "BasicAuditEntityType",
                                "code": "XrequestId"}}, e["entity"])
        self.assertOperationOutcome(self.srv.request("GET", f"{FHIR}/AuditEvent/99999999"), 404)

    def test_audit_event_writes_are_refused(self):
        before = max_audit_seq(self.srv.db_path)
        event = {"resourceType": "AuditEvent", "id": "1", "recorded": "2024-01-01T00:00:00Z",
                 "type": {"code": "rest"}, "agent": [{"requestor": True}],
                 "source": {"observer": {"display": "forged"}}}
        for method, path in (("POST", f"{FHIR}/AuditEvent"), ("PUT", f"{FHIR}/AuditEvent/1"),
                             ("DELETE", f"{FHIR}/AuditEvent/1")):
            with self.subTest(method=method):
                body = event if method != "DELETE" else None
                resp, rows = self.exchange(method, path, body)
                self.assertOperationOutcome(resp, 501, code="not-supported")
                self.assertIsNone(resp.header("Location"))
                action = {"POST": "create", "PUT": "update", "DELETE": "delete"}[method]
                rec = self.the_record(resp, rows, "fhir", action, "minor-failure",
                                      "not-supported")
                self.assertEqual(rec["resource"]["type"], "AuditEvent")
        # Only the refusals were added to the log, and nothing was stored as a resource.
        added = audit_rows_after(self.srv.db_path, before)
        self.assertEqual([(r[1], r[2], r[3]) for r in added if r[1] == "fhir"],
                         [("fhir", "create", 4), ("fhir", "update", 4), ("fhir", "delete", 4)])
        with closing(open_db(self.srv.db_path)) as db:
            (n,) = db.execute("SELECT COUNT(*) FROM resource_versions "
                              "WHERE type = 'AuditEvent'").fetchone()
        self.assertEqual(n, 0)
        r = self.srv.request("GET", f"{FHIR}/AuditEvent/1")
        self.assertStatus(r, 200)
        self.assertNotEqual(r.json()["source"]["observer"]["display"], "forged")
        self.assertNotIn("forged", self.srv.request("GET", "/audit/v1/records?_count=1000").text)


# ---- 4. inclusion proofs ---------------------------------------------------------------------

class InclusionProofTests(AuditTestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = KuraServer(env={"KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "4"})
        cls.addClassCleanup(cls.srv.close)
        pid = cls.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"}).json()["id"]
        for i in range(6):
            o = cls.srv.request("POST", f"{FHIR}/Observation",
                                observation(str(i), subject={"reference": f"Patient/{pid}"}))
            assert o.status == 201, o
            cls.srv.request("GET", f"{FHIR}/Observation/{o.json()['id']}")

    def proof(self, seq, tree_size=None):
        q = f"?tree_size={tree_size}" if tree_size else ""
        r = self.srv.request("GET", f"/audit/v1/records/{seq}/proof{q}")
        self.assertStatus(r, 200)
        return r.json()

    def check_proof(self, body):
        """Verifies a proof response independently; returns (leaf, index, size, path, root)."""
        canonical = base64.b64decode(body["canonical"], validate=True)
        seq = body["record"]["sequence"]
        self.assertEqual(canonical[0], 1, "record format byte")
        self.assertEqual(int.from_bytes(canonical[1:9], "big"), seq)
        self.assertEqual(int.from_bytes(canonical[9:17], "big", signed=True),
                         body["record"]["time_us"])
        proof = body["proof"]
        self.assertEqual(proof["sequence"], seq)
        origin, size, root, sigs = parse_checkpoint(body["checkpoint"])
        self.assertEqual(proof["tree_size"], size, "tree size is the note's second line")
        self.assertGreater(size, seq)
        path = [base64.b64decode(p, validate=True) for p in proof["path"]]
        self.assertTrue(all(len(p) == 32 for p in path))
        leaf = leaf_hash(canonical)
        self.assertTrue(verify_inclusion(leaf, seq, size, path, root),
                        f"the proof does not lead to the checkpoint root: {body}")
        self.check_signature(body["checkpoint"], body["verifier_key"], origin, sigs)
        return leaf, seq, size, path, root, canonical

    def check_signature(self, note, verifier_key, origin, sigs):
        name, key_id_hex, key_b64 = verifier_key.split("+", 2)
        self.assertEqual(name, origin)
        key = base64.b64decode(key_b64)
        self.assertEqual(key[0], 1)
        key_id = sha256(name.encode() + b"\n" + key)[:4]
        self.assertEqual(key_id.hex(), key_id_hex)
        ours = [s for s in sigs if s.startswith(f"\u2014 {name} ")]
        self.assertEqual(len(ours), 1, sigs)
        sig = base64.b64decode(ours[0].split(" ")[2])
        self.assertEqual(sig[:4], key_id, "the signature line names another key")
        self.assertEqual(len(sig), 68)
        openssl = shutil.which("openssl")
        if not openssl:
            return
        # Ed25519 over the note text (everything up to and including the blank line's newline
        # minus the blank line itself), checked by OpenSSL with the published public key.
        text = note[:note.index("\n\n") + 1].encode()
        tmp = tempfile.mkdtemp(prefix="kura-it-sig-")
        self.addCleanup(shutil.rmtree, tmp, True)
        der = bytes.fromhex("302a300506032b6570032100") + key[1:]
        pem = ("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode()
               + "\n-----END PUBLIC KEY-----\n")
        files = {"pub.pem": pem.encode(), "text": text, "sig": sig[4:],
                 "bad": text.replace(b"\n", b" \n", 1)}
        for fname, data in files.items():
            with open(os.path.join(tmp, fname), "wb") as f:
                f.write(data)

        def verify(data_file):
            return subprocess.run([openssl, "pkeyutl", "-verify", "-pubin", "-inkey",
                                   os.path.join(tmp, "pub.pem"), "-rawin", "-in",
                                   os.path.join(tmp, data_file), "-sigfile",
                                   os.path.join(tmp, "sig")],
                                  capture_output=True, text=True, timeout=30)
        good = verify("text")
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertNotEqual(verify("bad").returncode, 0, "openssl accepts a changed note")

    def checkpoint_sizes(self):
        with closing(open_db(self.srv.db_path)) as db:
            return [r[0] for r in db.execute("SELECT tree_size FROM audit_statements "
                                             "WHERE kind = 0 ORDER BY tree_size")]

    def test_proof_verifies_independently(self):
        latest = self.srv.request("GET", "/audit/v1/checkpoint")
        self.assertStatus(latest, 200)
        size = latest.json()["tree_size"]
        self.assertGreaterEqual(size, 8)
        sizes = self.checkpoint_sizes()
        self.assertIn(size, sizes)
        self.assertGreaterEqual(len(sizes), 3, sizes)
        for seq in sorted({0, 1, 3, 4, size // 2, size - 1}):
            with self.subTest(seq=seq):
                body = self.proof(seq)
                _leaf, _i, got_size, _p, _r, _c = self.check_proof(body)
                # The smallest checkpoint that covers the record.
                self.assertEqual(got_size, min(s for s in sizes if s > seq), body["proof"])
        # A whole tree recomputed from every record's bytes has the root the server signed.
        tree = next(s for s in sizes if s >= 5)
        leaves, signed_root = [], None
        for seq in range(tree):
            _leaf, _i, s, _p, root, canonical = self.check_proof(self.proof(seq, tree_size=tree))
            self.assertEqual(s, tree)
            leaves.append(leaf_hash(canonical))
            signed_root = root
        self.assertEqual(merkle_root(leaves), signed_root)
        # Against the latest checkpoint as well.
        body = self.proof(2, tree_size=size)
        self.assertEqual(body["proof"]["tree_size"], size)
        self.check_proof(body)

    def test_modified_bytes_fail_verification(self):
        body = self.proof(5)
        leaf, seq, size, path, root, canonical = self.check_proof(body)
        for i in (0, 9, len(canonical) // 2, len(canonical) - 1):
            with self.subTest(byte=i):
                changed = bytearray(canonical)
                changed[i] ^= 0x01
                self.assertFalse(verify_inclusion(leaf_hash(bytes(changed)), seq, size, path,
                                                  root))
        self.assertFalse(verify_inclusion(leaf, seq + 1, size, path, root))
        # A tree twice the size needs one more path element. (size + 1 is not always wrong: for
        # record 5, sizes 7 and 8 take the same steps, 6 standing for the node of 6 and 7.)
        self.assertFalse(verify_inclusion(leaf, seq, size * 2, path, root))
        self.assertFalse(verify_inclusion(leaf, seq, size, path[:-1], root))
        other = bytearray(root)
        other[0] ^= 0x80
        self.assertFalse(verify_inclusion(leaf, seq, size, path, bytes(other)))

    def test_uncovered_record_has_no_proof_yet(self):
        for _attempt in range(10):
            cp = self.srv.request("GET", "/audit/v1/checkpoint")
            self.assertStatus(cp, 200)
            size = cp.json()["tree_size"]
            # Record `size` exists (the checkpoint request's own record, at least) but no
            # checkpoint covers it until the log has grown by 4 more.
            r = self.srv.request("GET", f"/audit/v1/records/{size}/proof")
            if r.status == 200:
                continue  # A checkpoint was signed in between; try again.
            issue = self.assertOperationOutcome(r, 404)
            self.assertIn("checkpoint", issue["diagnostics"])
            self.assertStatus(self.srv.request("GET", f"/audit/v1/records/{size}"), 200)
            break
        else:
            self.fail("every record had a proof at once")
        # Once the log has grown, the same record is proven.
        for i in range(4):
            self.srv.request("GET", f"{FHIR}/Observation/grow-{i}")
        def proven():
            r = self.srv.request("GET", f"/audit/v1/records/{size}/proof")
            return r if r.status == 200 else None
        body = wait_until(proven, 30, 0.2)
        self.assertIsNotNone(body, "the record never got a proof")
        self.check_proof(body.json())
        bad = self.srv.request("GET", "/audit/v1/records/99999999/proof")
        self.assertOperationOutcome(bad, 404)
        self.assertOperationOutcome(
            self.srv.request("GET", "/audit/v1/records/0/proof?tree_size=0"), 400)


# ---- 6. export, 7. no PHI ----------------------------------------------------------------------

class ExportTests(AuditTestCase):

    def setUp(self):
        self.root = make_temp_root("kura-it-export-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def receiver(self):
        rx = RsyslogReceiver(os.path.join(self.root, "rsyslog"))
        rx.start()
        self.addCleanup(rx.stop)
        return rx

    def server(self, env):
        root = os.path.join(self.root, "kura")
        os.makedirs(root, exist_ok=True)
        srv = KuraServer(root=root, env=env)
        self.addCleanup(srv.close)
        self.srv = srv
        return srv

    def traffic(self, srv, n=3, tag="t"):
        """A few audited requests of several kinds; checks they all succeed as usual."""
        pid = srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertStatus(pid, 201)
        pid = pid.json()["id"]
        for i in range(n):
            o = srv.request("POST", f"{FHIR}/Observation",
                            observation(f"{tag}{i}", subject={"reference": f"Patient/{pid}"}))
            self.assertStatus(o, 201)
            self.assertStatus(srv.request("GET", f"{FHIR}/Observation/{o.json()['id']}"), 200)
        self.assertStatus(srv.request("GET", f"{FHIR}/Observation/nope"), 404)
        self.assertStatus(srv.request("GET", f"{FHIR}/Observation/x", token=None), 401)

    def syslog_records(self, rx):
        """[(seq, line)] of the record messages, in arrival order, and the checkpoint sizes."""
        records, checkpoints = [], []
        for line in rx.lines():
            m = RFC5424_RECORD.match(line)
            if m:
                records.append((int(m.group(7)), line))
                continue
            m = RFC5424_CHECKPOINT.search(line)
            if m:
                high = max([seq for seq, _ in records], default=-1)
                checkpoints.append((high, int(m.group(1)), line))
                continue
            self.fail(f"unexpected line from the exporter: {line!r}")
        return records, checkpoints

    def wait_for_all(self, collect, srv, timeout):
        """Waits until `collect()` -> [seq...] holds every sequence stored; returns it."""
        def complete():
            seqs = collect()
            wanted = max_audit_seq(srv.db_path)
            return seqs if wanted >= 0 and set(range(wanted + 1)) <= set(seqs) else None
        got = wait_until(complete, timeout, 0.1)
        if not got:
            seqs = collect()
            missing = sorted(set(range(max_audit_seq(srv.db_path) + 1)) - set(seqs))
            self.fail(f"records never arrived: {missing[:50]} (got {len(seqs)} messages)")
        return got

    def assert_in_order_without_gaps(self, seqs):
        """Arrival order: every message is at most one past the highest seen so far (resends of
        earlier records are allowed, skipping ahead is not), starting at 0."""
        high = -1
        for i, s in enumerate(seqs):
            self.assertLessEqual(s, high + 1, f"sequence {s} arrived before {high + 1} "
                                              f"(message {i}: {seqs[max(0, i - 5):i + 5]})")
            high = max(high, s)

    def test_syslog_rfc5424_in_order_across_a_receiver_outage(self):
        rx = self.receiver()
        srv = self.server({"KURA_AUDIT_SYSLOG_URL": f"tcp://127.0.0.1:{rx.port}",
                           "KURA_AUDIT_SYSLOG_FORMAT": "rfc5424",
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "5"})
        self.traffic(srv, tag="before")
        seqs = lambda: [s for s, _ in self.syslog_records(rx)[0]]  # noqa: E731
        self.wait_for_all(seqs, srv, 60)
        records, checkpoints = self.syslog_records(rx)
        self.assert_in_order_without_gaps([s for s, _ in records])
        self.assertEqual(records[0][0], 0)
        api = {r["sequence"]: r for r in self.records()}
        for seq, line in records:
            m = RFC5424_RECORD.match(line)
            rec = api[seq]
            self.assertEqual(m.group(4), "kura", line)                       # APP-NAME
            self.assertEqual(m.group(6), f"{rec['category']}.{rec['action']}", line)  # MSGID
            self.assertEqual((m.group(8), m.group(9), m.group(10)),
                             (rec["category"], rec["action"], rec["outcome"]), line)
            pri = int(m.group(1))
            self.assertEqual(pri // 8, 10, "facility authpriv")
            self.assertEqual(pri % 8, {"success": 6, "minor-failure": 5}[rec["outcome"]], line)
            self.assertTrue(m.group(2).startswith(rec["time"][:19]), (line, rec["time"]))
            if rec["request_id"]:
                self.assertIn(f'request_id="{rec["request_id"]}"', line)
        self.assertTrue(checkpoints, "no checkpoint was exported")
        for high, size, line in checkpoints:
            self.assertGreaterEqual(high, size - 1, f"a checkpoint before its records: {line}")
            note = base64.b64decode(RFC5424_CHECKPOINT.search(line).group(3)).decode()
            self.assertEqual(parse_checkpoint(note)[1], size)

        # The SIEM goes down; requests keep succeeding (the outbox is the durable log).
        rx.stop()
        received = len(rx.lines())
        down_from = max_audit_seq(srv.db_path)
        self.traffic(srv, n=2, tag="during")
        self.assertGreater(max_audit_seq(srv.db_path), down_from)
        self.assertEqual(len(rx.lines()), received, "a stopped receiver got messages")
        rx.start(port=rx.port)
        all_seqs = self.wait_for_all(seqs, srv, 90)
        self.assert_in_order_without_gaps(all_seqs)
        self.traffic(srv, n=1, tag="after")
        all_seqs = self.wait_for_all(seqs, srv, 60)
        self.assert_in_order_without_gaps(all_seqs)
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        # The drain on shutdown delivers the stop record too.
        final = self.wait_for_all(seqs, srv, 30)
        self.assert_in_order_without_gaps(final)
        last = [line for s, line in self.syslog_records(rx)[0] if s == max(final)]
        self.assertIn('category="system" action="stop"', last[0])

    def test_syslog_cef(self):
        rx = self.receiver()
        srv = self.server({"KURA_AUDIT_SYSLOG_URL": f"tcp://127.0.0.1:{rx.port}",
                           "KURA_AUDIT_SYSLOG_FORMAT": "cef",
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "5"})
        self.traffic(srv)

        def parse():
            out = []
            for line in rx.lines():
                self.assertIn("CEF:0|Kura|Kura|", line)
                m = CEF_RECORD.search(line)
                if m:
                    out.append((int(m.group(3)), m.group(1), int(m.group(2)), line))
                else:
                    self.assertRegex(line, CEF_CHECKPOINT)
            return out
        self.wait_for_all(lambda: [x[0] for x in parse()], srv, 60)
        records = parse()
        self.assert_in_order_without_gaps([x[0] for x in records])
        api = {r["sequence"]: r for r in self.records()}
        for seq, signature, severity, line in records:
            rec = api[seq]
            self.assertEqual(signature, f"{rec['category']}.{rec['action']}", line)
            self.assertEqual(severity, {"success": 3, "minor-failure": 5}[rec["outcome"]], line)
            self.assertIn(f"externalId={seq} ", line)
            self.assertIn(f"act={rec['action']}", line)
            self.assertRegex(line, r"^<\d+>1 \S+ \S+ kura \S+ \S+ - CEF:0\|Kura\|Kura\|")
        self.assertTrue(any(CEF_CHECKPOINT.search(line) for line in rx.lines()))

    def test_a_removed_sink_is_listed_and_can_be_forgotten(self):
        sink = os.path.join(self.root, "audit.jsonl")
        env = {"KURA_AUDIT_JSON_LINES_FILE": sink}
        srv = self.server(env)
        self.traffic(srv)
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        data = ["--data-dir", srv.data_dir]

        def sinks(env):
            res = run_cli(["audit", "sinks", *data, "--json"], env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            return json.loads(res.stdout)
        listed = sinks(env)
        self.assertEqual([(x["name"], x["configured"]) for x in listed], [("json-lines", True)])
        self.assertEqual(listed[0]["next_sequence"], max_audit_seq(srv.db_path) + 1)
        # Still configured: refused, and nothing is written.
        before = max_audit_seq(srv.db_path)
        res = run_cli(["audit", "forget-sink", *data, "--name", "json-lines"], env=env)
        self.assertEqual(res.returncode, 1)
        self.assertIn("configured in kura.toml", res.stderr)
        self.assertEqual(max_audit_seq(srv.db_path), before)
        # Removed from the configuration: listed as such, then forgotten (and audited).
        self.assertEqual([(x["name"], x["configured"]) for x in sinks({})],
                         [("json-lines", False)])
        res = run_cli(["audit", "forget-sink", *data, "--name", "json-lines"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("Forgot audit sink json-lines", res.stdout)
        self.assertEqual(sinks({}), [])
        self.assertEqual(max_audit_seq(srv.db_path), before + 1)
        res = run_cli(["audit", "forget-sink", *data, "--name", "json-lines"])
        self.assertEqual(res.returncode, 1)
        self.assertIn("no audit sink json-lines", res.stderr)
        res = run_cli(["audit", "forget-sink", *data])
        self.assertEqual(res.returncode, 2)
        self.assertIn("--name", res.stderr)

    def test_json_lines_file_is_a_verifiable_copy(self):
        sink = os.path.join(self.root, "audit.jsonl")
        srv = self.server({"KURA_AUDIT_JSON_LINES_FILE": sink,
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "4"})
        self.traffic(srv)

        def lines():
            try:
                with open(sink, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                return []
            return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]
        self.wait_for_all(lambda: [x["sequence"] for x in lines() if x["type"] == "record"],
                          srv, 60)
        self.assertEqual(stat.S_IMODE(os.stat(sink).st_mode), 0o600)
        api = {r["sequence"]: r for r in self.records()}
        for x in lines():
            if x["type"] == "record" and x["sequence"] in api:
                rec = dict(x)
                del rec["type"]
                self.assertEqual(rec, api[x["sequence"]])
                self.assertEqual(list(rec), list(api[x["sequence"]]), "key order")
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        got = lines()
        recs = [x["sequence"] for x in got if x["type"] == "record"]
        self.assert_in_order_without_gaps(recs)
        self.assertEqual(sorted(set(recs)), list(range(max_audit_seq(srv.db_path) + 1)),
                         "the file lacks records (the stop record is drained on shutdown)")
        cps = [x for x in got if x["type"] == "checkpoint"]
        self.assertTrue(cps)
        # A clean stop signs the log up to its stop record, and the file got that checkpoint.
        self.assertEqual(cps[-1]["tree_size"], max_audit_seq(srv.db_path) + 1, cps[-1])
        for cp in cps:
            _origin, size, _root, _sigs = parse_checkpoint(cp["note"])
            self.assertEqual(size, cp["tree_size"])
        self.assertEqual(stat.S_IMODE(os.stat(sink).st_mode), 0o600)
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json",
                       "--checkpoints", sink])
        self.assertEqual(res.returncode, 0, f"stdout: {res.stdout}\nstderr: {res.stderr}")
        report = json.loads(res.stdout)
        self.assertTrue(report["ok"], report)
        self.assertGreater(report["external_checkpoints"], 0, report)
        self.assertEqual(report["unsigned_tail"], 0, report)

    def test_a_restored_older_database_does_not_continue_into_its_sink_file(self):
        sink = os.path.join(self.root, "audit.jsonl")
        srv = self.server({"KURA_AUDIT_JSON_LINES_FILE": sink,
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "4"})
        self.traffic(srv, n=1)
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        backup = os.path.join(self.root, "backup")
        shutil.copytree(srv.data_dir, backup)
        older = max_audit_seq(srv.db_path) + 1
        srv.start()
        self.traffic(srv, n=2, tag="u")
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        shipped = max_audit_seq(srv.db_path)

        # The restore: the older database, and the file as the SIEM copy kept it.
        shutil.rmtree(srv.data_dir)
        shutil.copytree(backup, srv.data_dir)
        with open(sink, "rb") as f:
            before = f.read()
        with self.assertRaises(ServerStartError) as refused:
            srv.start()
        message = str(refused.exception)
        self.assertIn(f"holds record {shipped}, but the database's audit log has {older} records",
                      message)
        self.assertIn("move the file aside", message)
        # Nothing was appended anywhere: no start record, no line in the file.
        self.assertEqual(max_audit_seq(srv.db_path), older - 1)
        with open(sink, "rb") as f:
            self.assertEqual(f.read(), before)
        # What the message suggests shows the same thing.
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record",
                       "--checkpoints", sink])
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("truncated", [i["kind"] for i in json.loads(res.stdout)["issues"]])
        # So does a plain verify: it reads the end of the configured file by itself.
        configured = {"KURA_AUDIT_JSON_LINES_FILE": sink}
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record"],
                      env=configured)
        self.assertEqual(res.returncode, 1, res.stderr)
        report = json.loads(res.stdout)
        self.assertEqual((report["sink_file"], report["sink_file_found"],
                          report["sink_file_checkpoint"]), (sink, True, True), report)
        truncations = [i for i in report["issues"] if i["kind"] == "truncated"]
        self.assertTrue(truncations, report)
        self.assertTrue(all(i["sequence"] == older for i in truncations), report)
        self.assertIn(f"holds record {shipped}", " ".join(i["reason"] for i in truncations))
        plain = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--no-record"],
                        env=configured)
        self.assertIn(f"JSON-lines audit file {sink}: its latest checkpoint and record checked",
                      plain.stdout)
        # The restored database on its own is a sound log.
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record",
                       "--no-sink-file", "--no-delivery-mark"], env=configured)
        self.assertEqual(res.returncode, 0, res.stdout)
        self.assertIsNone(json.loads(res.stdout)["sink_file"])
        self.assertIsNone(json.loads(res.stdout)["delivery_mark"])

        os.rename(sink, sink + ".before-restore")
        srv.start()
        self.traffic(srv, n=1, tag="v")
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        # The new file goes on from where the restored database's export stood.
        with open(sink, encoding="utf-8") as f:
            first = json.loads(f.readline())
        self.assertEqual((first["type"], first["sequence"]), ("record", older))

    def test_a_restored_database_does_not_continue_behind_a_syslog_receiver(self):
        """The documented restore (the database file alone) behind a syslog sink: the receiver
        cannot be read back, so the delivery mark beside the database stops the start."""
        rx = self.receiver()
        srv = self.server({"KURA_AUDIT_SYSLOG_URL": f"tcp://127.0.0.1:{rx.port}",
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "4"})
        self.traffic(srv, n=1)
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        backup = os.path.join(self.root, "kura.db.backup")
        shutil.copyfile(srv.db_path, backup)  # A stopped server: the WAL was checkpointed.
        older = max_audit_seq(srv.db_path) + 1
        srv.start()
        self.traffic(srv, n=2, tag="u")
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        delivered = max_audit_seq(srv.db_path)
        self.assertIn(delivered, [s for s, _ in self.syslog_records(rx)[0]])
        mark = os.path.join(srv.data_dir, "audit-delivered")
        self.assertEqual(stat.S_IMODE(os.stat(mark).st_mode), 0o600)
        with open(mark, encoding="ascii") as f:
            self.assertEqual(f.read().split()[:2], ["kura-audit-delivered/v1", str(delivered)])

        # The restore as docs/operations.md describes it.
        for suffix in ("-wal", "-shm"):
            if os.path.exists(srv.db_path + suffix):
                os.remove(srv.db_path + suffix)
        shutil.copyfile(backup, srv.db_path)
        received = len(rx.lines())
        with self.assertRaises(ServerStartError) as refused:
            srv.start()
        message = str(refused.exception)
        self.assertIn(f"says a sink received record {delivered}, but the database's audit log "
                      f"has {older} records", message)
        self.assertIn("move the mark aside", message)
        self.assertEqual(max_audit_seq(srv.db_path), older - 1)  # Nothing appended.
        time.sleep(0.5)
        self.assertEqual(len(rx.lines()), received)  # Nothing sent.
        # What the message suggests shows it too, without a copy of the receiver's file: the
        # verifier reads the mark by itself.
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record"])
        self.assertEqual(res.returncode, 1, res.stderr)
        report = json.loads(res.stdout)
        self.assertEqual((report["delivery_mark"], report["delivery_mark_record"]),
                         (mark, delivered), report)
        truncations = [i for i in report["issues"] if i["kind"] == "truncated"]
        self.assertEqual([i["sequence"] for i in truncations], [older], report)
        self.assertIn(f"a sink received record {delivered}", truncations[0]["reason"])
        plain = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--no-record"])
        self.assertIn(f"Delivery mark {mark}: record {delivered} checked", plain.stdout)
        res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record",
                       "--no-delivery-mark"])
        self.assertEqual(res.returncode, 0, res.stdout)

        os.rename(mark, mark + ".before-restore")
        srv.start()
        self.traffic(srv, n=1, tag="v")
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())

    def test_no_phi_in_the_audit_log_or_its_exports(self):
        rx = self.receiver()
        sink = os.path.join(self.root, "audit.jsonl")
        srv = self.server({"KURA_AUDIT_SYSLOG_URL": f"tcp://127.0.0.1:{rx.port}",
                           "KURA_AUDIT_JSON_LINES_FILE": sink,
                           "KURA_AUDIT_CHECKPOINT_EVERY_RECORDS": "4"})
        family, given, note = random_marker("Fam"), random_marker("Giv"), random_marker("Note")
        birth = "1971-03-%02d" % (os.urandom(1)[0] % 28 + 1)
        patient = {"resourceType": "Patient", "name": [{"family": family, "given": [given]}],
                   "birthDate": birth, "telecom": [{"system": "phone", "value": note}]}
        r = srv.request("POST", f"{FHIR}/Patient", patient)
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        patient["id"] = pid
        self.assertStatus(srv.request("PUT", f"{FHIR}/Patient/{pid}", patient), 200)
        self.assertStatus(srv.request("GET", f"{FHIR}/Patient/{pid}"), 200)
        o = srv.request("POST", f"{FHIR}/Observation",
                        observation(note, subject={"reference": f"Patient/{pid}",
                                                   "display": family}))
        self.assertStatus(o, 201)
        # A rejected body carrying the marker, too.
        self.assertStatus(srv.request("POST", f"{FHIR}/Patient",
                                      '{"resourceType":"Patient","name":[{"family":"'
                                      + family + '"'), 400)
        markers = [family, given, note]
        audit_json = srv.request("GET", "/audit/v1/records?_count=1000").text
        events = srv.request("GET", f"{FHIR}/AuditEvent?_count=1000").text
        self.assertIn(pid, audit_json, "the records name the patient by id")
        for m in markers:
            self.assertNotIn(m, audit_json)
            self.assertNotIn(m, events)
        self.assertNotIn(birth, audit_json)
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log_text())
        # Exports are complete (the drain on stop) before they are searched.
        self.wait_for_all(lambda: [s for s, _ in self.syslog_records(rx)[0]], srv, 30)
        with open(sink, encoding="utf-8") as f:
            jsonl = f.read()
        self.assertIn(pid, jsonl)
        syslog = rx.text()
        self.assertIn(pid, syslog)
        for m in markers + [birth]:
            self.assertNotIn(m, jsonl)
            self.assertNotIn(m, syslog)
            self.assertNotIn(m, srv.log_text())


if __name__ == "__main__":
    unittest.main()
