"""FHIR R4 REST behaviour of `kura serve` over real TLS: CRUD, versions, history, errors."""

import email.utils
import http.client
import json
import re
import time
import unittest
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone

from harness import (FHIR, INSTANT_RE, KuraServer, KuraTestCase, SharedServerTestCase,
                     observation, random_marker)

BASE_URL = "https://kura.test:9443"  # KURA_SERVER_PUBLIC_BASE_URL for these servers


def patient(family, **extra):
    r = {"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}]}
    r.update(extra)
    return r


def parse_instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class FhirTestCase(SharedServerTestCase):
    server_env = {"KURA_SERVER_PUBLIC_BASE_URL": BASE_URL, "KURA_SERVER_MAX_BODY_BYTES": "65536"}

    def req(self, *args, **kwargs):
        return self.srv.request(*args, **kwargs)

    def create(self, resource, **kwargs):
        r = self.req("POST", f"{FHIR}/{resource['resourceType']}", resource, **kwargs)
        self.assertStatus(r, 201, "create")
        return r

    def created_id(self, resp):
        loc = resp.header("Location")
        m = re.fullmatch(re.escape(BASE_URL + FHIR) + r"/(\w+)/([A-Za-z0-9\-.]{1,64})/_history/(\d+)",
                         loc or "")
        self.assertIsNotNone(m, f"Location {loc!r}")
        return m.group(2)

    def history_pages(self, path, count, max_pages=500):
        """Follows `next` links; returns the list of pages (bundles)."""
        pages = []
        url = f"{path}?_count={count}"
        while url is not None:
            r = self.req("GET", url)
            self.assertStatus(r, 200, f"history page {url}")
            b = r.json()
            self.assertEqual(b["resourceType"], "Bundle")
            self.assertEqual(b["type"], "history")
            pages.append(b)
            self.assertLessEqual(len(b.get("entry", [])), count, url)
            nxt = [l["url"] for l in b.get("link", []) if l.get("relation") == "next"]
            self.assertLessEqual(len(nxt), 1)
            if nxt:
                self.assertTrue(nxt[0].startswith(BASE_URL + FHIR + "/"), nxt[0])
                url = nxt[0][len(BASE_URL):]
            else:
                url = None
            self.assertLess(len(pages), max_pages, "history paging does not terminate")
        return pages


class CrudTests(FhirTestCase):

    def test_metadata_without_auth(self):
        r = self.req("GET", f"{FHIR}/metadata", token=None)
        self.assertStatus(r, 200)
        self.assertTrue(r.header("Content-Type").startswith("application/fhir+json"))
        cs = r.json()
        self.assertEqual(cs["resourceType"], "CapabilityStatement")
        self.assertEqual(cs["fhirVersion"], "4.0.1")
        types = {x["type"] for x in cs["rest"][0]["resource"]}
        self.assertIn("Patient", types)
        self.assertIn("Observation", types)
        self.assertEqual(cs["implementation"]["url"], BASE_URL + FHIR)

    def test_create_returns_201_location_etag_last_modified(self):
        fam = random_marker("Fam")
        before = datetime.now(timezone.utc) - timedelta(seconds=2)
        r = self.create(patient(fam, gender="female", birthDate="1970-01-02"))
        after = datetime.now(timezone.utc) + timedelta(seconds=2)
        body = r.json()
        rid = self.created_id(r)
        self.assertEqual(r.header("Location"), f"{BASE_URL}{FHIR}/Patient/{rid}/_history/1")
        self.assertEqual(body["id"], rid)
        self.assertEqual(r.header("ETag"), 'W/"1"')
        lm = email.utils.parsedate_to_datetime(r.header("Last-Modified"))
        self.assertTrue(before - timedelta(seconds=1) <= lm <= after, lm)
        self.assertEqual(body["resourceType"], "Patient")
        self.assertEqual(body["meta"]["versionId"], "1")
        self.assertRegex(body["meta"]["lastUpdated"], INSTANT_RE)
        self.assertTrue(before <= parse_instant(body["meta"]["lastUpdated"]) <= after)
        self.assertEqual(body["name"][0]["family"], fam)
        self.assertEqual(body["gender"], "female")
        self.assertEqual(body["birthDate"], "1970-01-02")
        self.assertTrue(r.header("Content-Type").startswith("application/fhir+json"))
        # Two creates never share an id.
        r2 = self.create(patient(fam))
        self.assertNotEqual(self.created_id(r2), rid)

    def test_create_ignores_client_id_and_server_owned_meta(self):
        fam = random_marker("Fam")
        r = self.create(patient(fam, id="client-chosen-id", meta={
            "versionId": "99", "lastUpdated": "2001-01-01T00:00:00Z",
            "tag": [{"system": "urn:test", "code": "keep-me"}]}))
        body = r.json()
        rid = self.created_id(r)
        self.assertNotEqual(rid, "client-chosen-id")
        self.assertEqual(body["id"], rid)
        self.assertEqual(body["meta"]["versionId"], "1")
        self.assertGreater(parse_instant(body["meta"]["lastUpdated"]).year, 2020)
        self.assertEqual(body["meta"]["tag"], [{"system": "urn:test", "code": "keep-me"}])
        g = self.req("GET", f"{FHIR}/Patient/{rid}")
        self.assertStatus(g, 200)
        self.assertEqual(g.json(), body)
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/client-chosen-id"), 404)

    def test_prefer_return_minimal(self):
        r = self.create(observation("minimal"), headers={"Prefer": "return=minimal"})
        self.assertEqual(r.body, b"")
        rid = self.created_id(r)
        self.assertEqual(r.header("ETag"), 'W/"1"')
        self.assertIsNotNone(r.header("Last-Modified"))
        g = self.req("GET", f"{FHIR}/Observation/{rid}")
        self.assertStatus(g, 200)
        self.assertEqual(g.json()["valueString"], "minimal")
        u = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("minimal2", id=rid),
                     headers={"Prefer": "return=minimal"})
        self.assertStatus(u, 200)
        self.assertEqual(u.body, b"")
        self.assertEqual(u.header("ETag"), 'W/"2"')

    def test_prefer_return_operation_outcome(self):
        r = self.create(observation("oo"), headers={"Prefer": "return=OperationOutcome"})
        oo = r.json()
        self.assertEqual(oo["resourceType"], "OperationOutcome")
        self.assertEqual(oo["issue"][0]["severity"], "information")
        rid = self.created_id(r)
        self.assertEqual(r.header("ETag"), 'W/"1"')
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{rid}"), 200)

    def test_prefer_return_representation(self):
        r = self.create(observation("repr"), headers={"Prefer": "return=representation"})
        self.assertEqual(r.json()["valueString"], "repr")
        self.assertEqual(r.json()["id"], self.created_id(r))

    def test_read(self):
        fam = random_marker("Fam")
        c = self.create(patient(fam))
        rid = self.created_id(c)
        r = self.req("GET", f"{FHIR}/Patient/{rid}")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), c.json())
        self.assertEqual(r.header("ETag"), 'W/"1"')
        self.assertEqual(r.header("Last-Modified"), c.header("Last-Modified"))
        self.assertTrue(r.header("Content-Type").startswith("application/fhir+json"))

    def test_conditional_read_with_if_none_match(self):
        rid = self.created_id(self.create(observation("etag")))
        url = f"{FHIR}/Observation/{rid}"
        for header in ('W/"1"', '"1"', '*', 'W/"7", W/"1"'):
            with self.subTest(if_none_match=header):
                r = self.req("GET", url, headers={"If-None-Match": header})
                self.assertEqual(r.status, 304)
                self.assertEqual(r.body, b"")
                self.assertEqual(r.header("ETag"), 'W/"1"')
                self.assertIsNotNone(r.header("Last-Modified"))
        for header in ('W/"2"', 'junk', ''):
            with self.subTest(if_none_match=header):
                r = self.req("GET", url, headers={"If-None-Match": header} if header else None)
                self.assertStatus(r, 200)
                self.assertEqual(r.json()["id"], rid)
        update = dict(observation("etag 2"), id=rid)
        self.assertStatus(self.req("PUT", url, update), 200)
        r = self.req("GET", url, headers={"If-None-Match": 'W/"1"'})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("ETag"), 'W/"2"')

    def test_conditional_read_with_if_modified_since(self):
        created = self.create(observation("ims"))
        rid = self.created_id(created)
        url = f"{FHIR}/Observation/{rid}"
        last_modified = self.req("GET", url).header("Last-Modified")
        when = email.utils.parsedate_to_datetime(last_modified)
        rfc850 = when.strftime("%A, %d-%b-%y %H:%M:%S GMT")
        asctime = when.strftime("%a %b %e %H:%M:%S %Y")
        for header in (last_modified, rfc850, asctime):
            with self.subTest(if_modified_since=header):
                r = self.req("GET", url, headers={"If-Modified-Since": header})
                self.assertEqual(r.status, 304)
                self.assertEqual(r.body, b"")
                self.assertEqual(r.header("ETag"), 'W/"1"')
                self.assertEqual(r.header("Last-Modified"), last_modified)
        earlier = email.utils.format_datetime(when - timedelta(seconds=1), usegmt=True)
        future = email.utils.format_datetime(when + timedelta(days=3650), usegmt=True)
        for headers in ({"If-Modified-Since": earlier},
                        {"If-Modified-Since": future},  # Later than the server's clock: invalid.
                        {"If-Modified-Since": "not a date"},
                        # If-None-Match decides alone when both are sent.
                        {"If-None-Match": 'W/"2"', "If-Modified-Since": last_modified}):
            with self.subTest(headers=headers):
                r = self.req("GET", url, headers=headers)
                self.assertStatus(r, 200)
                self.assertEqual(r.json()["id"], rid)

    def test_read_missing_is_404(self):
        r = self.req("GET", f"{FHIR}/Patient/{uuid.uuid4()}")
        self.assertOperationOutcome(r, 404, code="not-found")

    def test_update_creates_new_version_with_server_owned_meta(self):
        c = self.create(patient("One"))
        rid = self.created_id(c)
        v1_updated = c.json()["meta"]["lastUpdated"]
        u = self.req("PUT", f"{FHIR}/Patient/{rid}", patient(
            "Two", id=rid, meta={"versionId": "77", "lastUpdated": "1999-01-01T00:00:00Z"}))
        self.assertStatus(u, 200)
        body = u.json()
        self.assertEqual(body["meta"]["versionId"], "2")
        self.assertNotEqual(body["meta"]["lastUpdated"], "1999-01-01T00:00:00Z")
        self.assertGreaterEqual(parse_instant(body["meta"]["lastUpdated"]), parse_instant(v1_updated))
        self.assertEqual(u.header("ETag"), 'W/"2"')
        self.assertEqual(u.header("Location"), f"{BASE_URL}{FHIR}/Patient/{rid}/_history/2")
        self.assertIsNotNone(u.header("Last-Modified"))
        g = self.req("GET", f"{FHIR}/Patient/{rid}")
        self.assertStatus(g, 200)
        self.assertEqual(g.json(), body)
        self.assertEqual(g.json()["name"][0]["family"], "Two")
        self.assertEqual(g.header("ETag"), 'W/"2"')

    def test_vread_every_version(self):
        c = self.create(observation("v1"))
        rid = self.created_id(c)
        bodies = {1: c.json()}
        for v in (2, 3):
            u = self.req("PUT", f"{FHIR}/Observation/{rid}", observation(f"v{v}", id=rid))
            self.assertStatus(u, 200)
            bodies[v] = u.json()
        for v, expected in bodies.items():
            r = self.req("GET", f"{FHIR}/Observation/{rid}/_history/{v}")
            self.assertStatus(r, 200, f"vread {v}")
            self.assertEqual(r.json(), expected)
            self.assertEqual(r.json()["valueString"], f"v{v}")
            self.assertEqual(r.json()["meta"]["versionId"], str(v))
            self.assertEqual(r.header("ETag"), f'W/"{v}"')
        self.assertOperationOutcome(self.req("GET", f"{FHIR}/Observation/{rid}/_history/4"), 404,
                                    code="not-found")
        for bad in ("0", "-1", "abc", "1.5"):
            self.assertOperationOutcome(self.req("GET", f"{FHIR}/Observation/{rid}/_history/{bad}"),
                                        400, code="invalid")

    def test_update_as_create_with_client_id(self):
        rid = "client-" + uuid.uuid4().hex[:20]
        u = self.req("PUT", f"{FHIR}/Patient/{rid}", patient("Created", id=rid))
        self.assertStatus(u, 201)
        self.assertEqual(u.header("Location"), f"{BASE_URL}{FHIR}/Patient/{rid}/_history/1")
        self.assertEqual(u.header("ETag"), 'W/"1"')
        self.assertEqual(u.json()["id"], rid)
        self.assertEqual(u.json()["meta"]["versionId"], "1")
        g = self.req("GET", f"{FHIR}/Patient/{rid}")
        self.assertStatus(g, 200)
        self.assertEqual(g.json()["name"][0]["family"], "Created")
        u2 = self.req("PUT", f"{FHIR}/Patient/{rid}", patient("Again", id=rid))
        self.assertStatus(u2, 200)
        self.assertEqual(u2.json()["meta"]["versionId"], "2")

    def test_if_match(self):
        c = self.create(observation("a"))
        rid = self.created_id(c)
        u = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("b", id=rid),
                     headers={"If-Match": 'W/"1"'})
        self.assertStatus(u, 200)
        self.assertEqual(u.header("ETag"), 'W/"2"')
        stale = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("c", id=rid),
                         headers={"If-Match": 'W/"1"'})
        self.assertOperationOutcome(stale, 412)
        g = self.req("GET", f"{FHIR}/Observation/{rid}")
        self.assertEqual(g.json()["valueString"], "b", "a failed If-Match must not write")
        self.assertEqual(g.header("ETag"), 'W/"2"')
        bad = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("d", id=rid),
                       headers={"If-Match": "not-an-etag"})
        self.assertOperationOutcome(bad, 400, code="invalid")
        # If-Match on a resource that does not exist yet cannot match.
        new_id = "im-" + uuid.uuid4().hex[:16]
        nm = self.req("PUT", f"{FHIR}/Observation/{new_id}", observation("e", id=new_id),
                      headers={"If-Match": 'W/"1"'})
        self.assertOperationOutcome(nm, 412)
        self.assertStatus(self.req("GET", f"{FHIR}/Observation/{new_id}"), 404)

    def test_delete_then_read_is_410_and_old_versions_stay(self):
        c = self.create(observation("to-delete"))
        rid = self.created_id(c)
        d = self.req("DELETE", f"{FHIR}/Observation/{rid}")
        self.assertStatus(d, 204)
        self.assertEqual(d.body, b"")
        g = self.req("GET", f"{FHIR}/Observation/{rid}")
        self.assertOperationOutcome(g, 410, code="deleted")
        self.assertNotIn("to-delete", g.text)
        # Deletion is idempotent.
        self.assertStatus(self.req("DELETE", f"{FHIR}/Observation/{rid}"), 204)
        # The old version is still readable.
        v1 = self.req("GET", f"{FHIR}/Observation/{rid}/_history/1")
        self.assertStatus(v1, 200)
        self.assertEqual(v1.json()["valueString"], "to-delete")
        # The delete itself is version 2 and reads as gone.
        self.assertOperationOutcome(self.req("GET", f"{FHIR}/Observation/{rid}/_history/2"), 410)
        # A later update resurrects it as version 3.
        u = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("back", id=rid))
        self.assertStatus(u, 201)
        self.assertEqual(u.json()["meta"]["versionId"], "3")
        self.assertEqual(self.req("GET", f"{FHIR}/Observation/{rid}").json()["valueString"], "back")

    def test_delete_missing_is_404(self):
        r = self.req("DELETE", f"{FHIR}/Observation/{uuid.uuid4()}")
        self.assertOperationOutcome(r, 404, code="not-found")

    def test_unicode_roundtrip(self):
        text = "t\u00e9st \U0001F600 \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627 \u00df\u2603"
        c = self.create(observation(text))
        rid = self.created_id(c)
        g = self.req("GET", f"{FHIR}/Observation/{rid}")
        self.assertStatus(g, 200)
        self.assertEqual(g.json()["valueString"], text)
        self.assertIn(text.encode("utf-8"), g.body, "non-ASCII text should be sent as UTF-8")

    def test_decimal_precision_preserved(self):
        # FHIR decimals carry their precision in the text: 98.60 must not come back as 98.6.
        values = ["98.60", "0.1000", "1.2345678901234567890", "100.00", "12345678901234567890.5",
                  "-0.0", "1E2"]
        components = ",".join(
            '{"code":{"text":"c%d"},"valueQuantity":{"value":%s,"unit":"x"}}' % (i, v)
            for i, v in enumerate(values))
        body = ('{"resourceType":"Observation","status":"final","code":{"text":"precision"},'
                '"component":[%s]}' % components)
        c = self.req("POST", f"{FHIR}/Observation", body.encode())
        self.assertStatus(c, 201)
        rid = self.created_id(c)
        for resp in (c, self.req("GET", f"{FHIR}/Observation/{rid}"),
                     self.req("GET", f"{FHIR}/Observation/{rid}/_history/1")):
            doc = json.loads(resp.body.decode("utf-8"), parse_float=str, parse_int=str)
            got = [comp["valueQuantity"]["value"] for comp in doc["component"]]
            self.assertEqual(got, values)

    def test_keep_alive_connection_reused(self):
        conn = self.srv.connection()
        try:
            for i in range(5):
                r = self.srv.request("GET", f"{FHIR}/metadata", conn=conn)
                self.assertStatus(r, 200)
                self.assertFalse(r.will_close, "server closed a keep-alive connection")
            sock = conn.sock
            r = self.srv.request("POST", f"{FHIR}/Observation", observation("ka"), conn=conn)
            self.assertStatus(r, 201)
            self.assertIs(conn.sock, sock, "the connection was not reused")
        finally:
            conn.close()

    def test_large_responses_on_a_kept_connection(self):
        # Above 16 KiB the server writes header and body as one buffer: each answer must still
        # be whole, with every header, and the connection must stay usable after it.
        for size in (15_000, 17_000, 60_000):  # The module allows bodies up to 64 KiB.
            text = "x" * size
            c = self.create(observation(text))
            rid = self.created_id(c)
            conn = self.srv.connection()
            try:
                for _ in range(3):
                    g = self.srv.request("GET", f"{FHIR}/Observation/{rid}", conn=conn)
                    self.assertStatus(g, 200)
                    self.assertEqual(g.json()["valueString"], text)
                    self.assertEqual(int(g.header("Content-Length")), len(g.body))
                    self.assertEqual(g.header("ETag"), 'W/"1"')
                    self.assertEqual(g.header("X-Content-Type-Options"), "nosniff")
                    self.assertIsNotNone(g.header("X-Request-Id"))
                    self.assertFalse(g.will_close)
                m = self.srv.request("GET", f"{FHIR}/metadata", conn=conn)
                self.assertStatus(m, 200)
            finally:
                conn.close()


class HistoryTests(FhirTestCase):
    """Each test uses its own server so that system/type history is fully known."""

    @classmethod
    def setUpClass(cls):
        pass  # No shared server.

    def setUp(self):
        self.srv = KuraServer(env=self.server_env)
        self.addCleanup(self.srv.close)

    def write_mix(self):
        """Creates, updates and deletes across types; returns {(type, id, version): deleted}."""
        expected = {}
        ids = []
        for i in range(9):
            t = "Patient" if i % 3 == 0 else "Observation"
            res = patient(f"P{i}") if t == "Patient" else observation(f"o{i}")
            c = self.create(res)
            rid = self.created_id(c)
            expected[(t, rid, 1)] = False
            ids.append((t, rid))
        for n, (t, rid) in enumerate(ids):
            for v in range(2, 2 + n % 4):
                res = patient(f"P{n}-{v}", id=rid) if t == "Patient" else observation(f"o{n}-{v}", id=rid)
                u = self.req("PUT", f"{FHIR}/{t}/{rid}", res)
                self.assertStatus(u, 200)
                expected[(t, rid, v)] = False
        for t, rid in ids[::4]:
            cur = int(self.req("GET", f"{FHIR}/{t}/{rid}").header("ETag")[3:-1])
            self.assertStatus(self.req("DELETE", f"{FHIR}/{t}/{rid}"), 204)
            expected[(t, rid, cur + 1)] = True
        return expected

    def entries_key(self, pages):
        got = []
        for b in pages:
            for e in b.get("entry", []):
                m = re.fullmatch(re.escape(BASE_URL + FHIR) + r"/(\w+)/([^/]+)", e["fullUrl"])
                self.assertIsNotNone(m, e["fullUrl"])
                t, rid = m.group(1), m.group(2)
                etag = e["response"]["etag"]
                v = int(re.fullmatch(r'W/"(\d+)"', etag).group(1))
                deleted = e["request"]["method"] == "DELETE"
                if deleted:
                    self.assertNotIn("resource", e)
                    self.assertEqual(e["request"]["url"], f"{t}/{rid}")
                else:
                    self.assertEqual(e["resource"]["id"], rid)
                    self.assertEqual(e["resource"]["resourceType"], t)
                    self.assertEqual(e["resource"]["meta"]["versionId"], str(v))
                    self.assertEqual(e["request"]["method"], "POST" if v == 1 else "PUT")
                got.append(((t, rid, v), deleted))
        return got

    def assert_exactly_once(self, got, expected):
        keys = [k for k, _ in got]
        dupes = {k for k in keys if keys.count(k) > 1}
        self.assertEqual(dupes, set(), "versions repeated across history pages")
        self.assertEqual(set(keys), set(expected), "history does not cover every version")
        for k, deleted in got:
            self.assertEqual(deleted, expected[k], f"delete flag of {k}")

    def test_system_history_paging_covers_every_version_once(self):
        expected = self.write_mix()
        pages = self.history_pages(f"{FHIR}/_history", 7)
        self.assertGreater(len(pages), 2)
        got = self.entries_key(pages)
        self.assert_exactly_once(got, expected)
        # Newest first.
        stamps = [parse_instant(e["response"]["lastModified"]) for b in pages for e in b["entry"]]
        self.assertEqual(stamps, sorted(stamps, reverse=True))

    def test_type_history_paging(self):
        expected = self.write_mix()
        for t in ("Patient", "Observation"):
            pages = self.history_pages(f"{FHIR}/{t}/_history", 4)
            got = self.entries_key(pages)
            self.assert_exactly_once(got, {k: v for k, v in expected.items() if k[0] == t})
        empty = self.req("GET", f"{FHIR}/Condition/_history")
        self.assertStatus(empty, 200)
        self.assertEqual(empty.json().get("entry", []), [])

    def test_instance_history_paging_and_delete_entry(self):
        c = self.create(observation("h1"))
        rid = self.created_id(c)
        for v in range(2, 13):
            self.assertStatus(self.req("PUT", f"{FHIR}/Observation/{rid}",
                                       observation(f"h{v}", id=rid)), 200)
        self.assertStatus(self.req("DELETE", f"{FHIR}/Observation/{rid}"), 204)
        pages = self.history_pages(f"{FHIR}/Observation/{rid}/_history", 5)
        self.assertEqual([len(p["entry"]) for p in pages], [5, 5, 3])
        entries = [e for p in pages for e in p["entry"]]
        versions = [int(e["response"]["etag"][3:-1]) for e in entries]
        self.assertEqual(versions, list(range(13, 0, -1)))
        first = entries[0]
        self.assertEqual(first["request"]["method"], "DELETE")
        self.assertEqual(first["request"]["url"], f"Observation/{rid}")
        self.assertNotIn("resource", first)
        for e in entries[1:]:
            v = int(e["response"]["etag"][3:-1])
            self.assertEqual(e["resource"]["valueString"], f"h{v}")
        self.assertEqual(entries[-1]["request"]["method"], "POST")
        self.assertTrue(entries[-1]["response"]["status"].startswith("201"))

    def test_history_paging_stable_under_concurrent_writes(self):
        expected = self.write_mix()
        first = self.req("GET", f"{FHIR}/_history?_count=5")
        self.assertStatus(first, 200)
        # New writes after the first page must not shift later pages.
        for i in range(6):
            self.create(observation(f"late{i}"))
        pages = [first.json()]
        nxt = [l["url"] for l in first.json()["link"] if l["relation"] == "next"]
        while nxt:
            r = self.req("GET", nxt[0][len(BASE_URL):])
            self.assertStatus(r, 200)
            pages.append(r.json())
            nxt = [l["url"] for l in r.json()["link"] if l["relation"] == "next"]
            self.assertLess(len(pages), 100)
        self.assert_exactly_once(self.entries_key(pages), expected)

    def test_history_since(self):
        c = self.create(observation("old"))
        rid = self.created_id(c)
        old_updated = parse_instant(c.json()["meta"]["lastUpdated"])
        # Wait (bounded) until the clock has passed the first write, then write again.
        deadline = time.monotonic() + 5
        while datetime.now(timezone.utc) <= old_updated + timedelta(milliseconds=20):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        u = self.req("PUT", f"{FHIR}/Observation/{rid}", observation("new", id=rid))
        self.assertStatus(u, 200)
        since = u.json()["meta"]["lastUpdated"]
        for path in (f"{FHIR}/_history", f"{FHIR}/Observation/_history",
                     f"{FHIR}/Observation/{rid}/_history"):
            r = self.req("GET", f"{path}?_since={urllib.parse.quote(since)}")
            self.assertStatus(r, 200, path)
            versions = [e["resource"]["meta"]["versionId"] for e in r.json().get("entry", [])]
            self.assertEqual(versions, ["2"], path)
            # The self link keeps _since.
            selfs = [l["url"] for l in r.json()["link"] if l["relation"] == "self"]
            self.assertEqual(len(selfs), 1)
            self.assertIn("_since=", selfs[0])
        # An offset form of the same instant selects the same versions.
        t = parse_instant(since).astimezone(timezone(timedelta(hours=2)))
        offset_form = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+02:00"
        r = self.req("GET", f"{FHIR}/Observation/{rid}/_history?_since={urllib.parse.quote(offset_form)}")
        self.assertStatus(r, 200)
        self.assertEqual([e["resource"]["meta"]["versionId"] for e in r.json()["entry"]], ["2"])
        future = self.req("GET", f"{FHIR}/_history?_since=2999-01-01T00:00:00Z")
        self.assertStatus(future, 200)
        self.assertEqual(future.json().get("entry", []), [])

    def test_history_bad_parameters(self):
        for q in ("_count=0", "_count=-1", "_count=abc", "_since=yesterday",
                  "_since=2024-13-01T00:00:00Z", "_since=2024-01-01T00:00:00", "_page=abc",
                  "_page=0"):
            r = self.req("GET", f"{FHIR}/_history?{q}")
            self.assertOperationOutcome(r, 400, code="invalid")
        r = self.req("GET", f"{FHIR}/Observation/bad_id!/_history")
        self.assertOperationOutcome(r, 400)


class UnknownTypeTests(FhirTestCase):

    def test_unknown_resource_type_is_404(self):
        cases = [("GET", f"{FHIR}/Foo/1", None), ("POST", f"{FHIR}/Foo", {"resourceType": "Foo"}),
                 ("PUT", f"{FHIR}/Foo/1", {"resourceType": "Foo", "id": "1"}),
                 ("DELETE", f"{FHIR}/Foo/1", None), ("GET", f"{FHIR}/Foo/_history", None),
                 ("GET", f"{FHIR}/Foo/1/_history", None), ("GET", f"{FHIR}/Foo/1/_history/1", None),
                 ("GET", f"{FHIR}/patient/1", None)]
        for method, path, body in cases:
            with self.subTest(method=method, path=path):
                r = self.req(method, path, body)
                issue = self.assertOperationOutcome(r, 404, code="not-supported")
                self.assertIn("FHIR R4 resource type", issue["diagnostics"])

    def test_unknown_endpoint_is_404(self):
        r = self.req("GET", "/no/such/endpoint")
        self.assertOperationOutcome(r, 404, code="not-found")


class BadRequestTests(FhirTestCase):
    """Every 400 case with the OperationOutcome issue checked."""

    def post_raw(self, body, type_="Patient", **kwargs):
        return self.req("POST", f"{FHIR}/{type_}", body, **kwargs)

    def test_malformed_json(self):
        for body in (b'{"resourceType": "Patient",', b'{"resourceType": "Patient"} trailing',
                     b"{'resourceType': 'Patient'}", b'{"resourceType": "Patient", }', b"nul"):
            with self.subTest(body=body):
                r = self.post_raw(body)
                self.assertOperationOutcome(r, 400, code="structure",
                                            diagnostics_contains="malformed JSON")

    def test_empty_body(self):
        r = self.post_raw(b"")
        self.assertOperationOutcome(r, 400, code="required", diagnostics="the request body is empty")

    def test_invalid_utf8(self):
        for body in (b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}',
                     b'{"resourceType":"Patient","name":[{"family":"\xc3\x28"}]}',
                     b'{"resourceType":"Patient","name":[{"family":"\xed\xa0\x80"}]}'):
            with self.subTest(body=body):
                r = self.post_raw(body)
                self.assertOperationOutcome(r, 400, code="structure",
                                            diagnostics_contains="not valid UTF-8")

    def test_not_an_object(self):
        for body in (b"[]", b'[{"resourceType":"Patient"}]', b'"Patient"', b"42", b"null", b"true"):
            with self.subTest(body=body):
                r = self.post_raw(body)
                self.assertOperationOutcome(r, 400, code="structure",
                                            diagnostics="a FHIR resource must be a JSON object")

    def test_depth_limit(self):
        def nested(depth):  # containers in total, the root object included
            inner = "1"
            for _ in range(depth - 1):
                inner = "[" + inner + "]"
            return ('{"resourceType":"Patient","extension":' + inner + "}").encode()

        # 64 levels of valid FHIR: 31 nested extensions (an array and an object each) inside the
        # root, the innermost with a valueCodeableConcept object.
        valid = '{"url":"u","valueCodeableConcept":{"text":"t"}}'
        for _ in range(31 - 1):
            valid = '{"url":"u","extension":[' + valid + "]}"
        ok = self.post_raw(('{"resourceType":"Patient","extension":[' + valid + "]}").encode())
        self.assertStatus(ok, 201, "64 levels are within the default limit")
        for depth in (65, 200, 5000):
            with self.subTest(depth=depth):
                r = self.post_raw(nested(depth))
                self.assertOperationOutcome(r, 400, code="structure",
                                            diagnostics="JSON nesting is deeper than the limit")
        objs = '{"a":' * 70 + "1" + "}" * 70
        r = self.post_raw(('{"resourceType":"Patient","extension":' + objs + "}").encode())
        self.assertOperationOutcome(r, 400, diagnostics="JSON nesting is deeper than the limit")

    def test_duplicate_keys(self):
        r = self.post_raw(b'{"resourceType":"Patient","gender":"male","gender":"female"}')
        self.assertOperationOutcome(r, 400, code="structure",
                                    diagnostics='duplicate JSON key "gender"')
        r = self.post_raw(b'{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}')
        self.assertOperationOutcome(r, 400, code="structure",
                                    diagnostics='duplicate JSON key "family"')
        r = self.post_raw(b'{"resourceType":"Patient","resourceType":"Patient"}')
        self.assertOperationOutcome(r, 400, diagnostics='duplicate JSON key "resourceType"')

    def test_resource_type_problems(self):
        r = self.post_raw({"name": [{"family": "x"}]})
        self.assertOperationOutcome(r, 400, code="required", diagnostics="resourceType is missing",
                                    expression_in=[["Patient"], ["resourceType"], ["Patient.resourceType"]])
        r = self.post_raw({"resourceType": 7})
        self.assertOperationOutcome(r, 400, code="structure",
                                    diagnostics="resourceType must be a string",
                                    expression_in=[["Patient"], ["resourceType"], ["Patient.resourceType"]])
        r = self.post_raw({"resourceType": "Foo"})
        self.assertOperationOutcome(r, 400, code="value",
                                    diagnostics="resourceType is not a FHIR R4 resource type",
                                    expression=["resourceType"])
        r = self.post_raw(observation("x"), type_="Patient")
        self.assertOperationOutcome(
            r, 400, code="invalid",
            diagnostics="resourceType Observation does not match the URL's type Patient",
            expression_in=[["Observation"], ["resourceType"], ["Observation.resourceType"]])
        r = self.req("PUT", f"{FHIR}/Patient/abc", observation("x", id="abc"))
        self.assertOperationOutcome(r, 400, code="invalid", diagnostics_contains="does not match")
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/abc"), 404)

    def test_id_problems(self):
        r = self.post_raw(patient("x", id=12))
        self.assertOperationOutcome(r, 400, code="structure", diagnostics="id must be a string",
                                    expression=["Patient.id"])
        r = self.req("PUT", f"{FHIR}/Patient/abc", patient("x"))
        self.assertOperationOutcome(r, 400, code="required",
                                    diagnostics="the resource must have an id equal to the URL's id",
                                    expression=["Patient.id"])
        r = self.req("PUT", f"{FHIR}/Patient/abc", patient("x", id="abd"))
        self.assertOperationOutcome(r, 400, code="invalid",
                                    diagnostics="the resource id does not match the URL's id",
                                    expression=["Patient.id"])
        for bad in ("has space", "x" * 65, "under_score", 5, ""):
            with self.subTest(body_id=bad):
                r = self.req("PUT", f"{FHIR}/Patient/abc", patient("x", id=bad))
                self.assertOperationOutcome(r, 400, code="value", expression=["Patient.id"],
                                            diagnostics="id must match [A-Za-z0-9\\-\\.]{1,64}")
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/abc"), 404)

    def test_url_id_problems(self):
        for bad in ("under_score", "x" * 65, "a%20b", "%C3%A9"):
            with self.subTest(url_id=bad):
                r = self.req("PUT", f"{FHIR}/Patient/{bad}", patient("x", id="abc"))
                self.assertOperationOutcome(r, 400, code="value")
                r = self.req("GET", f"{FHIR}/Patient/{bad}")
                self.assertOperationOutcome(r, 400, code="value")
                r = self.req("DELETE", f"{FHIR}/Patient/{bad}")
                self.assertOperationOutcome(r, 400, code="value")

    def test_meta_not_object(self):
        r = self.post_raw(patient("x", meta="nope"))
        self.assertOperationOutcome(r, 400, code="structure", diagnostics="meta must be an object",
                                    expression=["Patient.meta"])
        r = self.post_raw(patient("x", meta=[1]))
        self.assertOperationOutcome(r, 400, code="structure", expression=["Patient.meta"])

    def test_bad_input_writes_nothing(self):
        before = self.req("GET", f"{FHIR}/_history?_count=1000")
        self.assertStatus(before, 200)
        n = len(before.json().get("entry", []))
        for body in (b"{", b"[]", b'{"resourceType":"Observation"}', b'{"a":1,"a":2}'):
            self.assertStatus(self.post_raw(body), 400)
        after = self.req("GET", f"{FHIR}/_history?_count=1000")
        self.assertEqual(len(after.json().get("entry", [])), n)

    def test_connection_survives_400(self):
        conn = self.srv.connection()
        try:
            r = self.srv.request("POST", f"{FHIR}/Patient", b"{", conn=conn)
            self.assertStatus(r, 400)
            r = self.srv.request("GET", f"{FHIR}/metadata", conn=conn)
            self.assertStatus(r, 200)
        finally:
            conn.close()


class MediaTypeTests(FhirTestCase):

    def test_xml_content_type_is_415(self):
        for ctype in ("application/fhir+xml", "application/xml", "text/xml"):
            with self.subTest(ctype=ctype):
                r = self.req("POST", f"{FHIR}/Patient", b"<Patient xmlns='http://hl7.org/fhir'/>",
                             content_type=ctype)
                self.assertOperationOutcome(r, 415, code="not-supported")
                r = self.req("PUT", f"{FHIR}/Patient/x1", b"<Patient/>", content_type=ctype)
                self.assertOperationOutcome(r, 415, code="not-supported")

    def test_other_or_missing_content_type_is_415(self):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            with self.subTest(ctype=ctype):
                r = self.req("POST", f"{FHIR}/Patient", patient("x"), content_type=ctype)
                self.assertOperationOutcome(r, 415, code="not-supported")

    def test_json_content_types_accepted(self):
        for ctype in ("application/fhir+json", "application/json",
                      "application/fhir+json; charset=utf-8", "application/json;charset=UTF-8"):
            with self.subTest(ctype=ctype):
                r = self.req("POST", f"{FHIR}/Patient", patient("x"), content_type=ctype)
                self.assertStatus(r, 201)

    def test_accept_xml_only_is_415(self):
        c = self.create(patient("acc"))
        rid = self.created_id(c)
        for accept in ("application/fhir+xml", "application/xml", "text/xml"):
            with self.subTest(accept=accept):
                r = self.req("GET", f"{FHIR}/Patient/{rid}", headers={"Accept": accept})
                self.assertOperationOutcome(r, 415, code="not-supported")
                r = self.req("GET", f"{FHIR}/metadata", headers={"Accept": accept}, token=None)
                self.assertOperationOutcome(r, 415, code="not-supported")
        for accept in ("application/fhir+json", "application/json", "*/*",
                       "application/fhir+xml, application/fhir+json;q=0.9"):
            with self.subTest(accept=accept):
                self.assertStatus(self.req("GET", f"{FHIR}/Patient/{rid}", headers={"Accept": accept}), 200)

    def test_format_xml_is_415(self):
        c = self.create(patient("fmt"))
        rid = self.created_id(c)
        for fmt in ("xml", "application/fhir+xml", "text/xml", "application%2Ffhir%2Bxml"):
            with self.subTest(fmt=fmt):
                r = self.req("GET", f"{FHIR}/Patient/{rid}?_format={fmt}")
                self.assertOperationOutcome(r, 415, code="not-supported")
                r = self.req("GET", f"{FHIR}/metadata?_format={fmt}", token=None)
                self.assertOperationOutcome(r, 415, code="not-supported")
                r = self.req("POST", f"{FHIR}/Patient?_format={fmt}", patient("y"))
                self.assertOperationOutcome(r, 415, code="not-supported")
        for fmt in ("json", "application%2Ffhir%2Bjson", "application%2Fjson"):
            with self.subTest(fmt=fmt):
                self.assertStatus(self.req("GET", f"{FHIR}/Patient/{rid}?_format={fmt}"), 200)


class AuthTests(FhirTestCase):

    def assert401(self, r, invalid_token):
        self.assertOperationOutcome(r, 401, code="login")
        www = r.header_all("WWW-Authenticate")
        self.assertEqual(len(www), 1, r.headers)
        self.assertTrue(www[0].startswith("Bearer"), www)
        if invalid_token:
            self.assertIn('error="invalid_token"', www[0])
        else:
            self.assertNotIn("error=", www[0])

    def routes(self):
        rid = "auth-" + uuid.uuid4().hex[:12]
        return [("GET", f"{FHIR}/Patient/{rid}", None), ("POST", f"{FHIR}/Patient", patient("a")),
                ("PUT", f"{FHIR}/Patient/{rid}", patient("a", id=rid)),
                ("DELETE", f"{FHIR}/Patient/{rid}", None), ("GET", f"{FHIR}/_history", None),
                ("GET", f"{FHIR}/Patient/_history", None),
                ("GET", f"{FHIR}/Patient/{rid}/_history", None),
                ("GET", f"{FHIR}/Patient/{rid}/_history/1", None)], rid

    def test_no_authorization_header(self):
        routes, rid = self.routes()
        for method, path, body in routes:
            with self.subTest(method=method, path=path):
                self.assert401(self.req(method, path, body, token=None), invalid_token=False)
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/{rid}"), 404, "an unauthenticated PUT wrote")

    def test_wrong_token(self):
        routes, rid = self.routes()
        wrong = "kura_" + "A" * 43
        cases = {"unknown": wrong, "truncated": self.srv.token[:-1],
                 "extended": self.srv.token + "x", "oversized": "x" * 600}
        for kind, tok in cases.items():  # Labelled by kind: a failure must not print the token.
            for method, path, body in routes:
                with self.subTest(token=kind, method=method, path=path):
                    self.assert401(self.req(method, path, body, token=tok), invalid_token=True)
        self.assertStatus(self.req("GET", f"{FHIR}/Patient/{rid}"), 404)

    def test_malformed_authorization_header(self):
        values = (f"Basic {self.srv.token}", "Bearer", "Bearer ", f"Token {self.srv.token}",
                  self.srv.token, f"Bearer{self.srv.token}",
                  "Bearer \u00e9t\u00e9".encode("utf-8").decode("latin-1"))
        for case, value in enumerate(values):  # By index: a failure must not print the token.
            with self.subTest(case=case):
                r = self.req("GET", f"{FHIR}/_history", token=None, headers={"Authorization": value})
                self.assert401(r, invalid_token=True)

    def test_public_endpoints(self):
        for path in (f"{FHIR}/metadata", "/", "/healthz"):
            with self.subTest(path=path):
                self.assertStatus(self.req("GET", path, token=None), 200)

    def test_valid_token_case_insensitive_scheme(self):
        r = self.req("GET", f"{FHIR}/_history?_count=1", token=None,
                     headers={"Authorization": f"bearer {self.srv.token}"})
        self.assertStatus(r, 200)


class MethodNotAllowedTests(FhirTestCase):

    def test_405_with_allow(self):
        cases = [("DELETE", f"{FHIR}/metadata", {"GET"}), ("POST", f"{FHIR}/metadata", {"GET"}),
                 # PUT, PATCH and DELETE on a type are conditional update, patch and delete.
                 ("PATCH", f"{FHIR}/Patient/x/$everything", {"GET"}),
                 ("POST", f"{FHIR}/Patient/x/_history", {"GET"}),
                 ("DELETE", f"{FHIR}/Patient/x/_history/1", {"GET"}),
                 ("PUT", f"{FHIR}/_history", {"GET"}),
                 ("POST", "/healthz", {"GET"})]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                r = self.req(method, path,
                             patient("x") if method in ("POST", "PUT", "PATCH") else None)
                self.assertOperationOutcome(r, 405)
                allow = {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}
                self.assertEqual(allow, allowed)


class BodyLimitTests(FhirTestCase):
    """KURA_SERVER_MAX_BODY_BYTES=65536 for this module's servers."""

    LIMIT = 65536

    def test_content_length_over_limit_is_413(self):
        head = (f"POST {FHIR}/Patient HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Bearer {self.srv.token}\r\n"
                f"Content-Type: application/fhir+json\r\nContent-Length: {self.LIMIT + 1}\r\n\r\n")
        r = self.srv.raw_request(head.encode())
        self.assertIsNotNone(r, "no response to an oversized Content-Length")
        self.assertOperationOutcome(r, 413, code="too-long")

    def test_body_over_limit_is_413(self):
        """An ordinary client that sends the whole oversized body must read a 413, not a reset.

        Repeated because a server that closes without draining the unread body (no lingering
        close) loses the 413 to a TCP reset only some of the time.
        """
        body = json.dumps(patient("x" * (self.LIMIT * 16))).encode()
        outcomes = []
        for _ in range(20):
            try:
                r = self.req("POST", f"{FHIR}/Patient", body)
                outcomes.append(r.status)
                self.assertOperationOutcome(r, 413, code="too-long")
            except (OSError, http.client.HTTPException) as e:
                outcomes.append(type(e).__name__)
        self.assertEqual(outcomes, [413] * 20,
                         "clients sending an oversized body lost the 413 to a connection reset")

    def test_chunked_body_over_limit_is_413(self):
        chunk = b"x" * 8192
        head = (f"POST {FHIR}/Patient HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Bearer {self.srv.token}\r\nContent-Type: application/fhir+json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        data = head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
        r = self.srv.raw_request(data)
        self.assertIsNotNone(r)
        self.assertOperationOutcome(r, 413, code="too-long")

    def test_body_at_limit_is_accepted(self):
        base = json.dumps(patient("")).encode()
        pad = self.LIMIT - len(base)
        body = json.dumps(patient("y" * pad)).encode()
        self.assertEqual(len(body), self.LIMIT)
        r = self.req("POST", f"{FHIR}/Patient", body, headers={"Prefer": "return=minimal"})
        self.assertStatus(r, 201)

    def test_server_alive_after_413(self):
        self.test_content_length_over_limit_is_413()
        self.assertStatus(self.req("GET", f"{FHIR}/metadata"), 200)


if __name__ == "__main__":
    unittest.main()
