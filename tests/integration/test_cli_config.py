"""The `kura` CLI and configuration: init layout and modes, refusals, config errors, tokens."""

import json
import os
import re
import shutil
import stat
import subprocess
import unittest

from harness import (FHIR, KuraServer, KuraTestCase, clean_env, find_bytes_in_tree, kura_binary,
                     make_temp_root, run_cli)
TOKEN_RE = re.compile(r"^kura_[A-Za-z0-9_-]{43,}$")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def serve_fails(data_dir, env=None, timeout=30):
    """Runs `kura serve` expecting it to refuse to start; returns the CompletedProcess."""
    try:
        return subprocess.run([kura_binary(), "serve", "--data-dir", data_dir, "--listen",
                               "127.0.0.1:0"], env=clean_env(env), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"kura serve started instead of refusing; stderr: {e.stderr}")


class InitTests(KuraTestCase):

    def setUp(self):
        self.root = make_temp_root()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.dir = os.path.join(self.root, "data")

    def init(self, *extra):
        return run_cli(["init", "--data-dir", self.dir, *extra])

    def test_layout_and_modes(self):
        res = self.init("--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        expected = {
            "": 0o700, "kura.toml": 0o600, "kura.db": 0o600, "keys": 0o700,
            "keys/master.key": 0o600, "tls": 0o700, "tls/key.pem": 0o600,
        }
        for rel, want in expected.items():
            path = os.path.join(self.dir, rel)
            with self.subTest(path=rel or "."):
                self.assertTrue(os.path.exists(path), path)
                self.assertEqual(oct(mode(path)), oct(want), path)
        cert = os.path.join(self.dir, "tls", "cert.pem")
        self.assertEqual(mode(cert) & 0o022, 0, "certificate writable by others")
        with open(cert) as f:
            self.assertIn("-----BEGIN CERTIFICATE-----", f.read())
        # Nothing readable by group/others anywhere in the tree, except the public certificate.
        for dirpath, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                if p == cert:
                    continue
                self.assertEqual(mode(p) & 0o077, 0, f"{p} is accessible by group/others")
        # No staging leftovers beside the data dir.
        self.assertEqual(sorted(os.listdir(self.root)), ["data"])

    def test_modes_hold_under_permissive_umask(self):
        res = subprocess.run([kura_binary(), "init", "--data-dir", self.dir, "--json"],
                             env=clean_env(), capture_output=True, text=True, timeout=60,
                             preexec_fn=lambda: os.umask(0))
        self.assertEqual(res.returncode, 0, res.stderr)
        for rel, want in {"": 0o700, "kura.toml": 0o600, "kura.db": 0o600, "keys": 0o700,
                          "keys/master.key": 0o600, "tls": 0o700, "tls/key.pem": 0o600}.items():
            with self.subTest(path=rel or "."):
                self.assertEqual(oct(mode(os.path.join(self.dir, rel))), oct(want))

    def test_json_output(self):
        res = self.init("--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = res.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, f"--json must print exactly one JSON line: {res.stdout!r}")
        out = json.loads(lines[0])
        for key in ("admin_token", "base_url", "data_dir", "certificate"):
            self.assertIn(key, out)
        self.assertRegex(out["admin_token"], TOKEN_RE)
        self.assertGreaterEqual(len(out["admin_token"]) - len("kura_"), 43)
        self.assertEqual(os.path.realpath(out["data_dir"]), os.path.realpath(self.dir))
        self.assertTrue(os.path.isabs(out["data_dir"]))
        self.assertEqual(os.path.realpath(out["certificate"]),
                         os.path.realpath(os.path.join(self.dir, "tls", "cert.pem")))
        self.assertTrue(out["base_url"].startswith("https://"), out["base_url"])
        self.assertNotIn(out["admin_token"], res.stderr, "the token was logged")
        # The token is not stored in clear anywhere in the data dir.
        holders = [path for path, _ in find_bytes_in_tree(self.dir, [out["admin_token"][5:].encode()])]
        self.assertEqual(holders, [], "files holding the token in clear")

    def test_plain_output_shows_token_once(self):
        res = self.init()
        self.assertEqual(res.returncode, 0, res.stderr)
        tokens = re.findall(r"kura_[A-Za-z0-9_-]{43,}", res.stdout)
        self.assertEqual(len(tokens), 1, res.stdout)

    def test_tokens_differ_between_inits(self):
        a = self.init("--json")
        other = os.path.join(self.root, "other")
        b = run_cli(["init", "--data-dir", other, "--json"])
        self.assertEqual((a.returncode, b.returncode), (0, 0))
        self.assertNotEqual(json.loads(a.stdout)["admin_token"], json.loads(b.stdout)["admin_token"])
        with open(os.path.join(self.dir, "keys", "master.key"), "rb") as f1, \
                open(os.path.join(other, "keys", "master.key"), "rb") as f2:
            self.assertNotEqual(f1.read(), f2.read())

    def snapshot(self):
        snap = {}
        for dirpath, _d, files in os.walk(self.dir):
            for name in files:
                p = os.path.join(dirpath, name)
                with open(p, "rb") as f:
                    snap[p] = f.read()
        return snap

    def test_refuses_existing_data_dir(self):
        self.assertEqual(self.init("--json").returncode, 0)
        before = self.snapshot()
        res = self.init("--json")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(self.dir, res.stderr)
        self.assertRegex(res.stderr, r"(?i)already|exists")
        self.assertEqual(res.stdout, "")
        self.assertEqual(self.snapshot(), before, "a refused init changed the data dir")

    def test_refuses_non_empty_dir(self):
        os.mkdir(self.dir, 0o700)
        with open(os.path.join(self.dir, "precious.txt"), "w") as f:
            f.write("keep")
        res = self.init("--json")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(self.dir, res.stderr)
        self.assertRegex(res.stderr, r"(?i)not empty")
        self.assertEqual(os.listdir(self.dir), ["precious.txt"])
        self.assertEqual(sorted(os.listdir(self.root)), ["data"], "staging directory left behind")

    def test_refuses_file_in_place_of_dir(self):
        with open(self.dir, "w") as f:
            f.write("x")
        res = self.init()
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(self.dir, res.stderr)

    def test_empty_existing_dir_is_used_and_locked_down(self):
        os.mkdir(self.dir, 0o755)
        res = self.init("--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(oct(mode(self.dir)), oct(0o700))
        self.assertTrue(os.path.exists(os.path.join(self.dir, "kura.toml")))


class ServeRefusalTests(KuraTestCase):

    def setUp(self):
        self.root = make_temp_root()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.dir = os.path.join(self.root, "data")
        res = run_cli(["init", "--data-dir", self.dir, "--json"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.token = json.loads(res.stdout)["admin_token"]

    def assert_refused(self, res, *needles, code=1):
        self.assertEqual(res.returncode, code, f"stderr: {res.stderr}")
        for n in needles:
            self.assertIn(n, res.stderr)
        self.assertNotIn('"event":"listening"', res.stderr)

    def test_data_dir_readable_by_others(self):
        os.chmod(self.dir, 0o755)
        self.assert_refused(serve_fails(self.dir), self.dir)
        os.chmod(self.dir, 0o750)
        self.assert_refused(serve_fails(self.dir), self.dir)

    def test_key_file_readable_by_others(self):
        key = os.path.join(self.dir, "keys", "master.key")
        os.chmod(key, 0o644)
        self.assert_refused(serve_fails(self.dir), key)
        os.chmod(key, 0o640)
        self.assert_refused(serve_fails(self.dir), key)

    def test_tls_key_readable_by_others(self):
        key = os.path.join(self.dir, "tls", "key.pem")
        os.chmod(key, 0o644)
        self.assert_refused(serve_fails(self.dir), key)

    def rewrite_toml(self, edit):
        """Replaces kura.toml with edit(original); the edit must change something."""
        toml = os.path.join(self.dir, "kura.toml")
        with open(toml) as f:
            original = f.read()
        edited = edit(original)
        self.assertNotEqual(edited, original, "the edit matched nothing in kura.toml")
        with open(toml, "w") as f:
            f.write(edited)
        return original

    def test_unknown_key_in_toml(self):
        self.rewrite_toml(lambda t: t.replace("[server]\n", "[server]\nlisten_bogus = 'x'\n", 1))
        self.assert_refused(serve_fails(self.dir), "server.listen_bogus")

    def test_unknown_section_and_top_level_key_in_toml(self):
        original = self.rewrite_toml(lambda t: "bogus_top = 1\n" + t)
        self.assert_refused(serve_fails(self.dir), "bogus_top")
        self.rewrite_toml(lambda t: original + "\n[bogussection]\nx = 1\n")
        self.assert_refused(serve_fails(self.dir), "bogussection")

    def test_bad_value_in_toml(self):
        self.rewrite_toml(
            lambda t: re.sub(r"(?m)^max_body_bytes = .*$", "max_body_bytes = 'big'", t))
        self.assert_refused(serve_fails(self.dir), "server.max_body_bytes")

    def test_bad_env_values(self):
        for name, value, key in [("KURA_SERVER_MAX_BODY_BYTES", "abc", "server.max_body_bytes"),
                                 ("KURA_SERVER_MAX_BODY_BYTES", "1023", "server.max_body_bytes"),
                                 ("KURA_SERVER_MAX_CONNECTIONS", "0", "server.max_connections"),
                                 ("KURA_SERVER_HEADER_TIMEOUT_SECONDS", "1.5", "server.header_timeout_seconds"),
                                 ("KURA_SERVER_PUBLIC_BASE_URL", "http://x", "server.public_base_url"),
                                 ("KURA_LOG_LEVEL", "loud", "log.level")]:
            with self.subTest(name=name, value=value):
                res = serve_fails(self.dir, env={name: value})
                self.assert_refused(res, name)
                self.assertIn(key, res.stderr)

    def test_unknown_env_key(self):
        res = serve_fails(self.dir, env={"KURA_SERVER_LISTN": "x"})
        self.assert_refused(res, "KURA_SERVER_LISTN")
        res = serve_fails(self.dir, env={"KURA_TLS_CERT": "x"})
        self.assert_refused(res, "KURA_TLS_CERT")

    def test_not_a_data_dir(self):
        empty = os.path.join(self.root, "empty")
        os.mkdir(empty, 0o700)
        res = serve_fails(empty)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn(empty, res.stderr)

    def test_stderr_is_one_line_message_plus_json(self):
        os.chmod(self.dir, 0o755)
        res = serve_fails(self.dir)
        self.assert_refused(res)
        lines = res.stderr.strip().splitlines()
        plain = [l for l in lines if not l.startswith("{")]
        self.assertEqual(len(plain), 1, res.stderr)
        self.assertTrue(plain[0].startswith("kura serve: "), plain)
        for l in lines:
            if l.startswith("{"):
                json.loads(l)

    def test_good_env_override_applies(self):
        srv = KuraServer(data_dir=self.dir, root=self.root, env={"KURA_SERVER_MAX_BODY_BYTES": "1024"})
        self.addCleanup(srv.close)
        srv.token = self.token
        r = srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient", "text": "x" * 1100})
        self.assertOperationOutcome(r, 413)
        r = srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertStatus(r, 201)


class CommandLineTests(KuraTestCase):

    def assert_usage_error(self, args, mention=None):
        res = run_cli(args)
        self.assertEqual(res.returncode, 2, f"{args}: {res.stderr}")
        lines = res.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"{args}: stderr must be exactly one line: {res.stderr!r}")
        self.assertEqual(res.stdout, "")
        if mention:
            self.assertIn(mention, lines[0], f"{args}: the message does not name {mention!r}")

    def test_unknown_flags(self):
        self.assert_usage_error(["serve", "--data-dir", "/nonexistent", "--bogus"], "--bogus")
        self.assert_usage_error(["version", "--bogus"], "--bogus")
        self.assert_usage_error(["init", "--data-dir", "/nonexistent", "--frob"], "--frob")

    def test_unknown_flag_before_subcommand(self):
        self.assert_usage_error(["--bogus"], "--bogus")
        self.assert_usage_error(["--bogus", "version"], "--bogus")

    def test_unknown_flag_with_missing_required_option(self):
        self.assert_usage_error(["serve", "--bogus"], "--bogus")

    def test_unknown_subcommand(self):
        self.assert_usage_error(["frobnicate"], "frobnicate")

    def test_missing_subcommand_or_option(self):
        self.assert_usage_error([])
        self.assert_usage_error(["serve"], "--data-dir")
        self.assert_usage_error(["init"], "--data-dir")
        self.assert_usage_error(["token"])

    def test_version(self):
        res = run_cli(["version"])
        self.assertEqual(res.returncode, 0)
        self.assertRegex(res.stdout, r"^kura \d+\.\d+\.\d+\S*\n$")
        self.assertEqual(res.stderr, "")

    def test_help(self):
        for args, must in ((["--help"], ("init", "serve", "token", "version")),
                           (["serve", "--help"], ("--data-dir", "--listen")),
                           (["init", "--help"], ("--data-dir", "--json")),
                           (["token", "create", "--help"], ("--data-dir", "--name"))):
            with self.subTest(args=args):
                res = run_cli(args)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn("Usage", res.stdout)
                for m in must:
                    self.assertIn(m, res.stdout)


class TokenTests(KuraTestCase):

    def test_token_create_issues_working_token(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        res = run_cli(["token", "create", "--data-dir", srv.data_dir, "--name", "ci-bot"])
        self.assertEqual(res.returncode, 0, res.stderr)
        token = res.stdout.strip()
        self.assertRegex(token, TOKEN_RE)
        self.assertNotEqual(token, srv.token)
        self.assertNotIn(token, res.stderr)
        # Works against the running server at once, next to the admin token.
        self.assertStatus(srv.request("GET", f"{FHIR}/_history", token=token), 200)
        self.assertStatus(srv.request("GET", f"{FHIR}/_history"), 200)
        c = srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"}, token=token)
        self.assertStatus(c, 201)
        # A second token differs; a mangled one does not work.
        res2 = run_cli(["token", "create", "--data-dir", srv.data_dir])
        self.assertEqual(res2.returncode, 0, res2.stderr)
        self.assertNotEqual(res2.stdout.strip(), token)
        self.assertStatus(srv.request("GET", f"{FHIR}/_history", token=token[:-2]), 401)
        self.assertNotIn(token, srv.log_text())
        # And it still works after a restart.
        self.assertEqual(srv.stop(), 0)
        srv.start()
        self.assertStatus(srv.request("GET", f"{FHIR}/_history", token=token), 200)

    def test_runtime_files_owner_only(self):
        """Files the server creates while running (-wal, -shm, ...) are owner-only too."""
        srv = KuraServer(env={})
        self.addCleanup(srv.close)
        for i in range(5):
            self.assertStatus(srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"}), 201)
        names = os.listdir(srv.data_dir)
        self.assertIn("kura.db-wal", names)
        cert = os.path.join(srv.data_dir, "tls", "cert.pem")
        for dirpath, dirs, files in os.walk(srv.data_dir):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                if p != cert:
                    self.assertEqual(mode(p) & 0o077, 0, f"{p}: mode {oct(mode(p))}")

    def test_token_create_refuses_bad_data_dir(self):
        root = make_temp_root()
        self.addCleanup(shutil.rmtree, root, True)
        res = run_cli(["token", "create", "--data-dir", os.path.join(root, "missing")])
        self.assertEqual(res.returncode, 1)
        self.assertIn("missing", res.stderr)
        self.assertEqual(res.stdout, "")


if __name__ == "__main__":
    unittest.main()
