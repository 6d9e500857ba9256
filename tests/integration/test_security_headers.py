"""The security header set on every kind of response, including early HTTP-layer errors."""

import unittest
import uuid

from harness import FHIR, SharedServerTestCase

BODY_LIMIT = 2048


class SecurityHeaderTests(SharedServerTestCase):
    server_env = {"KURA_SERVER_MAX_BODY_BYTES": str(BODY_LIMIT)}

    def check(self, resp, status, what):
        self.assertIsNotNone(resp, f"no response for {what}")
        self.assertEqual(resp.status, status, f"{what}: {resp!r}")
        self.assertSecurityHeaders(resp, what)
        self.assertTrue(resp.header("X-Request-Id"), f"X-Request-Id on {what}")

    def new_patient(self):
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertEqual(r.status, 201)
        return r

    def test_200_metadata(self):
        self.check(self.srv.request("GET", f"{FHIR}/metadata", token=None), 200, "GET metadata")

    def test_200_root_and_healthz(self):
        self.check(self.srv.request("GET", "/", token=None), 200, "GET /")
        self.check(self.srv.request("GET", "/healthz", token=None), 200, "GET /healthz")

    def test_200_read_and_history(self):
        rid = self.new_patient().json()["id"]
        self.check(self.srv.request("GET", f"{FHIR}/Patient/{rid}"), 200, "read")
        self.check(self.srv.request("GET", f"{FHIR}/Patient/{rid}/_history"), 200, "history")

    def test_201_create(self):
        self.check(self.new_patient(), 201, "create")
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"},
                             headers={"Prefer": "return=minimal"})
        self.check(r, 201, "create (return=minimal)")

    def test_204_delete(self):
        rid = self.new_patient().json()["id"]
        self.check(self.srv.request("DELETE", f"{FHIR}/Patient/{rid}"), 204, "delete")
        self.check(self.srv.request("GET", f"{FHIR}/Patient/{rid}"), 410, "read deleted")

    def test_400_bad_json(self):
        self.check(self.srv.request("POST", f"{FHIR}/Patient", b"{"), 400, "bad JSON")

    def test_400_malformed_http(self):
        r = self.srv.raw_request(b"GARBAGE\x01 / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.check(r, 400, "malformed HTTP request")

    def test_401(self):
        self.check(self.srv.request("GET", f"{FHIR}/_history", token=None), 401, "no token")
        self.check(self.srv.request("GET", f"{FHIR}/_history", token="kura_wrong"), 401, "bad token")

    def test_404(self):
        self.check(self.srv.request("GET", "/nope"), 404, "unknown endpoint")
        self.check(self.srv.request("GET", f"{FHIR}/Patient/{uuid.uuid4()}"), 404, "missing resource")
        self.check(self.srv.request("GET", f"{FHIR}/Foo/1"), 404, "unknown type")

    def test_405(self):
        self.check(self.srv.request("DELETE", f"{FHIR}/metadata"), 405, "method not allowed")

    def test_412(self):
        rid = self.new_patient().json()["id"]
        r = self.srv.request("PUT", f"{FHIR}/Patient/{rid}", {"resourceType": "Patient", "id": rid},
                             headers={"If-Match": 'W/"7"'})
        self.check(r, 412, "If-Match mismatch")

    def test_413_content_length(self):
        head = (f"POST {FHIR}/Patient HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Bearer {self.srv.token}\r\nContent-Type: application/fhir+json\r\n"
                f"Content-Length: {BODY_LIMIT + 1}\r\n\r\n")
        self.check(self.srv.raw_request(head.encode()), 413, "413 (Content-Length)")

    def test_413_body(self):
        body = b'{"resourceType":"Patient","text":"' + b"x" * BODY_LIMIT + b'"}'
        self.check(self.srv.request("POST", f"{FHIR}/Patient", body), 413, "413 (body)")

    def test_415(self):
        r = self.srv.request("POST", f"{FHIR}/Patient", b"<Patient/>", content_type="application/fhir+xml")
        self.check(r, 415, "415 (Content-Type)")
        r = self.srv.request("GET", f"{FHIR}/metadata?_format=xml", token=None)
        self.check(r, 415, "415 (_format)")

    def test_431(self):
        head = ("GET /fhir/R4/metadata HTTP/1.1\r\nHost: localhost\r\n"
                f"X-Big: {'a' * 20000}\r\n\r\n")
        self.check(self.srv.raw_request(head.encode()), 431, "431")

    def test_search(self):
        self.check(self.srv.request("GET", f"{FHIR}/Patient?name=x"), 200, "search")

    def test_400_search(self):
        self.check(self.srv.request("GET", f"{FHIR}/Patient?birthdate=notadate"), 400,
                   "400 (bad search value)")


if __name__ == "__main__":
    unittest.main()
