"""TLS policy yardsticks (ctest label e2e): testssl.sh, MDN HTTP Observatory, direct handshakes.

The direct handshake checks use a positive control: the same client context completes a
handshake with a local permissive Python TLS server, so a refusal by Kura is really the
server's policy and not a client that cannot speak the protocol at all.
"""

import os
import socket
import ssl
import subprocess
import threading
import unittest
import warnings

from harness import REPO_ROOT, SharedServerTestCase, clean_env

SECURITY = REPO_ROOT / "tests" / "security"
TESTSSL_TIMEOUT = int(os.environ.get("KURA_TESTSSL_TIMEOUT", "600"))
CBC_TLS12 = ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
             "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:"
             "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:AES128-SHA:AES256-SHA:"
             "AES128-SHA256:AES256-SHA256")


def legacy_client(version, ciphers="ALL:@SECLEVEL=0"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers(ciphers)
    return ctx


class PermissiveServer:
    """A local TLS server (any protocol, any cipher) to prove a client context can connect."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        self.ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
        self.ctx.set_ciphers("ALL:@SECLEVEL=0")
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.ctx.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(5)


def handshake(port, ctx, timeout=10):
    """Returns (version, cipher) or raises on a failed handshake."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    try:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.version(), t.cipher()[0]
    finally:
        s.close()


class DirectHandshakeTests(SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.control = PermissiveServer(cls.srv.cert, os.path.join(cls.srv.data_dir, "tls", "key.pem"))
        cls.addClassCleanup(cls.control.close)

    def assert_refused(self, ctx, what):
        try:
            got = handshake(self.control.port, ctx)
        except (ssl.SSLError, OSError) as e:
            self.skipTest(f"this client's OpenSSL cannot do {what} at all ({e}); nothing to test")
        self.assertIsNotNone(got)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError),
                               msg=f"Kura accepted {what}"):
            handshake(self.srv.port, ctx)
        # A refused connection must be Kura's refusal, not a dead server.
        self.assert_alive()

    def test_tls10_refused(self):
        self.assert_refused(legacy_client(ssl.TLSVersion.TLSv1), "TLS 1.0")

    def test_tls11_refused(self):
        self.assert_refused(legacy_client(ssl.TLSVersion.TLSv1_1), "TLS 1.1")

    def test_tls12_cbc_only_refused(self):
        self.assert_refused(legacy_client(ssl.TLSVersion.TLSv1_2, CBC_TLS12 + ":@SECLEVEL=0"),
                            "TLS 1.2 with only CBC suites")

    def test_tls13_works(self):
        ctx = ssl.create_default_context(cafile=self.srv.cert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        version, cipher = handshake(self.srv.port, ctx)
        self.assertEqual(version, "TLSv1.3")
        self.assertIn(cipher, ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                               "TLS_CHACHA20_POLY1305_SHA256"))

    def test_tls12_aead_works(self):
        ctx = ssl.create_default_context(cafile=self.srv.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = handshake(self.srv.port, ctx)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue(cipher.startswith("ECDHE-"), cipher)
        self.assertTrue("GCM" in cipher or "CHACHA20" in cipher, cipher)

    def test_alpn_http11(self):
        ctx = ssl.create_default_context(cafile=self.srv.cert)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = socket.create_connection(("127.0.0.1", self.srv.port), 10)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            self.assertEqual(t.selected_alpn_protocol(), "http/1.1")

    def test_certificate_valid_for_localhost(self):
        ctx = ssl.create_default_context(cafile=self.srv.cert)
        version, _ = handshake(self.srv.port, ctx)  # check_hostname is on
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        bad = ssl.create_default_context(cafile=self.srv.cert)
        s = socket.create_connection(("127.0.0.1", self.srv.port), 10)
        with self.assertRaises(ssl.SSLCertVerificationError):
            bad.wrap_socket(s, server_hostname="not-localhost.example")
        s.close()


class YardstickTests(SharedServerTestCase):

    def run_script(self, args, timeout, env=None):
        try:
            res = subprocess.run(["bash", *[str(a) for a in args]], capture_output=True, text=True,
                                 timeout=timeout, env=clean_env(env), cwd=str(REPO_ROOT))
        except subprocess.TimeoutExpired as e:
            self.fail(f"{args[0]} timed out after {timeout}s\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
        if res.returncode != 0:
            self.fail(f"{args[0]} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
        return res

    def test_testssl(self):
        self.run_script([SECURITY / "testssl_check.sh", "localhost", self.srv.port, self.srv.cert],
                        TESTSSL_TIMEOUT + 60, env={"KURA_TESTSSL_TIMEOUT": str(TESTSSL_TIMEOUT)})
        self.assertTrue(self.srv.running(), "the server died during the testssl scan")

    def test_observatory(self):
        env = {}
        if os.environ.get("KURA_NPM_CACHE_DIR"):
            env["KURA_NPM_CACHE_DIR"] = os.environ["KURA_NPM_CACHE_DIR"]
        else:
            env["KURA_NPM_CACHE_DIR"] = str(REPO_ROOT / "build" / "npm-observatory")
        res = self.run_script([SECURITY / "observatory_check.sh",
                               f"https://localhost:{self.srv.port}/", self.srv.cert], 600, env=env)
        self.assertIn("PASS", res.stdout + res.stderr)
        self.assertTrue(self.srv.running())


if __name__ == "__main__":
    unittest.main()
