"""Logs: JSON lines only, request fields, request id correlation, no PHI/secrets."""

import signal
import unittest
import urllib.parse

from harness import FHIR, UTC_TIME_RE, KuraServer, KuraTestCase, SharedServerTestCase, random_marker

REQUEST_FIELDS = ("time", "level", "event", "request_id", "method", "route", "status",
                  "duration_ms", "remote")
KNOWN_ROUTES = {"/", "/healthz", "/fhir/R4/metadata", "/fhir/R4/_history", "/fhir/R4",
                "/fhir/R4/{type}", "/fhir/R4/{type}/_history", "/fhir/R4/{type}/{id}",
                "/fhir/R4/{type}/{id}/_history", "/fhir/R4/{type}/{id}/_history/{vid}", "(none)"}


class LogTests(SharedServerTestCase):

    def test_request_line_fields_and_request_id(self):
        cases = [("GET", f"{FHIR}/metadata", None, "/fhir/R4/metadata", 200),
                 ("POST", f"{FHIR}/Patient", {"resourceType": "Patient"}, "/fhir/R4/{type}", 201),
                 ("GET", f"{FHIR}/Patient/nope", None, "/fhir/R4/{type}/{id}", 404),
                 ("GET", f"{FHIR}/Patient/nope/_history/1", None,
                  "/fhir/R4/{type}/{id}/_history/{vid}", 404),
                 ("GET", f"{FHIR}/Patient/_history", None, "/fhir/R4/{type}/_history", 200),
                 ("DELETE", f"{FHIR}/metadata", None, "/fhir/R4/metadata", 405),
                 ("GET", "/not/a/route", None, "(none)", 404)]
        seen_ids = set()
        for method, path, body, route, status in cases:
            with self.subTest(method=method, path=path):
                r = self.srv.request(method, path, body)
                self.assertStatus(r, status)
                rid = r.header("X-Request-Id")
                self.assertRegex(rid or "", r"^[0-9a-f]{16,}$")
                self.assertNotIn(rid, seen_ids, "request ids repeat")
                seen_ids.add(rid)
                rec = self.srv.request_log(rid)
                self.assertIsNotNone(rec, f"no request log line with request_id {rid}")
                for f in REQUEST_FIELDS:
                    self.assertIn(f, rec, rec)
                self.assertRegex(rec["time"], UTC_TIME_RE)
                self.assertEqual(rec["level"], "info")
                self.assertEqual(rec["method"], method)
                self.assertEqual(rec["route"], route)
                self.assertEqual(rec["status"], status)
                self.assertIsInstance(rec["duration_ms"], (int, float))
                self.assertGreaterEqual(rec["duration_ms"], 0)
                self.assertLess(rec["duration_ms"], 60000)
                self.assertEqual(rec["remote"], "127.0.0.1")

    def test_unauthenticated_request_logged_with_401(self):
        r = self.srv.request("GET", f"{FHIR}/_history", token=None)
        self.assertStatus(r, 401)
        rec = self.srv.request_log(r.header("X-Request-Id"))
        self.assertIsNotNone(rec)
        self.assertEqual(rec["status"], 401)
        self.assertEqual(rec["route"], "/fhir/R4/_history")

    def test_every_line_is_json_with_time_level_event(self):
        self.srv.request("GET", f"{FHIR}/metadata")
        for rec in self.srv.log_records():
            self.assertRegex(rec.get("time", ""), UTC_TIME_RE, rec)
            self.assertIn(rec.get("level"), ("debug", "info", "warn", "error"), rec)
            self.assertIsInstance(rec.get("event"), str, rec)


class NoSecretsInLogsTests(KuraTestCase):
    """Markers in every part of a request never reach stderr (own server, checked after exit)."""

    def test_markers_never_logged(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        m = {k: random_marker(k) for k in ("body", "query", "path", "header", "type", "badjson",
                                              "dupkey", "ref", "since", "endpoint", "token")}
        wrong_token = "kura_" + m["token"]
        req = srv.request
        # Body (created, updated, rejected).
        c = req("POST", f"{FHIR}/Patient", {"resourceType": "Patient", "name": [{"family": m["body"]}],
                                           "managingOrganization": {"reference": f"Organization/{m['ref']}"}})
        self.assertStatus(c, 201)
        pid = c.json()["id"]
        self.assertStatus(req("PUT", f"{FHIR}/Patient/{pid}",
                              {"resourceType": "Patient", "id": pid, "name": [{"family": m["body"]}]}), 200)
        self.assertStatus(req("POST", f"{FHIR}/Patient", '{"resourceType":"Patient","x":"' + m["badjson"]), 400)
        self.assertStatus(req("POST", f"{FHIR}/Patient",
                              '{"resourceType":"Patient","%s":1,"%s":2}' % (m["dupkey"], m["dupkey"])), 400)
        self.assertStatus(req("PUT", f"{FHIR}/Patient/{pid}",
                              {"resourceType": "Patient", "id": m["body"][:40]}), 400)
        # Query string.
        self.assertStatus(req("GET", f"{FHIR}/Patient/{pid}?secret={m['query']}"), 200)
        self.assertStatus(req("GET", f"{FHIR}/_history?_since={m['since']}"), 400)
        self.assertStatus(req("GET", f"{FHIR}/Patient?family={m['query']}"), 200)
        self.assertStatus(req("GET", f"{FHIR}/Patient?birthdate={m['query']}"), 400)
        # Path id (found, missing, invalid) and unknown type / endpoint in the path.
        self.assertStatus(req("GET", f"{FHIR}/Patient/{m['path']}"), 404)
        self.assertStatus(req("PUT", f"{FHIR}/Patient/{m['path']}",
                              {"resourceType": "Patient", "id": m["path"]}), 201)
        self.assertStatus(req("GET", f"{FHIR}/Patient/{m['path']}/_history/1"), 200)
        self.assertStatus(req("GET", f"{FHIR}/Patient/{m['path']}_!"), 400)
        self.assertStatus(req("GET", f"{FHIR}/{m['type']}/1"), 404)
        self.assertStatus(req("GET", f"/{m['endpoint']}/x"), 404)
        # Custom header, and the tokens.
        self.assertStatus(req("GET", f"{FHIR}/metadata", headers={"X-Custom": m["header"],
                                                                  "User-Agent": m["header"]}), 200)
        self.assertStatus(req("GET", f"{FHIR}/_history", token=wrong_token), 401)
        self.assertStatus(req("GET", f"{FHIR}/_history", token=None,
                              headers={"Authorization": f"Basic {m['token']}"}), 401)
        self.assertStatus(req("DELETE", f"{FHIR}/Patient/{pid}"), 204)
        # HTTP-layer errors carrying markers.
        big = srv.raw_request(f"GET /{m['endpoint']} HTTP/1.1\r\nHost: x\r\nX-Big: {m['header']}{'a' * 20000}\r\n\r\n".encode())
        self.assertIsNotNone(big, "no answer to the oversized head")
        self.assertEqual(big.status, 431, big)
        self.assertEqual(srv.stop(signal.SIGTERM), 0)

        text = srv.log_text()
        secrets = list(m.items()) + [("admin token", srv.token), ("token body", srv.token[5:]),
                                     ("wrong token", wrong_token),
                                     ("url-encoded token", urllib.parse.quote(srv.token, safe=""))]
        for name, value in secrets:
            self.assertNotIn(value, text, f"the {name} marker was logged")
        self.assertNotIn("Bearer", text)
        self.assertNotIn(pid, text, "resource ids are PHI-adjacent and must not be logged")
        recs = srv.log_records()  # Every line parses as JSON.
        reqs = [r for r in recs if r.get("event") == "request"]
        self.assertGreaterEqual(len(reqs), 19)
        for r in reqs:
            self.assertIn(r["route"], KNOWN_ROUTES, r)
        self.assertTrue(any(r.get("event") == "shutdown_complete" for r in recs))

    def test_client_method_string_not_logged_verbatim(self):
        """An unknown request method is client-controlled text: it must not reach the logs."""
        srv = KuraServer()
        self.addCleanup(srv.close)
        marker = random_marker("method")
        for method in (f"X{marker}", f"GET{marker}"):
            r = srv.raw_request(f"{method} / HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            self.assertIsNotNone(r)
            self.assertIn(r.status, (400, 405, 501), r)
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        self.assertNotIn(marker, srv.log_text(), "the request method was logged verbatim")
        reqs = [x for x in srv.log_records() if x.get("event") == "request"]
        self.assertEqual(len(reqs), 2)


if __name__ == "__main__":
    unittest.main()
