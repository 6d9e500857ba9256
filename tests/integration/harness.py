"""Integration-test harness for Kura: runs the real `kura` binary over real TLS.

Everything here uses the Python standard library only.

    with KuraServer(env={"KURA_SERVER_IDLE_TIMEOUT_SECONDS": "2"}) as srv:
        r = srv.request("POST", "/fhir/R4/Patient", {"resourceType": "Patient"})
        assert r.status == 201

KuraServer
  - makes a per-server temporary root (removed by close()), runs `kura init --json` into
    ROOT/data (or uses an existing data dir), starts `kura serve --listen 127.0.0.1:0`
    with a clean environment plus `env`, reads stderr in a thread (every line is kept in
    `logs`) and waits, bounded, for the {"event":"listening",...,"port":N} line;
  - exposes port, token (the admin token from init), cert (the self-signed certificate),
    data_dir, root;
  - request(): HTTPS with certificate verification against `cert` and the host name
    "localhost" (connecting to 127.0.0.1), keep-alive connections per thread;
  - stop(sig) -> exit code, kill9(), start() again on the same data dir (restart).

The binary comes from $KURA_BINARY (default: <repo>/build/kura).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
FHIR = "/fhir/R4"
DEFAULT = object()  # "use the server's admin token"

# Bounds for every wait in the harness (seconds).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0
SOCKET_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0

SECURITY_HEADERS_EXACT = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
UTC_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def kura_binary() -> str:
    path = os.environ.get("KURA_BINARY") or str(REPO_ROOT / "build" / "kura")
    return str(Path(path).resolve())


def clean_env(extra: Optional[dict] = None) -> dict:
    """The current environment without any KURA_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KURA_")}
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args: list, env: Optional[dict] = None, timeout: float = CLI_TIMEOUT,
            cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs `kura ARGS...` and returns the CompletedProcess (text mode)."""
    return subprocess.run([kura_binary(), *[str(a) for a in args]], env=clean_env(env),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def stop_and_verify_audit(srv: "KuraServer", who: str) -> dict:
    """Stops `srv`; its audit log must then verify, resource tables included. Returns the report."""
    srv.stop()
    res = run_cli(["audit", "verify", "--data-dir", srv.data_dir, "--json", "--no-record"],
                  env=srv.env)
    try:
        report = json.loads(res.stdout)
    except ValueError:
        report = None
    if (res.returncode != 0 or not report or not report["ok"]
            or report["resources_not_checked"] is not None):
        raise AssertionError(f"{who}: the audit log does not verify after its requests: "
                             f"{res.stdout} {res.stderr}")
    return report


def make_temp_root(prefix: str = "kura-it-") -> str:
    return tempfile.mkdtemp(prefix=prefix)


class Response:
    """A fully read HTTP response."""

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, body: bytes,
                 will_close: bool = False):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.will_close = will_close

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name, default)

    def header_all(self, name: str) -> list:
        return self.headers.get_all(name) or []

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} {self.body[:300]!r}>"


class KuraHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port, verifying the certificate as "localhost"."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = SOCKET_TIMEOUT,
                 server_hostname: str = "localhost"):
        super().__init__("localhost", port, context=context, timeout=timeout)
        self._ctx = context
        self._sni = server_hostname
        self.used = 0

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._sni)


def read_response(conn: http.client.HTTPConnection) -> Response:
    r = conn.getresponse()
    body = r.read()
    return Response(r.status, r.reason, r.headers, body, r.will_close)


class ServerStartError(RuntimeError):
    pass


class KuraServer:
    """One `kura serve` process on a fresh (or given) data directory."""

    def __init__(self, env: Optional[dict] = None, data_dir: Optional[str] = None,
                 root: Optional[str] = None, start: bool = True, init: bool = True):
        self.root = root or make_temp_root()
        self._own_root = root is None
        self.env = dict(env or {})
        self.data_dir = data_dir or os.path.join(self.root, "data")
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.token: Optional[str] = None
        self.init_output: Optional[dict] = None
        self.logs: list = []             # Every stderr line of every run, in order.
        self.run_logs: list = []         # Lines of the current/last run only.
        self._log_cond = threading.Condition()
        self._reader: Optional[threading.Thread] = None
        self._local = threading.local()
        self._all_conns: list = []
        self._conns_lock = threading.Lock()
        try:
            if init and not os.path.exists(os.path.join(self.data_dir, "kura.toml")):
                self.init()
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    # ---- lifecycle -------------------------------------------------------------------------
    def init(self) -> dict:
        res = run_cli(["init", "--data-dir", self.data_dir, "--json"])
        if res.returncode != 0:
            raise ServerStartError(f"kura init failed ({res.returncode}): {res.stderr}")
        self.init_output = json.loads(res.stdout)
        self.token = self.init_output["admin_token"]
        return self.init_output

    @property
    def cert(self) -> str:
        return os.path.join(self.data_dir, "tls", "cert.pem")

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_dir, "kura.db")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)

    def start(self, timeout: float = START_TIMEOUT, extra_env: Optional[dict] = None):
        """Starts `kura serve` and waits for the listening line; raises with stderr on failure."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        self.port = None
        self.run_logs = []
        self._ctx = self.ssl_context() if os.path.exists(self.cert) else None
        self.proc = subprocess.Popen(
            [kura_binary(), "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"],
            env=clean_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        with self._log_cond:
            while self.port is None:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._log_cond.wait(min(left, 0.2))
        if self.port is None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait(10)
            self._reader.join(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            raise ServerStartError(f"kura serve did not start (exit {self.proc.returncode}); "
                                   f"stderr:\n" + "\n".join(self.run_logs))
        self._ctx = self.ssl_context()

    def _read_stderr(self, proc: subprocess.Popen):
        for raw in proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._log_cond:
                self.logs.append(line)
                self.run_logs.append(line)
                if self.port is None:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        rec = None
                    if isinstance(rec, dict) and rec.get("event") == "listening":
                        self.port = int(rec["port"])
                self._log_cond.notify_all()
        with self._log_cond:
            self._log_cond.notify_all()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Sends `sig`, waits (bounded) for exit and returns the exit code (negative: signal)."""
        self.close_connections()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                if self._reader:
                    self._reader.join(10)
                raise AssertionError(f"kura serve did not exit within {timeout}s of signal {sig}")
        if self._reader:
            self._reader.join(10)
        if self.proc.stderr and not (self._reader and self._reader.is_alive()):
            self.proc.stderr.close()
        return self.proc.returncode

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Waits (bounded) for the process to exit by itself; returns its exit code."""
        rc = self.proc.wait(timeout)
        if self._reader:
            self._reader.join(10)
        if self.proc.stderr and not (self._reader and self._reader.is_alive()):
            self.proc.stderr.close()
        return rc

    def kill9(self) -> Optional[int]:
        return self.stop(signal.SIGKILL, timeout=15)

    def close(self):
        """Stops the server (SIGKILL if still running) and removes the temporary root."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(15)
            if self._reader:
                self._reader.join(5)
            if self.proc is not None and self.proc.stderr:
                self.proc.stderr.close()
        finally:
            self.close_connections()
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- logs ------------------------------------------------------------------------------
    def log_text(self) -> str:
        with self._log_cond:
            return "\n".join(self.logs)

    def log_records(self, run_only: bool = False) -> list:
        """Stderr lines parsed as JSON; raises AssertionError naming any non-JSON line."""
        with self._log_cond:
            lines = list(self.run_logs if run_only else self.logs)
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                raise AssertionError(f"stderr line is not JSON: {line!r}")
            if not isinstance(rec, dict):
                raise AssertionError(f"stderr line is not a JSON object: {line!r}")
            out.append(rec)
        return out

    def wait_for_log(self, predicate: Callable[[dict], bool], timeout: float = 10.0,
                     start_index: int = 0) -> Optional[dict]:
        """Polls (bounded) for a JSON log record matching `predicate`; returns it or None."""
        deadline = time.monotonic() + timeout
        with self._log_cond:
            while True:
                for line in self.logs[start_index:]:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and predicate(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._log_cond.wait(min(left, 0.2))

    def request_log(self, request_id: str, timeout: float = 5.0) -> Optional[dict]:
        return self.wait_for_log(
            lambda r: r.get("event") == "request" and r.get("request_id") == request_id, timeout)

    # ---- HTTP ------------------------------------------------------------------------------
    def connection(self, timeout: float = SOCKET_TIMEOUT) -> KuraHTTPSConnection:
        """A new keep-alive connection owned by the caller."""
        assert self.port is not None, "server not started"
        conn = KuraHTTPSConnection(self.port, self._ctx, timeout=timeout)
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    def close_connections(self):
        with self._conns_lock:
            conns, self._all_conns = self._all_conns, []
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        self._local = threading.local()

    @staticmethod
    def _encode_body(body: Any) -> Optional[bytes]:
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        if isinstance(body, str):
            return body.encode("utf-8")
        return json.dumps(body).encode("utf-8")

    def request(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None,
                token: Any = DEFAULT, conn: Optional[http.client.HTTPConnection] = None,
                content_type: Optional[str] = "application/fhir+json") -> Response:
        """One request; body may be a dict (sent as JSON), str or bytes.

        token: DEFAULT = the admin token, None = no Authorization header, str = that bearer
        token. A Content-Type is added when there is a body and the caller set none.
        Uses a per-thread keep-alive connection unless `conn` is given.
        """
        hdrs = {"Accept": "application/fhir+json"}
        tok = self.token if token is DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        data = self._encode_body(body)
        if data is not None and content_type is not None:
            hdrs["Content-Type"] = content_type
        if headers:
            for k, v in headers.items():
                # An explicit None removes a default header.
                for existing in [h for h in hdrs if h.lower() == k.lower()]:
                    del hdrs[existing]
                if v is not None:
                    hdrs[k] = v
        own = conn is None
        for attempt in (0, 1):
            c = conn
            if own:
                c = getattr(self._local, "conn", None)
                if c is None:
                    c = self.connection()
                    self._local.conn = c
            reused = getattr(c, "used", 0) > 0
            try:
                c.request(method, path, body=data, headers=hdrs)
                resp = read_response(c)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ssl.SSLEOFError, http.client.CannotSendRequest,
                    http.client.ResponseNotReady):
                if own:
                    c.close()
                    self._local.conn = None
                # A reused keep-alive connection may have been closed by the server while idle.
                if own and reused and attempt == 0:
                    continue
                raise
            c.used = getattr(c, "used", 0) + 1
            if resp.will_close:
                c.close()
                if own:
                    self._local.conn = None
            return resp
        raise AssertionError("unreachable")

    def tcp_socket(self, timeout: float = SOCKET_TIMEOUT) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def tls_socket(self, timeout: float = SOCKET_TIMEOUT,
                   context: Optional[ssl.SSLContext] = None) -> ssl.SSLSocket:
        """A TCP connection with a completed TLS handshake (verified as "localhost")."""
        s = self.tcp_socket(timeout)
        try:
            return (context or self._ctx).wrap_socket(s, server_hostname="localhost")
        except BaseException:
            s.close()
            raise

    def raw_request(self, data: bytes, timeout: float = SOCKET_TIMEOUT) -> Optional[Response]:
        """Sends raw bytes on a new TLS connection and parses one HTTP response.

        Returns None when the server closes the connection without any response bytes.
        """
        s = self.tls_socket(timeout)
        try:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # The server may answer and close before reading everything.
            return read_raw_response(s)
        finally:
            s.close()


def read_raw_response(sock: socket.socket) -> Optional[Response]:
    """Parses one HTTP response from a socket; None if it closes with no bytes at all."""
    resp = http.client.HTTPResponse(sock, method="GET")
    try:
        resp.begin()
    except http.client.RemoteDisconnected:
        return None
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return None
    try:
        body = resp.read()
    except (ConnectionResetError, ssl.SSLError, http.client.IncompleteRead) as e:
        body = getattr(e, "partial", b"") or b""
    return Response(resp.status, resp.reason, resp.headers, body, resp.will_close)


def recv_until_closed(sock: socket.socket, timeout: float) -> tuple:
    """Reads until EOF/reset/timeout. Returns (bytes, how, seconds): how is 'eof', 'reset',
    'ssl-error' or 'timeout'."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout", time.monotonic() - t0
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, "timeout", time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset", time.monotonic() - t0
        except ssl.SSLError:
            return data, "ssl-error", time.monotonic() - t0
        if not chunk:
            return data, "eof", time.monotonic() - t0
        data += chunk


def observation(value: str, **extra) -> dict:
    """A minimal valid Observation whose valueString is `value`."""
    r = {"resourceType": "Observation", "status": "final", "code": {"text": "integration test"},
         "valueString": value}
    r.update(extra)
    return r


def run_threads(target: Callable[[int], None], count: int, timeout: float) -> list:
    """Runs target(0..count-1) on threads; returns the exceptions they raised, plus one per
    thread still running at the deadline."""
    errors = []
    lock = threading.Lock()

    def guarded(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    errors.extend(TimeoutError("thread still running") for t in threads if t.is_alive())
    return errors


def random_marker(prefix: str = "Mrk") -> str:
    """A unique ASCII marker that cannot occur by chance."""
    return prefix + os.urandom(12).hex()


def find_bytes_in_tree(root: str, needles: Iterable[bytes]) -> list:
    """Every (path, needle) where a needle occurs in any regular file under root (binary)."""
    hits = []
    needles = list(needles)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for n in needles:
                if n in data:
                    hits.append((path, n))
    return hits


class KuraTestCase(unittest.TestCase):
    """Assertion helpers shared by the modules."""

    maxDiff = 4000

    def assert_alive(self):
        """The server process runs and answers."""
        self.assertTrue(self.srv.running(), "the server process died")
        self.assertStatus(self.srv.request("GET", f"{FHIR}/metadata", token=None), 200)

    def assertStatus(self, resp: Response, status: int, msg: str = ""):
        self.assertEqual(resp.status, status, f"{msg} unexpected status; response: {resp!r}")

    def assertOperationOutcome(self, resp: Response, status: int, code: Optional[str] = None,
                               diagnostics: Optional[str] = None,
                               diagnostics_contains: Optional[str] = None,
                               expression: Optional[list] = None,
                               expression_in: Optional[list] = None,
                               severity: Optional[str] = None) -> dict:
        """Checks status, JSON content type and the first issue of an OperationOutcome."""
        self.assertStatus(resp, status)
        ctype = resp.header("Content-Type") or ""
        self.assertTrue(ctype.startswith("application/fhir+json"), f"Content-Type {ctype!r}")
        oo = resp.json()
        self.assertEqual(oo.get("resourceType"), "OperationOutcome", oo)
        self.assertIsInstance(oo.get("issue"), list, oo)
        self.assertGreaterEqual(len(oo["issue"]), 1, oo)
        issue = oo["issue"][0]
        self.assertIn(issue.get("severity"), ("fatal", "error", "warning", "information"), oo)
        if severity is not None:
            self.assertEqual(issue.get("severity"), severity, oo)
        self.assertIsInstance(issue.get("code"), str, oo)
        self.assertIsInstance(issue.get("diagnostics"), str, oo)
        self.assertTrue(issue["diagnostics"], oo)
        if code is not None:
            self.assertEqual(issue.get("code"), code, oo)
        if diagnostics is not None:
            self.assertEqual(issue.get("diagnostics"), diagnostics, oo)
        if diagnostics_contains is not None:
            self.assertIn(diagnostics_contains, issue.get("diagnostics", ""), oo)
        if expression is not None:
            self.assertEqual(issue.get("expression"), expression, oo)
        if expression_in is not None:
            self.assertIn(issue.get("expression"), expression_in, oo)
        return issue

    def assertSecurityHeaders(self, resp: Response, what: str = ""):
        where = f"{what} (status {resp.status})"
        for name, value in SECURITY_HEADERS_EXACT.items():
            self.assertEqual(resp.header_all(name), [value], f"{name} on {where}")
        csp = resp.header_all("Content-Security-Policy")
        self.assertEqual(len(csp), 1, f"Content-Security-Policy on {where}: {csp}")
        self.assertIn("default-src 'none'", csp[0], where)
        self.assertIn("frame-ancestors 'none'", csp[0], where)
        pp = resp.header_all("Permissions-Policy")
        self.assertEqual(len(pp), 1, f"Permissions-Policy on {where}: {pp}")
        self.assertTrue(pp[0].strip(), where)
        self.assertIsNone(resp.header("Server"), f"Server header on {where}")


class SharedServerTestCase(KuraTestCase):
    """One server for the whole class, started with the class's `server_env`.

    When the class is done, the server is stopped and `kura audit verify` must find its audit
    log intact and the resource tables in agreement with every write the log records, whatever
    the class's requests did. A class that edits the database on purpose sets
    `verify_audit_at_end = False`.
    """

    server_env: dict = {}
    verify_audit_at_end: bool = True

    @classmethod
    def setUpClass(cls):
        cls.srv = KuraServer(env=cls.server_env)
        cls.addClassCleanup(cls.srv.close)

    @classmethod
    def tearDownClass(cls):
        srv = getattr(cls, "srv", None)
        if cls.verify_audit_at_end and srv is not None and srv.running():
            stop_and_verify_audit(srv, cls.__name__)
        super().tearDownClass()
