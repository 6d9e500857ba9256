"""Changing the data register: the server refuses stale search indexes, `kura fhir reindex`
rebuilds them without new versions, and a parameter made blind leaves no clear value behind.
Also: one data directory, one server (kura.lock)."""
import json
import os
import unittest
import urllib.parse

from harness import (FHIR, KuraServer, KuraTestCase, ServerStartError, random_marker,
                     run_cli)

# The shipped register with family names in clear: what an operator might have chosen before.
CLEAR_FAMILY_REGISTER = """
[search]
default = "clear"
default_string = "blind"
"*.identifier" = "blind"
"*.family" = "clear"
"*.name" = "blind"
"""


class SearchReindexTest(KuraTestCase):
    def setUp(self):
        self.srv = KuraServer()
        self.addCleanup(self.srv.close)
        self.marker = random_marker("zq").lower()
        self.family = "Zoë" + self.marker
        self.register_path = os.path.join(self.srv.root, "clear-family.toml")
        with open(self.register_path, "w") as f:
            f.write(CLEAR_FAMILY_REGISTER)
        self.clear_env = {"KURA_FHIR_DATA_REGISTER_FILE": self.register_path}
        r = self.srv.request("POST", f"{FHIR}/Patient", {
            "resourceType": "Patient", "name": [{"family": self.family, "given": ["Ada"]}],
            "birthDate": "1970-01-02"})
        self.assertStatus(r, 201)
        self.patient = r.json()["id"]
        self.version = r.json()["meta"]["versionId"]

    def search_family(self, query):
        r = self.srv.request("GET", f"{FHIR}/Patient?{query}")
        return r, ([e["resource"]["id"] for e in r.json().get("entry", [])]
                   if r.status == 200 else None)

    def reindex(self, env=None):
        return run_cli(["fhir", "reindex", "--data-dir", self.srv.data_dir, "--json"], env=env)

    def database_bytes(self):
        data = b""
        for suffix in ("", "-wal"):
            path = self.srv.db_path + suffix
            if os.path.exists(path):
                with open(path, "rb") as f:
                    data += f.read()
        return data.lower()

    def start_fails(self, env=None):
        with self.assertRaises(ServerStartError) as ctx:
            self.srv.start(extra_env=env)
        return str(ctx.exception)

    def test_a_changed_register_is_refused_until_reindexed_both_ways(self):
        marker = self.marker.encode()
        self.srv.stop()
        # Clear family names under the shipped register's index: refused, not served stale.
        why = self.start_fails(self.clear_env)
        self.assertIn("kura fhir reindex", why)
        res = self.reindex(self.clear_env)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        self.assertEqual(out["resources"], 1)
        self.assertNotEqual(out["register_fingerprint"], out["previous_register_fingerprint"])
        self.srv.start(extra_env=self.clear_env)
        # Rebuilt, not re-saved: same version; the family now answers :contains (clear only).
        r = self.srv.request("GET", f"{FHIR}/Patient/{self.patient}")
        self.assertEqual(r.json()["meta"]["versionId"], self.version)
        _, ids = self.search_family("family:contains=" + self.marker[4:16])
        self.assertEqual(ids, [self.patient])
        self.srv.stop()
        self.assertIn(marker, self.database_bytes(), "the clear register should index in clear")

        # Back to the shipped register (family blind): refused again until reindexed; then the
        # name is found by its keyed hashes only, and neither file holds it any more.
        self.assertIn("kura fhir reindex", self.start_fails())
        res = self.reindex()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn(marker, self.database_bytes())
        self.srv.start()
        _, ids = self.search_family("family=" + urllib.parse.quote("zoe" + self.marker[:8]))
        self.assertEqual(ids, [self.patient])
        r, _ = self.search_family("family:contains=" + self.marker[4:16])
        self.assertOperationOutcome(r, 400)
        # Both runs are in the audit log, with what they did.
        r = self.srv.request("GET", "/audit/v1/records?action=reindex&_count=100")
        self.assertStatus(r, 200)
        records = r.json()["records"]
        self.assertEqual(len(records), 4, records)  # One before and one after each run.
        self.assertEqual([r["details"].get("reindex.resources") for r in records],
                         ["1", None, "1", None])
        self.assertEqual({r["outcome"] for r in records}, {"success"})
        self.assertEqual(records[0]["details"]["register.fingerprint"],
                         records[2]["details"]["register.previous_fingerprint"])
        verify = run_cli(["audit", "verify", "--data-dir", self.srv.data_dir, "--no-record"])
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    def test_an_unchanged_register_needs_no_reindex_and_a_reindex_is_harmless(self):
        self.srv.stop()
        res = self.reindex()
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        self.assertEqual(out["register_fingerprint"], out["previous_register_fingerprint"])
        self.srv.start()
        _, ids = self.search_family("family=" + urllib.parse.quote(self.family.lower()))
        self.assertEqual(ids, [self.patient])
        r = self.srv.request("GET", f"{FHIR}/Patient/{self.patient}")
        self.assertEqual(r.json()["meta"]["versionId"], self.version)

    def test_one_data_directory_one_server(self):
        second = run_cli(["serve", "--data-dir", self.srv.data_dir, "--listen", "127.0.0.1:0"],
                         timeout=30)
        self.assertEqual(second.returncode, 1)
        self.assertIn("in use by another kura server", second.stderr)
        res = self.reindex()
        self.assertEqual(res.returncode, 1)
        self.assertIn("in use by another kura server", res.stderr)
        # The running server was not disturbed.
        r = self.srv.request("GET", f"{FHIR}/Patient/{self.patient}")
        self.assertStatus(r, 200)
        self.srv.stop()
        self.srv.start()  # The lock went with the process.
        self.assert_alive()

    def test_a_bad_register_file_is_a_clear_error(self):
        self.srv.stop()
        with open(self.register_path, "w") as f:
            f.write('[search]\n"*.family" = "scrambled"\n')
        res = self.reindex(self.clear_env)
        self.assertEqual(res.returncode, 1)
        self.assertIn("family", res.stderr)
        missing = {"KURA_FHIR_DATA_REGISTER_FILE": os.path.join(self.srv.root, "absent.toml")}
        res = self.reindex(missing)
        self.assertEqual(res.returncode, 1)
        self.assertIn("cannot read fhir.data_register_file", res.stderr)


if __name__ == "__main__":
    unittest.main()
