"""FHIR PATCH (JSON Patch) and batch/transaction Bundles on the real server over TLS.

- PATCH: the happy path (a new version, decimals kept, Prefer, If-Match) and each refusal: 400
  for a malformed patch, 422 when it cannot be applied (failed `test`, missing path, a target
  inside a value that is not an object or array, server-owned member) or yields an invalid
  resource, 404/410, 412, 415, 501 for AuditEvent.
- Transactions: urn:uuid references rewritten to the ids the server assigns, everything stored
  at once or nothing at all, versions and history, processing order, reads seeing the
  transaction's writes, identity overlap, the entry limit (413), conditional operations (501
  until search exists).
- Batches: every entry on its own, with its own status and OperationOutcome.
- Audit: one record per entry plus the request's own, a transaction's all in the write's commit.
"""

import base64
import json
import re
import sqlite3
import threading
import unittest
from contextlib import closing

from harness import FHIR, KuraServer, KuraTestCase, SharedServerTestCase, observation, \
    random_marker, run_threads

BASE_URL = "https://kura.test:9443"  # KURA_SERVER_PUBLIC_BASE_URL for these servers
JSON_PATCH = "application/json-patch+json"
UUID_RE = r"[A-Za-z0-9\-.]{1,64}"


def patient(family, **extra):
    r = {"resourceType": "Patient", "name": [{"family": family}]}
    r.update(extra)
    return r


def entry(method, url, resource=None, full_url=None, **request):
    e = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        e["resource"] = resource
    if full_url is not None:
        e["fullUrl"] = full_url
    return e


def bundle(kind, *entries):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def binary_patch(ops):
    return {"resourceType": "Binary", "contentType": JSON_PATCH,
            "data": base64.b64encode(json.dumps(ops).encode()).decode()}


def urn():
    return "urn:uuid:" + random_marker("")[:8] + "-0000-4000-8000-" + random_marker("")[:12]


def open_db(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def max_audit_seq(db_path):
    with closing(open_db(db_path)) as db:
        (m,) = db.execute("SELECT COALESCE(MAX(seq), -1) FROM audit_log").fetchone()
        return m


def audit_rows_after(db_path, seq):
    """(seq, category, action, outcome) of the audit rows after `seq`, read from the database."""
    with closing(open_db(db_path)) as db:
        return db.execute("SELECT seq, category, action, outcome FROM audit_log WHERE seq > ? "
                          "ORDER BY seq", (seq,)).fetchall()


def version_count(db_path, rtype=None):
    with closing(open_db(db_path)) as db:
        if rtype is None:
            (n,) = db.execute("SELECT COUNT(*) FROM resource_versions").fetchone()
        else:
            (n,) = db.execute("SELECT COUNT(*) FROM resource_versions WHERE type = ?",
                              (rtype,)).fetchone()
        return n


class BundleTestCase(SharedServerTestCase):
    server_env = {"KURA_SERVER_PUBLIC_BASE_URL": BASE_URL}

    def req(self, *args, **kwargs):
        return self.srv.request(*args, **kwargs)

    def create(self, resource):
        r = self.req("POST", f"{FHIR}/{resource['resourceType']}", resource)
        self.assertStatus(r, 201, "create")
        return r.json()["id"]

    def patch(self, path, ops, **kwargs):
        body = ops if isinstance(ops, (bytes, str)) else json.dumps(ops)
        return self.req("PATCH", path, body, content_type=JSON_PATCH, **kwargs)

    def post_bundle(self, b, status=200, **kwargs):
        r = self.req("POST", FHIR, b, **kwargs)
        self.assertStatus(r, status, "bundle")
        return r

    def exchange(self, method, path, body=None, **kw):
        """One request; returns (response, audit rows it added, read before any other request)."""
        before = max_audit_seq(self.srv.db_path)
        resp = self.srv.request(method, path, body, **kw)
        return resp, audit_rows_after(self.srv.db_path, before)

    def record(self, seq):
        r = self.req("GET", f"/audit/v1/records/{seq}")
        self.assertStatus(r, 200)
        return r.json()

    def response_entries(self, r, kind, count):
        b = r.json()
        self.assertEqual(b["resourceType"], "Bundle")
        self.assertEqual(b["type"], kind)
        self.assertRegex(b["id"], UUID_RE)
        self.assertEqual(len(b["entry"]), count, b)
        return b["entry"]

    def assert_created(self, e, rtype):
        """A 201 response entry; returns the new id."""
        resp = e["response"]
        self.assertEqual(resp["status"], "201 Created", e)
        m = re.fullmatch(re.escape(f"{BASE_URL}{FHIR}/{rtype}/") + f"({UUID_RE})/_history/1",
                         resp["location"])
        self.assertIsNotNone(m, resp)
        self.assertEqual(resp["etag"], 'W/"1"')
        self.assertRegex(resp["lastModified"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(e["fullUrl"], f"{BASE_URL}{FHIR}/{rtype}/{m.group(1)}")
        self.assertNotIn("outcome", resp)
        return m.group(1)

    def assert_entry_outcome(self, e, status_line, code=None, expression=None):
        resp = e["response"]
        self.assertEqual(resp["status"], status_line, e)
        oo = resp["outcome"]
        self.assertEqual(oo["resourceType"], "OperationOutcome")
        issue = oo["issue"][0]
        self.assertEqual(issue["severity"], "error")
        self.assertTrue(issue["diagnostics"])
        if code is not None:
            self.assertEqual(issue["code"], code, oo)
        if expression is not None:
            self.assertEqual(issue.get("expression"), [expression], oo)
        self.assertNotIn("resource", e)
        return issue


# ---- PATCH ---------------------------------------------------------------------------------------

class PatchTests(BundleTestCase):

    def new_observation(self, value="98.60"):
        body = ('{"resourceType":"Observation","status":"final","code":{"text":"t"},'
                '"valueQuantity":{"value":' + value + ',"unit":"F"},"note":[{"text":"a"}]}')
        r = self.req("POST", f"{FHIR}/Observation", body)
        self.assertStatus(r, 201)
        return r.json()["id"]

    def current(self, oid):
        r = self.req("GET", f"{FHIR}/Observation/{oid}")
        self.assertStatus(r, 200)
        return r

    def test_patch_applies_and_makes_the_next_version(self):
        oid = self.new_observation()
        r = self.patch(f"{FHIR}/Observation/{oid}", [
            {"op": "test", "path": "/status", "value": "final"},
            {"op": "replace", "path": "/status", "value": "amended"},
            {"op": "add", "path": "/note/-", "value": {"text": "b"}},
            {"op": "add", "path": "/valueQuantity/comparator", "value": "<"},
            {"op": "add", "path": "/issued", "value": "2024-01-01T00:00:00Z"},
        ])
        self.assertStatus(r, 200)
        body = r.json()
        self.assertEqual(body["meta"]["versionId"], "2")
        self.assertEqual(body["status"], "amended")
        self.assertEqual(body["note"], [{"text": "a"}, {"text": "b"}])
        self.assertEqual(body["issued"], "2024-01-01T00:00:00Z")
        self.assertEqual(r.header("ETag"), 'W/"2"')
        self.assertEqual(r.header("Location"), f"{BASE_URL}{FHIR}/Observation/{oid}/_history/2")
        self.assertIsNotNone(r.header("Last-Modified"))
        # Untouched decimals keep their exact text.
        self.assertIn(b'"valueQuantity":{"value":98.60,"unit":"F","comparator":"<"}', r.body)
        g = self.current(oid)
        self.assertEqual(g.json(), body)
        self.assertEqual(g.header("ETag"), 'W/"2"')
        v1 = self.req("GET", f"{FHIR}/Observation/{oid}/_history/1")
        self.assertStatus(v1, 200)
        self.assertEqual(v1.json()["status"], "final")
        h = self.req("GET", f"{FHIR}/Observation/{oid}/_history")
        self.assertEqual([e["response"]["status"] for e in h.json()["entry"]],
                         ["200 OK", "201 Created"])

    def test_prefer_and_if_match(self):
        oid = self.new_observation()
        op = [{"op": "replace", "path": "/status", "value": "amended"}]
        r = self.patch(f"{FHIR}/Observation/{oid}", op, headers={"If-Match": 'W/"7"'})
        self.assertOperationOutcome(r, 412, code="conflict")
        self.assertEqual(self.current(oid).header("ETag"), 'W/"1"')
        r = self.patch(f"{FHIR}/Observation/{oid}", op,
                       headers={"If-Match": 'W/"1"', "Prefer": "return=minimal"})
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("ETag"), 'W/"2"')
        r = self.patch(f"{FHIR}/Observation/{oid}", op,
                       headers={"Prefer": "return=OperationOutcome"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["issue"][0]["severity"], "information")
        self.assertEqual(r.header("ETag"), 'W/"3"')
        r = self.patch(f"{FHIR}/Observation/{oid}", op, headers={"If-Match": "nonsense"})
        self.assertOperationOutcome(r, 400)

    def assert_unchanged(self, oid):
        self.assertEqual(self.current(oid).header("ETag"), 'W/"1"', "the patch wrote something")

    def test_malformed_patch_is_400(self):
        oid = self.new_observation()
        cases = [
            (b'{"op":"remove","path":"/note"}', "an array of operations"),
            (b'[{"op":"remove","path":"/note"', "malformed JSON"),
            (b'[{"op":"delete","path":"/note"}]', "operation 0: 'op' must be"),
            (b'[{"op":"add","path":"note","value":1}]', "'path' is not a JSON Pointer"),
            (b'[{"op":"add","path":"/note"}]', "'value' is missing"),
            (b'[{"op":"move","path":"/note"}]', "'from' is missing"),
            (b'', "empty"),
        ]
        for body, why in cases:
            with self.subTest(body=body):
                r = self.patch(f"{FHIR}/Observation/{oid}", body)
                self.assertOperationOutcome(r, 400, diagnostics_contains=why)
        self.assert_unchanged(oid)

    def test_failed_test_and_missing_paths_are_422(self):
        oid = self.new_observation()
        cases = [
            ([{"op": "test", "path": "/status", "value": "preliminary"}],
             "operation 0 (test): the value at '/status' is not the expected value"),
            ([{"op": "replace", "path": "/status", "value": "amended"},
              {"op": "test", "path": "/valueQuantity/value", "value": 98.6}],
             "operation 1 (test)"),
            ([{"op": "remove", "path": "/interpretation"}], "'/interpretation' does not exist"),
            ([{"op": "add", "path": "/note/5", "value": {"text": "x"}}], "out of range"),
            # A target inside a string (RFC 6902 4.1): the sanitizer build once aborted on it.
            ([{"op": "add", "path": "/status/x", "value": 1}],
             "the parent of '/status/x' is not an object or an array"),
            ([{"op": "copy", "from": "/code", "path": "/note/0/text/-"}],
             "operation 0 (copy): the parent of '/note/0/text/-'"),
        ]
        for ops, why in cases:
            with self.subTest(ops=ops):
                r = self.patch(f"{FHIR}/Observation/{oid}", ops)
                self.assertOperationOutcome(r, 422, code="processing", diagnostics_contains=why)
        self.assert_unchanged(oid)

    def test_server_owned_members_are_422(self):
        oid = self.new_observation()
        cases = [
            ([{"op": "replace", "path": "/id", "value": "other"}], "Observation.id"),
            ([{"op": "replace", "path": "/resourceType", "value": "Patient"}],
             "Observation.resourceType"),
            ([{"op": "replace", "path": "/meta/versionId", "value": "9"}],
             "Observation.meta.versionId"),
            ([{"op": "remove", "path": "/meta/lastUpdated"}], "Observation.meta.lastUpdated"),
        ]
        for ops, expression in cases:
            with self.subTest(ops=ops):
                r = self.patch(f"{FHIR}/Observation/{oid}", ops)
                self.assertOperationOutcome(r, 422, code="business-rule",
                                            expression=[expression])
        self.assert_unchanged(oid)
        # The rest of meta is the client's.
        r = self.patch(f"{FHIR}/Observation/{oid}",
                       [{"op": "add", "path": "/meta/tag", "value": [{"code": "t"}]}])
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["meta"]["tag"], [{"code": "t"}])

    def test_invalid_result_is_422(self):
        oid = self.new_observation()
        # A well-formed patch whose result the resource checks refuse.
        r = self.patch(f"{FHIR}/Observation/{oid}",
                       [{"op": "replace", "path": "/status", "value": 12}])
        self.assertOperationOutcome(r, 422, expression=["Observation.status"])
        deep = {"a": 1}
        for _ in range(70):
            deep = [deep]
        r = self.patch(f"{FHIR}/Observation/{oid}",
                       [{"op": "add", "path": "/note/0/extension", "value": deep}])
        self.assertIn(r.status, (400, 422), r)  # The document itself may already be too deep.
        self.assert_unchanged(oid)

    def test_missing_deleted_and_refused_targets(self):
        op = [{"op": "replace", "path": "/status", "value": "amended"}]
        self.assertOperationOutcome(self.patch(f"{FHIR}/Observation/no-such-id", op), 404,
                                    code="not-found")
        oid = self.new_observation()
        self.assertStatus(self.req("DELETE", f"{FHIR}/Observation/{oid}"), 204)
        self.assertOperationOutcome(self.patch(f"{FHIR}/Observation/{oid}", op), 410)
        self.assertOperationOutcome(self.patch(f"{FHIR}/NoSuchType/1", op), 404)
        self.assertOperationOutcome(self.patch(f"{FHIR}/Observation/bad$id", op), 400)
        self.assertOperationOutcome(self.patch(f"{FHIR}/AuditEvent/1", op), 501,
                                    code="not-supported")

    def test_other_media_types_are_415(self):
        oid = self.new_observation()
        fhirpath = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Observation.status"},
            {"name": "value", "valueCode": "amended"}]}]}
        for ctype, body, why in (
                ("application/fhir+json", fhirpath, "FHIRPath Patch is not supported"),
                ("application/json", [{"op": "remove", "path": "/note"}], "FHIRPath Patch"),
                ("application/merge-patch+json", {"status": "amended"}, "JSON Patch"),
                ("text/plain", "x", "JSON Patch")):
            with self.subTest(ctype=ctype):
                r = self.req("PATCH", f"{FHIR}/Observation/{oid}", body, content_type=ctype)
                self.assertOperationOutcome(r, 415, code="not-supported",
                                            diagnostics_contains=why)
                self.assertEqual(r.header("Accept-Patch"), JSON_PATCH)
        # Parameters on the JSON Patch media type is just a malformed JSON Patch.
        r = self.patch(f"{FHIR}/Observation/{oid}", json.dumps(fhirpath))
        self.assertOperationOutcome(r, 400)
        r = self.patch(f"{FHIR}/Observation/{oid}", [{"op": "remove", "path": "/note"}],
                       headers={"Content-Type": JSON_PATCH + "; charset=utf-8"})
        self.assertStatus(r, 200)

    def test_patch_is_audited_as_patch(self):
        pid = self.create(patient("P"))
        oid = self.create(observation("v", subject={"reference": f"Patient/{pid}"}))
        resp, rows = self.exchange("PATCH", f"{FHIR}/Observation/{oid}",
                                   json.dumps([{"op": "add", "path": "/issued",
                                                "value": "2024-01-01T00:00:00Z"}]),
                                   content_type=JSON_PATCH)
        self.assertStatus(resp, 200)
        own = [r for r in rows if r[1] == "fhir"]
        self.assertEqual([(r[2], r[3]) for r in own], [("patch", 0)], rows)
        rec = self.record(own[0][0])
        self.assertEqual(rec["resource"], {"type": "Observation", "id": oid, "version": "2"})
        self.assertEqual(rec["patient_compartments"], [pid])
        self.assertEqual(rec["request_id"], resp.header("X-Request-Id"))
        resp, rows = self.exchange("PATCH", f"{FHIR}/Observation/{oid}",
                                   json.dumps([{"op": "test", "path": "/status", "value": "x"}]),
                                   content_type=JSON_PATCH)
        self.assertStatus(resp, 422)
        own = [r for r in rows if r[1] == "fhir"]
        self.assertEqual([(r[2], r[3]) for r in own], [("patch", 4)], rows)
        self.assertEqual(self.record(own[0][0])["outcome_reason"], "invalid")


# ---- transactions --------------------------------------------------------------------------------

class TransactionTests(BundleTestCase):

    def test_urn_uuid_references_are_rewritten_and_everything_is_stored(self):
        p_urn, o1_urn, o2_urn = urn(), urn(), urn()
        mark = random_marker()
        b = bundle("transaction",
                   entry("POST", "Observation",
                         observation(mark + "-1", subject={"reference": p_urn},
                                     hasMember=[{"reference": o2_urn}],
                                     derivedFrom=[{"reference": "Observation/" + "x" * 3}]),
                         full_url=o1_urn),
                   entry("POST", "Patient", patient(mark, identifier=[
                       {"system": "urn:ietf:rfc:3986", "value": p_urn}]), full_url=p_urn),
                   entry("POST", "Observation",
                         observation(mark + "-2", subject={"reference": p_urn}),
                         full_url=o2_urn))
        r = self.post_bundle(b)
        self.assertTrue(r.header("Content-Type").startswith("application/fhir+json"))
        entries = self.response_entries(r, "transaction-response", 3)
        o1 = self.assert_created(entries[0], "Observation")
        pid = self.assert_created(entries[1], "Patient")
        o2 = self.assert_created(entries[2], "Observation")
        self.assertNotIn("resource", entries[0], "minimal by default")
        obs1 = self.req("GET", f"{FHIR}/Observation/{o1}").json()
        self.assertEqual(obs1["subject"], {"reference": f"Patient/{pid}"})
        self.assertEqual(obs1["hasMember"], [{"reference": f"Observation/{o2}"}])
        self.assertEqual(obs1["derivedFrom"], [{"reference": "Observation/xxx"}])
        self.assertEqual(obs1["valueString"], mark + "-1")
        obs2 = self.req("GET", f"{FHIR}/Observation/{o2}").json()
        self.assertEqual(obs2["subject"], {"reference": f"Patient/{pid}"})
        pat = self.req("GET", f"{FHIR}/Patient/{pid}").json()
        self.assertEqual(pat["name"], [{"family": mark}])
        # A uri that equals a fullUrl names the resource too.
        self.assertEqual(pat["identifier"][0]["value"], f"Patient/{pid}")
        for rid, rtype in ((o1, "Observation"), (o2, "Observation"), (pid, "Patient")):
            h = self.req("GET", f"{FHIR}/{rtype}/{rid}/_history").json()
            self.assertEqual(len(h["entry"]), 1)
            self.assertEqual(h["entry"][0]["resource"]["meta"]["versionId"], "1")

    def test_prefer_representation_includes_resources(self):
        b = bundle("transaction", entry("POST", "Patient", patient("Rep")))
        r = self.post_bundle(b, headers={"Prefer": "return=representation"})
        e = self.response_entries(r, "transaction-response", 1)[0]
        pid = self.assert_created(e, "Patient")
        self.assertEqual(e["resource"]["id"], pid)
        self.assertEqual(e["resource"]["meta"]["versionId"], "1")
        self.assertEqual(e["resource"]["name"], [{"family": "Rep"}])

    def test_a_failing_entry_leaves_nothing_behind(self):
        mark = random_marker()
        pid = self.create(patient("Keep"))
        pid2 = self.create(patient("Keep too"))
        before = version_count(self.srv.db_path)
        cases = [
            # An invalid resource: 400 with the entry's index in the expression.
            (entry("POST", "Observation", {"resourceType": "Patient"}), 400,
             "Bundle.entry[3].resource"),
            # A resource the checks refuse further down.
            (entry("POST", "Observation", observation("x", status=7)), 400,
             "Bundle.entry[3].resource.status"),
            # A missing resource to delete.
            (entry("DELETE", "Observation/never-was"), 404, "Bundle.entry[3]"),
            # An If-Match that does not match.
            (entry("PUT", f"Patient/{pid2}", patient("New", id=pid2), ifMatch='W/"5"'), 412,
             "Bundle.entry[3].request.ifMatch"),
            # A read that fails fails the transaction too.
            (entry("GET", "Patient/never-was"), 404, "Bundle.entry[3]"),
            # A patch that cannot be applied.
            (entry("PATCH", f"Patient/{pid2}",
                   binary_patch([{"op": "test", "path": "/gender", "value": "x"}])), 422,
             "Bundle.entry[3].resource"),
            # An unknown type.
            (entry("POST", "Nonsense", {"resourceType": "Nonsense"}), 404,
             "Bundle.entry[3].request.url"),
            # A structural problem.
            (entry("POST", "Patient"), 400, "Bundle.entry[3].resource"),
        ]
        for bad, status, expression in cases:
            with self.subTest(bad=bad):
                b = bundle("transaction",
                           entry("POST", "Patient", patient(mark)),
                           entry("PUT", f"Patient/{pid}", patient("Changed", id=pid)),
                           entry("POST", "Observation", observation(mark)),
                           bad)
                resp, rows = self.exchange("POST", FHIR, b)
                issue = self.assertOperationOutcome(resp, status)
                self.assertEqual(issue.get("expression"), [expression], issue)
                self.assertEqual(version_count(self.srv.db_path), before)
                fhir_rows = [r for r in rows if r[1] == "fhir"]
                self.assertEqual([(r[2], r[3]) for r in fhir_rows], [("batch", 4)], rows)
                rec = self.record(fhir_rows[0][0])
                self.assertEqual(rec["details"]["bundle.failed_entry"], "3")
                self.assertEqual(rec["details"]["bundle.type"], "transaction")
        g = self.req("GET", f"{FHIR}/Patient/{pid}")
        self.assertEqual(g.json()["name"], [{"family": "Keep"}])
        self.assertEqual(g.header("ETag"), 'W/"1"')

    def test_updates_deletes_and_patches_make_versions(self):
        pid = self.create(patient("V1"))
        oid = self.create(observation("gone"))
        qid = self.create(observation("patch me"))
        new_id = "tx-" + random_marker("")[:20]
        b = bundle("transaction",
                   entry("PUT", f"Patient/{pid}", patient("V2", id=pid), ifMatch='W/"1"'),
                   entry("DELETE", f"Observation/{oid}"),
                   entry("PUT", f"Patient/{new_id}", patient("Fresh", id=new_id)),
                   entry("PATCH", f"Observation/{qid}",
                         binary_patch([{"op": "replace", "path": "/valueString",
                                        "value": "patched"}])))
        entries = self.response_entries(self.post_bundle(b), "transaction-response", 4)
        self.assertEqual(entries[0]["response"]["status"], "200 OK")
        self.assertEqual(entries[0]["response"]["etag"], 'W/"2"')
        self.assertEqual(entries[0]["response"]["location"],
                         f"{BASE_URL}{FHIR}/Patient/{pid}/_history/2")
        self.assertEqual(entries[1]["response"]["status"], "204 No Content")
        self.assertEqual(entries[1]["response"]["etag"], 'W/"2"')
        self.assertNotIn("location", entries[1]["response"])
        self.assertEqual(entries[2]["response"]["status"], "201 Created")
        self.assertEqual(entries[2]["response"]["location"],
                         f"{BASE_URL}{FHIR}/Patient/{new_id}/_history/1")
        self.assertEqual(entries[3]["response"]["status"], "200 OK")
        self.assertEqual(entries[3]["response"]["etag"], 'W/"2"')
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["name"],
                         [{"family": "V2"}])
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{oid}"), 410)
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{oid}/_history/1"), 200)
        self.assertEqual(self.req("GET", f"{FHIR}/Observation/{qid}").json()["valueString"],
                         "patched")
        h = self.req("GET", f"{FHIR}/Patient/{pid}/_history").json()
        self.assertEqual([e["response"]["etag"] for e in h["entry"]], ['W/"2"', 'W/"1"'])

    def test_processing_order_and_reads_see_the_writes(self):
        pid = self.create(patient("Before"))
        gone = self.create(observation("to delete"))
        # Listed in the reverse of the processing order: reads first, deletes last.
        b = bundle("transaction",
                   entry("GET", f"Patient/{pid}"),
                   entry("GET", f"Observation/{gone}/_history/1"),
                   entry("PUT", f"Patient/{pid}", patient("After", id=pid)),
                   entry("POST", "Observation", observation("new")),
                   entry("DELETE", f"Observation/{gone}"))
        entries = self.response_entries(self.post_bundle(b), "transaction-response", 5)
        self.assertEqual(entries[0]["response"]["status"], "200 OK")
        self.assertEqual(entries[0]["resource"]["name"], [{"family": "After"}])
        self.assertEqual(entries[0]["response"]["etag"], 'W/"2"')
        self.assertEqual(entries[1]["response"]["status"], "200 OK")
        self.assertEqual(entries[1]["resource"]["valueString"], "to delete")
        new_id = self.assert_created(entries[3], "Observation")
        # One commit, in processing order: the delete, then the create, then the update.
        h = self.req("GET", f"{FHIR}/_history?_count=3").json()
        self.assertEqual([(e["request"]["method"], e["fullUrl"].rsplit("/", 2)[-2:])
                          for e in h["entry"]],
                         [("PUT", ["Patient", pid]), ("POST", ["Observation", new_id]),
                          ("DELETE", ["Observation", gone])])
        # A read of something the transaction deletes fails it.
        other = self.create(observation("x"))
        b = bundle("transaction", entry("GET", f"Observation/{other}"),
                   entry("DELETE", f"Observation/{other}"))
        r = self.post_bundle(b, status=410)
        self.assertEqual(r.json()["issue"][0]["expression"], ["Bundle.entry[0]"])
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{other}"), 200)

    def test_conditional_read_entries(self):
        oid = self.create(observation("cread"))
        current = self.req("GET", f"{FHIR}/Observation/{oid}")
        last = current.json()["meta"]["lastUpdated"]
        url = f"Observation/{oid}"
        b = bundle("batch",
                   entry("GET", url, ifNoneMatch='W/"1"'),
                   entry("GET", url, ifNoneMatch='W/"7", *'),
                   entry("GET", url, ifNoneMatch='W/"2"'),
                   entry("GET", url, ifModifiedSince=last),
                   entry("GET", url, ifModifiedSince="2001-01-01T00:00:00Z"),
                   # ifNoneMatch decides alone when both are given.
                   entry("GET", url, ifNoneMatch='W/"2"', ifModifiedSince=last),
                   # A date after the server's clock is not valid: ignored.
                   entry("GET", url, ifModifiedSince="2999-01-01T00:00:00Z"),
                   # Only reads of an instance are conditional: a search answers as usual.
                   entry("GET", f"Observation?_id={oid}", ifNoneMatch="*"))
        entries = self.response_entries(self.post_bundle(b), "batch-response", 8)
        statuses = [e["response"]["status"] for e in entries]
        self.assertEqual(statuses, ["304 Not Modified", "304 Not Modified", "200 OK",
                                    "304 Not Modified", "200 OK", "200 OK", "200 OK", "200 OK"])
        for e, status in zip(entries[:7], statuses):
            self.assertEqual(e["response"]["etag"], 'W/"1"')
            self.assertEqual(e["response"]["lastModified"], last)
            self.assertEqual("resource" in e, status == "200 OK", e)
        self.assertEqual(entries[7]["resource"]["total"], 1)
        # After an update the old tag and date no longer hold.
        self.assertStatus(self.req("PUT", f"{FHIR}/{url}", dict(observation("cread 2"), id=oid)),
                          200)
        b = bundle("batch", entry("GET", url, ifNoneMatch='W/"1"'),
                   entry("GET", url, ifModifiedSince=last))
        entries = self.response_entries(self.post_bundle(b), "batch-response", 2)
        self.assertEqual([e["response"]["status"] for e in entries], ["200 OK", "200 OK"])
        self.assertEqual(entries[0]["resource"]["valueString"], "cread 2")
        # Malformed conditions are the entry's 400, naming the element.
        b = bundle("batch", entry("GET", url, ifModifiedSince="yesterday"),
                   entry("GET", url, ifModifiedSince="2020-01-01"),
                   entry("GET", url, ifNoneMatch=7))
        entries = self.response_entries(self.post_bundle(b), "batch-response", 3)
        for e, where in zip(entries, ("request.ifModifiedSince", "request.ifModifiedSince",
                                      "request")):
            self.assertEqual(e["response"]["status"], "400 Bad Request")
            self.assertTrue(any(x.endswith(where) for x in
                                e["response"]["outcome"]["issue"][0]["expression"]), e)

    def test_one_resource_twice_and_shared_full_urls_are_refused(self):
        pid = self.create(patient("Twice"))
        b = bundle("transaction", entry("PUT", f"Patient/{pid}", patient("A", id=pid)),
                   entry("DELETE", f"Patient/{pid}"))
        r = self.post_bundle(b, status=400)
        issue = r.json()["issue"][0]
        self.assertEqual(issue["code"], "business-rule")
        self.assertEqual(issue["expression"], ["Bundle.entry[1]"])
        self.assertIn(f"both write Patient/{pid}", issue["diagnostics"])
        u = urn()
        b = bundle("transaction", entry("POST", "Patient", patient("A"), full_url=u),
                   entry("POST", "Patient", patient("B"), full_url=u))
        r = self.post_bundle(b, status=400)
        self.assertEqual(r.json()["issue"][0]["expression"], ["Bundle.entry[1].fullUrl"])
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").header("ETag"), 'W/"1"')

    def test_dangling_urn_reference_is_refused(self):
        b = bundle("transaction",
                   entry("POST", "Observation", observation("d", subject={"reference": urn()})))
        r = self.post_bundle(b, status=400)
        issue = r.json()["issue"][0]
        self.assertEqual(issue["code"], "not-found")
        self.assertEqual(issue["expression"], ["Bundle.entry[0].resource"])

    def test_conditional_create_update_patch_delete_and_references(self):
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        query = f"identifier=urn:kura:test:mrn|{mrn}"
        # ifNoneExist with no match creates; with one match reports the existing resource.
        r = self.post_bundle(bundle("transaction",
                                    entry("POST", "Patient", patient("C", **ident),
                                          ifNoneExist=query)))
        first = r.json()["entry"][0]["response"]
        self.assertEqual(first["status"], "201 Created")
        pid = first["location"].split("/Patient/")[1].split("/")[0]
        r = self.post_bundle(bundle("transaction",
                                    entry("POST", "Patient", patient("C", **ident),
                                          ifNoneExist=query)))
        again = r.json()["entry"][0]["response"]
        self.assertEqual(again["status"], "200 OK")
        self.assertIn(f"/Patient/{pid}/", again["location"])
        # A conditional reference resolves to that patient inside a transaction.
        r = self.post_bundle(bundle("transaction", entry(
            "POST", "Observation",
            observation("cr", subject={"reference": f"Patient?{query}"}))))
        oid = r.json()["entry"][0]["response"]["location"].split("/Observation/")[1].split("/")[0]
        stored = self.req("GET", f"{FHIR}/Observation/{oid}").json()
        self.assertEqual(stored["subject"]["reference"], f"Patient/{pid}")
        # Conditional update and patch reach the one match.
        r = self.post_bundle(bundle("transaction",
                                    entry("PUT", f"Patient?{query}", patient("Updated", **ident))))
        self.assertEqual(r.json()["entry"][0]["response"]["status"], "200 OK")
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["name"][0]["family"],
                         "Updated")
        r = self.post_bundle(bundle("transaction", entry(
            "PATCH", f"Patient?{query}",
            binary_patch([{"op": "replace", "path": "/name/0/family", "value": "Patched"}]))))
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["name"][0]["family"],
                         "Patched")
        # A search entry sees the match.
        r = self.post_bundle(bundle("batch", entry("GET", f"Patient?{query}")))
        found = r.json()["entry"][0]["resource"]
        self.assertEqual(found["type"], "searchset")
        self.assertEqual([e["resource"]["id"] for e in found["entry"]], [pid])
        # Conditional delete removes it; a second one is a no-op.
        self.req("DELETE", f"{FHIR}/Observation/{oid}")
        r = self.post_bundle(bundle("transaction", entry("DELETE", f"Patient?{query}")))
        self.assertTrue(r.json()["entry"][0]["response"]["status"].startswith("20"))
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").status, 410)
        self.post_bundle(bundle("transaction", entry("DELETE", f"Patient?{query}")))

    def test_if_none_exist_on_a_plain_create(self):
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        condition = {"If-None-Exist": f"identifier=urn:kura:test:mrn|{mrn}"}
        # No match: created.
        r = self.req("POST", f"{FHIR}/Patient", patient("Once", **ident), headers=condition)
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        before = version_count(self.srv.db_path)
        # One match: 200 with that resource, its location and ETag, and nothing written.
        r = self.req("POST", f"{FHIR}/Patient", patient("Twice", **ident), headers=condition)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["id"], pid)
        self.assertEqual(r.json()["name"][0]["family"], "Once")
        self.assertIn(f"/Patient/{pid}/_history/1", r.header("Location"))
        self.assertEqual(r.header("ETag"), 'W/"1"')
        self.assertEqual(version_count(self.srv.db_path), before)
        # Two matches: 412. Unknown parameters and an invalid body: 400. Nothing written.
        self.create(patient("Other", **ident))
        before = version_count(self.srv.db_path)
        r = self.req("POST", f"{FHIR}/Patient", patient("Third", **ident), headers=condition)
        self.assertStatus(r, 412)
        self.assertEqual(r.json()["issue"][0]["code"], "multiple-matches")
        r = self.req("POST", f"{FHIR}/Patient", patient("Third"),
                     headers={"If-None-Exist": "nonsense=1"})
        self.assertStatus(r, 400)
        r = self.req("POST", f"{FHIR}/Patient", {"resourceType": "Patient", "bogus": 1},
                     headers={"If-None-Exist": "nonsense=1"})
        self.assertStatus(r, 400)
        self.assertEqual(version_count(self.srv.db_path), before)

    def test_racing_conditional_writes_create_once(self):
        # Many clients at once, each on its own connection: plain If-None-Exist creates,
        # transactions with ifNoneExist and conditional PUTs, all for one identifier. Without
        # serialization several find no match and several create.
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        query = f"identifier=urn:kura:test:mrn|{mrn}"
        statuses, lock = [], threading.Lock()

        def client(n):
            conn = self.srv.connection()
            try:
                if n % 3 == 0:
                    r = self.srv.request("POST", f"{FHIR}/Patient", patient(f"P{n}", **ident),
                                         headers={"If-None-Exist": query}, conn=conn)
                    status = r.status
                elif n % 3 == 1:
                    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                        entry("POST", "Patient", patient(f"T{n}", **ident), ifNoneExist=query)]}
                    r = self.srv.request("POST", FHIR, bundle, conn=conn)
                    status = r.status
                    if status == 200:
                        status = int(r.json()["entry"][0]["response"]["status"][:3])
                else:
                    r = self.srv.request("PUT", f"{FHIR}/Patient?{query}",
                                         patient(f"U{n}", **ident), conn=conn)
                    status = r.status
                with lock:
                    statuses.append(status)
            finally:
                conn.close()

        self.assertEqual([repr(e) for e in run_threads(client, 24, 120)], [])
        self.assertEqual(len(statuses), 24)
        self.assertEqual(statuses.count(201), 1, statuses)
        self.assertTrue(set(statuses) <= {200, 201}, statuses)
        r = self.req("GET", f"{FHIR}/Patient?{query}&_summary=count")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["total"], 1)

    def test_conditional_put_entry_with_a_body_id_and_no_match_creates_under_it(self):
        # As the plain PUT [type]?criteria does (update as create); references to the entry's
        # fullUrl then point at that id.
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        chosen = "chosen-" + random_marker("")[:12]
        full_url = "urn:uuid:8d0c1d53-5e8a-4c36-9f3e-1b2a3c4d5e6f"
        r = self.post_bundle(bundle(
            "transaction",
            entry("PUT", f"Patient?identifier=urn:kura:test:mrn|{mrn}",
                  patient("Named", id=chosen, **ident), full_url=full_url),
            entry("POST", "Observation",
                  observation("ref", subject={"reference": full_url}))))
        put, post = (e["response"] for e in r.json()["entry"])
        self.assertEqual(put["status"], "201 Created")
        self.assertIn(f"/Patient/{chosen}/_history/1", put["location"])
        oid = post["location"].split("/Observation/")[1].split("/")[0]
        stored = self.req("GET", f"{FHIR}/Observation/{oid}").json()
        self.assertEqual(stored["subject"]["reference"], f"Patient/{chosen}")
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{chosen}").json()["name"][0]["family"],
                         "Named")
        # An invalid body id is refused for the entry, with nothing written.
        before = version_count(self.srv.db_path)
        r = self.post_bundle(bundle(
            "transaction",
            entry("PUT", f"Patient?identifier=urn:kura:test:mrn|other{mrn}",
                  patient("Bad", id="not a valid id"))), status=400)
        self.assertEqual(version_count(self.srv.db_path), before)

    def test_conditional_patch_on_a_plain_url(self):
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        url = f"{FHIR}/Patient?identifier=urn:kura:test:mrn|{mrn}"
        ops = [{"op": "replace", "path": "/active", "value": False}]
        # No match: 404, nothing written.
        r = self.patch(url, ops)
        self.assertStatus(r, 404)
        self.assertEqual(r.json()["resourceType"], "OperationOutcome")
        # One match: patched as an update of it (200, next version, If-Match honoured).
        pid = self.create(patient("Patched", active=True, **ident))
        r = self.patch(url, ops)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["id"], pid)
        self.assertIs(r.json()["active"], False)
        self.assertEqual(r.header("ETag"), 'W/"2"')
        r = self.patch(url, ops, headers={"If-Match": 'W/"1"'})
        self.assertStatus(r, 412)
        # A patch that cannot be applied is 422; the wrong media type 415 naming JSON Patch.
        r = self.patch(url, [{"op": "remove", "path": "/birthDate"}])
        self.assertStatus(r, 422)
        r = self.req("PATCH", url, ops)
        self.assertStatus(r, 415)
        self.assertEqual(r.header("Accept-Patch"), JSON_PATCH)
        # Criteria are required to be known; several matches are 412. Nothing written by these.
        r = self.patch(f"{FHIR}/Patient?nonsense=1", ops)
        self.assertStatus(r, 400)
        self.create(patient("Other", **ident))
        before = version_count(self.srv.db_path)
        r = self.patch(url, ops)
        self.assertStatus(r, 412)
        self.assertEqual(r.json()["issue"][0]["code"], "multiple-matches")
        self.assertEqual(version_count(self.srv.db_path), before)
        r = self.req("GET", f"{FHIR}/Patient/{pid}")
        self.assertEqual(r.header("ETag"), 'W/"2"')

    def test_conditional_update_and_delete_on_plain_urls(self):
        mrn = "MRN" + random_marker("")[:10]
        ident = {"identifier": [{"system": "urn:kura:test:mrn", "value": mrn}]}
        url = f"{FHIR}/Patient?identifier=urn:kura:test:mrn|{mrn}"
        # No match: PUT creates (201) under a new id.
        r = self.req("PUT", url, patient("First", **ident))
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        # One match: PUT updates it (200, next version); a stale If-Match is 412.
        r = self.req("PUT", url, patient("Second", **ident))
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["id"], pid)
        self.assertEqual(r.header("ETag"), 'W/"2"')
        r = self.req("PUT", url, patient("Third", **ident), headers={"If-Match": 'W/"1"'})
        self.assertStatus(r, 412)
        # A body id must be the match's.
        r = self.req("PUT", url, patient("Third", id="someone-else", **ident))
        self.assertStatus(r, 400)
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["name"][0]["family"],
                         "Second")
        # Criteria are required and unknown parameters refused; nothing is written.
        before = version_count(self.srv.db_path)
        for bad in (f"{FHIR}/Patient", f"{FHIR}/Patient?nonsense=1"):
            with self.subTest(url=bad):
                self.assertStatus(self.req("PUT", bad, patient("X", **ident)), 400)
                self.assertStatus(self.req("DELETE", bad), 400)
        # Several matches: 412 for both.
        self.create(patient("Other", **ident))
        self.assertStatus(self.req("PUT", url, patient("Fourth", **ident)), 412)
        self.assertStatus(self.req("DELETE", url), 412)
        self.assertEqual(version_count(self.srv.db_path), before + 1)
        # One match: DELETE removes it; no match: 204 and nothing written.
        other = f"{FHIR}/Patient?identifier=urn:kura:test:mrn|{mrn}&family=Other"
        r = self.req("DELETE", other)
        self.assertStatus(r, 204)
        self.assertEqual(r.header("ETag"), 'W/"2"')
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/{pid}"), 200)
        before = version_count(self.srv.db_path)
        self.assertStatus(self.req("DELETE", other), 204)
        self.assertEqual(version_count(self.srv.db_path), before)
        # No match with an id in the body: created under that id (update as create).
        fresh = "cond-" + random_marker("")[:12]
        r = self.req("PUT", f"{FHIR}/Patient?identifier=urn:kura:test:mrn|{fresh}",
                     patient("Fresh", id=fresh))
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["id"], fresh)
        # AuditEvent stays read-only.
        self.assertStatus(self.req("DELETE", f"{FHIR}/AuditEvent?_id=x"), 501)

    def test_conditional_operations_with_several_matches_or_bad_criteria_fail(self):
        tag = "T" + random_marker("")[:10]
        for _ in range(2):
            self.create(patient("Twin", identifier=[{"system": "urn:kura:test:twin",
                                                     "value": tag}]))
        query = f"identifier=urn:kura:test:twin|{tag}"
        before = version_count(self.srv.db_path)
        for e in [entry("POST", "Patient", patient("C"), ifNoneExist=query),
                  entry("PUT", f"Patient?{query}", patient("C")),
                  entry("DELETE", f"Patient?{query}"),
                  entry("POST", "Observation",
                        observation("c", subject={"reference": f"Patient?{query}"}))]:
            with self.subTest(entry=e):
                r = self.post_bundle(bundle("transaction", e), status=412)
                self.assertTrue(r.json()["issue"][0]["expression"][0].startswith("Bundle.entry[0]"))
        # Unknown parameters in a condition are refused, not ignored.
        r = self.post_bundle(bundle("transaction",
                                    entry("PUT", "Patient?nonsense=1", patient("C"))), status=400)
        self.assertEqual(version_count(self.srv.db_path), before)

    def test_patch_entries(self):
        pid = self.create(patient("Patchy"))
        fhirpath = {"resourceType": "Parameters", "parameter": [{"name": "operation"}]}
        r = self.post_bundle(bundle("transaction", entry("PATCH", f"Patient/{pid}", fhirpath)),
                             status=501)
        self.assertIn("FHIRPath Patch", r.json()["issue"][0]["diagnostics"])
        bad = {"resourceType": "Binary", "contentType": "application/json", "data": "W10="}
        r = self.post_bundle(bundle("transaction", entry("PATCH", f"Patient/{pid}", bad)),
                             status=400)
        self.assertEqual(r.json()["issue"][0]["expression"],
                         ["Bundle.entry[0].resource.contentType"])
        ok = binary_patch([{"op": "add", "path": "/gender", "value": "other"}])
        e = self.response_entries(
            self.post_bundle(bundle("transaction", entry("PATCH", f"Patient/{pid}", ok,
                                                         ifMatch='W/"1"'))),
            "transaction-response", 1)[0]
        self.assertEqual(e["response"]["status"], "200 OK")
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["gender"], "other")

    def test_transaction_audit_records_ride_in_the_commit(self):
        pid = self.create(patient("Audited"))
        p_urn = urn()
        b = bundle("transaction",
                   entry("POST", "Patient", patient("New"), full_url=p_urn),
                   entry("POST", "Observation", observation("a", subject={"reference": p_urn})),
                   entry("PUT", f"Patient/{pid}", patient("Audited2", id=pid)),
                   entry("GET", f"Patient/{pid}"))
        resp, rows = self.exchange("POST", FHIR, b)
        self.assertStatus(resp, 200)
        entries = resp.json()["entry"]
        new_pid = entries[0]["fullUrl"].rsplit("/", 1)[1]
        oid = entries[1]["fullUrl"].rsplit("/", 1)[1]
        fhir_rows = [r for r in rows if r[1] == "fhir"]
        # Every entry's record, then the request's: all durable when the response arrived.
        self.assertEqual([(r[2], r[3]) for r in fhir_rows],
                         [("create", 0), ("create", 0), ("update", 0), ("read", 0),
                          ("batch", 0)], rows)
        recs = [self.record(r[0]) for r in fhir_rows]
        rid = resp.header("X-Request-Id")
        for i, rec in enumerate(recs):
            self.assertEqual(rec["request_id"], rid)
            self.assertEqual(rec["actor"]["id"], "bootstrap-admin")
            if i < 4:
                self.assertEqual(rec["details"]["bundle.index"], str(i))
        self.assertEqual(recs[0]["resource"], {"type": "Patient", "id": new_pid, "version": "1"})
        self.assertEqual(recs[0]["patient_compartments"], [new_pid])
        self.assertEqual(recs[0]["details"]["http.status"], "201")
        self.assertEqual(recs[0]["details"]["bundle.method"], "POST")
        self.assertEqual(recs[1]["resource"], {"type": "Observation", "id": oid, "version": "1"})
        self.assertEqual(recs[1]["patient_compartments"], [new_pid])
        self.assertEqual(recs[2]["resource"], {"type": "Patient", "id": pid, "version": "2"})
        self.assertEqual(recs[2]["details"]["http.status"], "200")
        self.assertEqual(recs[3]["resource"], {"type": "Patient", "id": pid, "version": "2"})
        self.assertEqual(recs[3]["patient_compartments"], [pid])
        self.assertEqual(recs[4]["details"]["bundle.type"], "transaction")
        self.assertEqual(recs[4]["details"]["bundle.entries"], "4")
        self.assertEqual(recs[4]["details"]["http.status"], "200")
        # The patients' own audit trails show the transaction's accesses.
        found = self.req("GET", f"/audit/v1/records?patient={new_pid}&_count=100").json()
        self.assertLessEqual({recs[0]["sequence"], recs[1]["sequence"]},
                             {r["sequence"] for r in found["records"]})


# ---- batches -------------------------------------------------------------------------------------

class BatchTests(BundleTestCase):

    def test_each_entry_has_its_own_outcome(self):
        pid = self.create(patient("Batch"))
        gone = self.create(observation("to delete"))
        qid = self.create(observation("q"))
        put_new = "b-" + random_marker("")[:20]
        b = bundle("batch",
                   entry("POST", "Observation", observation("ok")),                       # 0
                   entry("POST", "Observation", {"resourceType": "Patient"}),             # 1
                   entry("PUT", f"Patient/{put_new}", patient("New", id=put_new)),        # 2
                   entry("PUT", f"Patient/{pid}", patient("Upd", id=pid)),                # 3
                   entry("GET", "Patient/never-was"),                                     # 4
                   entry("DELETE", f"Observation/{gone}"),                                # 5
                   entry("PATCH", f"Observation/{qid}",
                         binary_patch([{"op": "replace", "path": "/status",
                                        "value": "amended"}])),                          # 6
                   entry("PATCH", f"Observation/{qid}",
                         binary_patch([{"op": "test", "path": "/status", "value": "x"}])),  # 7
                   entry("GET", "AuditEvent/1"),                                          # 8
                   entry("GET", "Patient/$everything"),                                   # 9
                   entry("get", f"Patient/{pid}"),                                        # 10
                   entry("GET", f"Patient/{pid}"),                                        # 11
                   entry("POST", "AuditEvent", {"resourceType": "AuditEvent"}),           # 12
                   entry("DELETE", "Observation/never-was"),                              # 13
                   entry("HEAD", f"Patient/{pid}"),                                       # 14
                   {"fullUrl": 3})                                                        # 15
        r = self.post_bundle(b)
        entries = self.response_entries(r, "batch-response", 16)
        self.assert_created(entries[0], "Observation")
        self.assert_entry_outcome(entries[1], "400 Bad Request", "invalid",
                                  "Bundle.entry[1].resource")
        self.assertEqual(entries[2]["response"]["status"], "201 Created")
        self.assertEqual(entries[3]["response"]["status"], "200 OK")
        self.assertEqual(entries[3]["response"]["etag"], 'W/"2"')
        self.assert_entry_outcome(entries[4], "404 Not Found", "not-found", "Bundle.entry[4]")
        self.assertEqual(entries[5]["response"]["status"], "204 No Content")
        # Two patches of one resource: whichever ran second saw the first one's result.
        statuses = sorted([entries[6]["response"]["status"], entries[7]["response"]["status"]])
        self.assertEqual(statuses, ["200 OK", "422 Unprocessable Entity"])
        self.assert_entry_outcome(entries[8], "501 Not Implemented", "not-supported",
                                  "Bundle.entry[8].request.url")
        self.assert_entry_outcome(entries[9], "501 Not Implemented", "not-supported",
                                  "Bundle.entry[9].request.url")
        self.assert_entry_outcome(entries[10], "400 Bad Request", "value",
                                  "Bundle.entry[10].request.method")
        self.assertEqual(entries[11]["response"]["status"], "200 OK")
        self.assertEqual(entries[11]["resource"]["name"], [{"family": "Upd"}])
        self.assert_entry_outcome(entries[12], "501 Not Implemented", "not-supported")
        self.assert_entry_outcome(entries[13], "404 Not Found", "not-found")
        self.assertEqual(entries[14]["response"]["status"], "200 OK")
        self.assertNotIn("resource", entries[14])
        self.assert_entry_outcome(entries[15], "400 Bad Request", "structure",
                                  "Bundle.entry[15].fullUrl")
        # The successes are stored, the failures are not.
        self.assertEqual(self.req("GET", f"{FHIR}/Patient/{pid}").json()["name"],
                         [{"family": "Upd"}])
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/{put_new}"), 200)
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{gone}"), 410)
        self.assertEqual(self.req("GET", f"{FHIR}/Observation/{qid}").json()["status"], "amended")

    def test_an_entry_with_a_duplicate_key_fails_alone_and_sinks_a_transaction(self):
        # The Bundle reader reads each resource in the same pass; one it refuses is read again
        # on its own, so its entry says what a resource body would.
        good = json.dumps(entry("POST", "Observation", observation("dup-ok")),
                          separators=(",", ":"))
        bad = good.replace('"status":"final"', '"status":"final","status":"final"', 1)
        self.assertNotEqual(bad, good)
        for kind in ("batch", "transaction"):
            body = '{"resourceType":"Bundle","type":"%s","entry":[%s,%s]}' % (kind, good, bad)
            if kind == "batch":
                entries = self.response_entries(self.post_bundle(body), "batch-response", 2)
                self.assert_created(entries[0], "Observation")
                self.assert_entry_outcome(entries[1], "400 Bad Request", "structure",
                                          "Bundle.entry[1].resource")
                self.assertIn("duplicate JSON key",
                              entries[1]["response"]["outcome"]["issue"][0]["diagnostics"])
            else:
                r = self.post_bundle(body, status=400)
                issue = r.json()["issue"][0]
                self.assertIn("duplicate JSON key", issue["diagnostics"])
                self.assertEqual(issue["expression"], ["Bundle.entry[1].resource"])

    def test_deletes_run_before_reads(self):
        gone = self.create(observation("x"))
        new_id = "late-" + random_marker("")[:20]
        b = bundle("batch", entry("GET", f"Observation/{gone}"),
                   entry("GET", f"Patient/{new_id}"),
                   entry("PUT", f"Patient/{new_id}", patient("Late", id=new_id)),
                   entry("DELETE", f"Observation/{gone}"))
        entries = self.response_entries(self.post_bundle(b), "batch-response", 4)
        self.assert_entry_outcome(entries[0], "410 Gone", "deleted")
        self.assertEqual(entries[1]["response"]["status"], "200 OK")
        self.assertEqual(entries[1]["resource"]["id"], new_id)

    def test_no_reference_rewriting_in_a_batch(self):
        u = urn()
        b = bundle("batch", entry("POST", "Patient", patient("B"), full_url=u),
                   entry("POST", "Observation",
                         observation("b", subject={"reference": "Patient/elsewhere"},
                                     focus=[{"reference": u}])))
        entries = self.response_entries(self.post_bundle(b), "batch-response", 2)
        oid = self.assert_created(entries[1], "Observation")
        self.assertEqual(self.req("GET", f"{FHIR}/Observation/{oid}").json()["focus"],
                         [{"reference": u}])

    def test_batch_audit_has_one_record_per_entry(self):
        pid = self.create(patient("BA"))
        b = bundle("batch", entry("POST", "Observation",
                                  observation("a", subject={"reference": f"Patient/{pid}"})),
                   entry("GET", f"Patient/{pid}"),
                   entry("DELETE", "Observation/never-was"))
        resp, rows = self.exchange("POST", FHIR, b)
        self.assertStatus(resp, 200)
        fhir_rows = [r for r in rows if r[1] == "fhir"]
        self.assertEqual(sorted((r[2], r[3]) for r in fhir_rows),
                         [("batch", 0), ("create", 0), ("delete", 4), ("read", 0)], rows)
        self.assertEqual(fhir_rows[-1][2], "batch", "the request's record comes last")
        recs = {r[2]: self.record(r[0]) for r in fhir_rows}
        self.assertEqual(recs["create"]["patient_compartments"], [pid])
        self.assertEqual(recs["create"]["details"]["bundle.index"], "0")
        self.assertEqual(recs["read"]["resource"], {"type": "Patient", "id": pid, "version": "1"})
        self.assertEqual(recs["delete"]["outcome_reason"], "not-found")
        self.assertEqual(recs["delete"]["details"]["http.status"], "404")
        self.assertEqual(recs["batch"]["details"]["bundle.type"], "batch")
        for rec in recs.values():
            self.assertEqual(rec["request_id"], resp.header("X-Request-Id"))


# ---- the Bundle itself ---------------------------------------------------------------------------

class BundleShapeTests(BundleTestCase):

    def test_what_is_not_a_batch_or_transaction(self):
        cases = [
            ({"resourceType": "Bundle", "type": "collection", "entry": []}, "Bundle.type"),
            ({"resourceType": "Patient"}, "resourceType"),
            ({"resourceType": "Bundle", "type": "batch", "entry": {}}, "Bundle.entry"),
            (b'{"resourceType":"Bundle","type":"batch","entry":[', None),
            (b'{"resourceType":"Bundle","type":"batch","type":"batch"}', None),
        ]
        for body, expression in cases:
            with self.subTest(body=body):
                resp, rows = self.exchange("POST", FHIR, body)
                self.assertOperationOutcome(resp, 400,
                                            expression=[expression] if expression else None)
                self.assertEqual([(r[1], r[2], r[3]) for r in rows if r[1] == "fhir"],
                                 [("fhir", "batch", 4)])
        r = self.req("POST", FHIR, {"resourceType": "Bundle", "type": "batch"},
                     content_type="application/xml")
        self.assertOperationOutcome(r, 415)
        r = self.post_bundle({"resourceType": "Bundle", "type": "transaction"})
        self.assertEqual(r.json()["entry"], [])

    def test_entry_limit_is_413(self):
        def many(n):
            return bundle("batch", *[entry("GET", "Patient/x") for _ in range(n)])
        resp, rows = self.exchange("POST", FHIR, many(1001))
        self.assertOperationOutcome(resp, 413, code="too-long", expression=["Bundle.entry"],
                                    diagnostics_contains="more than 1000 entries")
        self.assertEqual([(r[1], r[2], r[3]) for r in rows if r[1] == "fhir"],
                         [("fhir", "batch", 4)], "a refused Bundle gets no entry records")
        r = self.post_bundle(many(1000))
        self.assertEqual(len(r.json()["entry"]), 1000)

    def test_capability_statement(self):
        cs = self.req("GET", f"{FHIR}/metadata", token=None).json()
        rest = cs["rest"][0]
        self.assertEqual({i["code"] for i in rest["interaction"]},
                         {"transaction", "batch", "history-system"})
        for r in rest["resource"]:
            codes = {i["code"] for i in r["interaction"]}
            if r["type"] == "AuditEvent":  # A read-only projection of the audit log.
                self.assertEqual(codes, {"read", "vread", "search-type"})
                self.assertEqual(r["conditionalRead"], "not-supported")
                self.assertEqual(r["versioning"], "versioned")  # Version 1 only, vread included.
                self.assertFalse(r["conditionalCreate"] or r["conditionalUpdate"])
                continue
            self.assertIn("patch", codes, r["type"])
            self.assertEqual(r["conditionalRead"], "full-support", r["type"])
        self.assertNotIn("patch are not", rest["documentation"])
        self.assertIn("JSON Patch", rest["documentation"])


class ConfiguredLimitTests(KuraTestCase):

    def test_max_bundle_entries_is_configurable(self):
        with KuraServer(env={"KURA_FHIR_MAX_BUNDLE_ENTRIES": "3"}) as srv:
            b = bundle("transaction", *[entry("POST", "Patient", patient(str(i)))
                                        for i in range(4)])
            r = srv.request("POST", FHIR, b)
            self.assertOperationOutcome(r, 413, diagnostics_contains="more than 3 entries")
            b["entry"].pop()
            r = srv.request("POST", FHIR, b)
            self.assertStatus(r, 200)
            self.assertEqual(len(r.json()["entry"]), 3)
            self.assertIn("up to 3 entries", srv.request(
                "GET", f"{FHIR}/metadata", token=None).json()["rest"][0]["documentation"])


if __name__ == "__main__":
    unittest.main()
