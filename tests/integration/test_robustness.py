"""Robustness: timeouts, hostile input, limits, concurrency, crash durability, graceful stop."""

import http.client
import json
import os
import signal
import socket
import ssl
import threading
import time
import unittest
import uuid

from harness import (FHIR, KuraServer, KuraTestCase, SharedServerTestCase, observation,
                     read_raw_response, recv_until_closed, run_threads)


class TimeoutTests(SharedServerTestCase):
    server_env = {"KURA_SERVER_HEADER_TIMEOUT_SECONDS": "2", "KURA_SERVER_IDLE_TIMEOUT_SECONDS": "3"}

    def test_half_request_head_disconnected(self):
        s = self.srv.tls_socket()
        try:
            t0 = time.monotonic()
            s.sendall(b"GET /fhir/R4/metadata HTTP/1.1\r\nHost: localhost\r\nX-Partial: ")
            data, how, _ = recv_until_closed(s, 15)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertNotEqual(how, "timeout", "a stalled request head was never cut off")
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLessEqual(elapsed, 6.0)
        self.assertNotIn(b"200 OK", data)
        self.assert_alive()

    def test_trickled_request_head_disconnected(self):
        """One byte every 0.25 s must not extend the head deadline (slowloris)."""
        s = self.srv.tls_socket()
        head = b"GET /fhir/R4/metadata HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
        t0 = time.monotonic()
        closed_after = None
        try:
            for b in head:
                try:
                    s.sendall(bytes([b]))
                except (OSError, ssl.SSLError):
                    closed_after = time.monotonic() - t0
                    break
                s.settimeout(0.25)
                try:
                    chunk = s.recv(4096)
                    if not chunk:
                        closed_after = time.monotonic() - t0
                        break
                except socket.timeout:
                    pass
                except (OSError, ssl.SSLError):
                    closed_after = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > 15:
                    break
        finally:
            s.close()
        self.assertIsNotNone(closed_after, "a trickled request head was never cut off")
        self.assertGreaterEqual(closed_after, 1.5)
        self.assertLessEqual(closed_after, 6.0)
        self.assert_alive()

    def test_stalled_tls_handshake_disconnected(self):
        s = self.srv.tcp_socket()
        try:
            data, how, elapsed = recv_until_closed(s, 15)
        finally:
            s.close()
        self.assertNotEqual(how, "timeout", "a connection without a TLS handshake stayed open")
        self.assertLessEqual(elapsed, 6.0)
        self.assertGreaterEqual(elapsed, 1.5)

    def test_idle_keep_alive_closed(self):
        s = self.srv.tls_socket()
        try:
            s.sendall(b"GET /fhir/R4/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = read_raw_response(s)
            self.assertEqual(r.status, 200)
            self.assertFalse(r.will_close)
            t0 = time.monotonic()
            data, how, _ = recv_until_closed(s, 15)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertNotEqual(how, "timeout", "an idle keep-alive connection was never closed")
        self.assertEqual(data, b"")
        self.assertGreaterEqual(elapsed, 2.5)
        self.assertLessEqual(elapsed, 7.0)

    def test_keep_alive_survives_short_pause(self):
        conn = self.srv.connection()
        try:
            self.assertStatus(self.srv.request("GET", f"{FHIR}/metadata", conn=conn), 200)
            sock = conn.sock
            time.sleep(1.0)  # Below the 3 s idle timeout (not a synchronization sleep).
            self.assertStatus(self.srv.request("GET", f"{FHIR}/metadata", conn=conn), 200)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()


class HostileInputTests(SharedServerTestCase):

    def test_plain_http_on_tls_port(self):
        for payload in (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                        b"GET /fhir/R4/metadata HTTP/1.0\r\n\r\n",
                        b"POST /fhir/R4/Patient HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"):
            with self.subTest(payload=payload[:20]):
                s = self.srv.tcp_socket()
                try:
                    s.sendall(payload)
                    data, how, _ = recv_until_closed(s, 15)
                finally:
                    s.close()
                self.assertNotEqual(how, "timeout")
                self.assertNotIn(b"HTTP/", data)
                if data:
                    self.assertEqual(data[0], 0x15, f"not a TLS alert: {data[:16]!r}")
        self.assert_alive()

    def test_garbage_after_handshake(self):
        payloads = [os.urandom(1024), os.urandom(64) + b"\r\n\r\n", b"\x00" * 512,
                    b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                    b"POST /fhir/R4/Patient HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"GET \x7f\x80 HTTP/1.1\r\n\r\n"]
        for p in payloads:
            with self.subTest(payload=p[:24]):
                s = self.srv.tls_socket()
                try:
                    s.sendall(p)
                    r = read_raw_response(s)
                    if r is not None:
                        self.assertIn(r.status, (400, 404, 405, 413, 431, 501), r)
                        self.assertNotEqual(r.status, 200)
                finally:
                    s.close()
        self.assert_alive()

    def test_header_too_large_is_431(self):
        for head in (f"GET {FHIR}/metadata HTTP/1.1\r\nHost: localhost\r\nX-Big: {'a' * 20000}\r\n\r\n",
                     f"GET {FHIR}/metadata?{'q=1&' * 5000} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                     "GET / HTTP/1.1\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(3000)) + "\r\n"):
            with self.subTest(size=len(head)):
                r = self.srv.raw_request(head.encode())
                self.assertIsNotNone(r, "connection closed without a 431")
                self.assertOperationOutcome(r, 431, code="too-long")
        self.assert_alive()

    def test_chunked_and_expect_continue_bodies(self):
        body = json.dumps(observation("chunked")).encode()
        head = (f"POST {FHIR}/Observation HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Bearer {self.srv.token}\r\nContent-Type: application/fhir+json\r\n")
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                          for i in range(0, len(body), 7))
        r = self.srv.raw_request((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n")
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["valueString"], "chunked")
        s = self.srv.tls_socket()
        try:
            s.sendall((head + f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode())
            interim = b""
            while b"\r\n\r\n" not in interim:
                chunk = s.recv(1024)
                self.assertTrue(chunk, "closed before 100 Continue")
                interim += chunk
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 "), interim)
            s.sendall(body)
            r = read_raw_response(s)
        finally:
            s.close()
        self.assertStatus(r, 201)

    def test_header_within_limit_is_accepted(self):
        r = self.srv.request("GET", f"{FHIR}/metadata", headers={"X-Fill": "b" * 12000})
        self.assertStatus(r, 200)


class MaxConnectionTests(KuraTestCase):

    def test_connections_over_limit_refused_then_service_resumes(self):
        srv = KuraServer(env={"KURA_SERVER_MAX_CONNECTIONS": "8"})
        self.addCleanup(srv.close)
        held = []
        try:
            for i in range(8):
                c = srv.connection()
                self.assertStatus(srv.request("GET", f"{FHIR}/metadata", conn=c), 200, f"conn {i}")
                held.append(c)
            refused = 0
            for i in range(4):
                try:
                    s = srv.tls_socket(timeout=10)
                except (ssl.SSLError, ConnectionResetError, ConnectionRefusedError, OSError,
                        socket.timeout):
                    refused += 1
                    continue
                try:
                    s.sendall(b"GET /fhir/R4/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    r = read_raw_response(s)
                    if r is None:
                        refused += 1
                    else:
                        self.fail(f"connection {9 + i} over the limit was served: {r!r}")
                except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
                    refused += 1
                finally:
                    s.close()
            self.assertEqual(refused, 4)
            # The held connections still work.
            for c in held:
                self.assertStatus(srv.request("GET", f"{FHIR}/metadata", conn=c), 200)
        finally:
            for c in held:
                c.close()
        # Service resumes once they are closed (bounded polling).
        deadline = time.monotonic() + 10
        ok = 0
        while time.monotonic() < deadline and ok < 8:
            try:
                conns = [srv.connection() for _ in range(8)]
                for c in conns:
                    self.assertStatus(srv.request("GET", f"{FHIR}/metadata", conn=c), 200)
                ok = 8
                for c in conns:
                    c.close()
            except (ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected, OSError):
                time.sleep(0.1)
        self.assertEqual(ok, 8, "service did not resume after the held connections closed")


class ConcurrencyTests(KuraTestCase):

    def test_32_concurrent_clients_mixed_reads_and_writes(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        created = []
        lock = threading.Lock()
        rounds = 8
        barrier = threading.Barrier(32, timeout=30)

        def client(n):
            conn = srv.connection()
            try:
                barrier.wait()
                for i in range(rounds):
                    val = f"c{n}-{i}-{uuid.uuid4().hex}"
                    r = srv.request("POST", f"{FHIR}/Observation", observation(val), conn=conn)
                    if r.status != 201:
                        raise AssertionError(f"create {r!r}")
                    rid = r.json()["id"]
                    g = srv.request("GET", f"{FHIR}/Observation/{rid}", conn=conn)
                    if g.status != 200 or g.json()["valueString"] != val:
                        raise AssertionError(f"read {g!r}")
                    u = srv.request("PUT", f"{FHIR}/Observation/{rid}",
                                    observation(val + "-u", id=rid), conn=conn)
                    if u.status != 200 or u.json()["meta"]["versionId"] != "2":
                        raise AssertionError(f"update {u!r}")
                    v = srv.request("GET", f"{FHIR}/Observation/{rid}/_history/1", conn=conn)
                    if v.status != 200 or v.json()["valueString"] != val:
                        raise AssertionError(f"vread {v!r}")
                    h = srv.request("GET", f"{FHIR}/Observation/{rid}/_history", conn=conn)
                    if h.status != 200 or len(h.json()["entry"]) != 2:
                        raise AssertionError(f"history {h!r}")
                    with lock:
                        created.append((rid, val))
            finally:
                conn.close()

        self.assertEqual([repr(e) for e in run_threads(client, 32, 120)], [])
        self.assertEqual(len(created), 32 * rounds)
        # Every version is in the system history exactly once.
        r = srv.request("GET", f"{FHIR}/Observation/_history?_count=1000")
        self.assertStatus(r, 200)
        keys = [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in r.json()["entry"]]
        self.assertEqual(len(keys), len(set(keys)))
        self.assertEqual(set(keys), {(rid, v) for rid, _ in created for v in ("1", "2")})
        self.assertTrue(srv.running())

    def test_concurrent_updates_of_one_resource(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        r = srv.request("PUT", f"{FHIR}/Observation/shared", observation("0", id="shared"))
        self.assertStatus(r, 201)
        statuses, lock = [], threading.Lock()

        def writer(n):
            conn = srv.connection()
            try:
                for i in range(5):
                    u = srv.request("PUT", f"{FHIR}/Observation/shared",
                                    observation(f"{n}-{i}", id="shared"), conn=conn)
                    with lock:
                        statuses.append(u.status)
            finally:
                conn.close()

        self.assertEqual([repr(e) for e in run_threads(writer, 8, 60)], [])
        self.assertEqual(len(statuses), 8 * 5)
        ok = statuses.count(200)
        self.assertGreaterEqual(ok, 1, statuses)
        self.assertTrue(set(statuses) <= {200, 409}, statuses)
        h = srv.request("GET", f"{FHIR}/Observation/shared/_history?_count=1000")
        self.assertStatus(h, 200)
        versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in h.json()["entry"])
        self.assertEqual(versions, list(range(1, ok + 2)), "versions are not dense and unique")


class CrashDurabilityTests(KuraTestCase):

    def test_sigkill_loses_no_acknowledged_write(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        acked, lock = {}, threading.Lock()
        stop = threading.Event()
        unexpected = []

        def writer(n):
            conn = srv.connection(timeout=15)
            i = 0
            while not stop.is_set():
                val = f"w{n}-{i}-{uuid.uuid4().hex}"
                i += 1
                try:
                    r = srv.request("POST", f"{FHIR}/Observation", observation(val), conn=conn,
                                    headers={"Prefer": "return=minimal"})
                except (OSError, http.client.HTTPException, ssl.SSLError):
                    return  # The server was killed.
                if r.status == 201:
                    rid = r.header("Location").split("/Observation/")[1].split("/")[0]
                    with lock:
                        acked[rid] = val
                else:
                    with lock:
                        unexpected.append(r.status)
                    return

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 300:
                    break
            time.sleep(0.01)
        rc = srv.kill9()  # Mid-stream: the writers are still going.
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertEqual(unexpected, [])
        self.assertGreaterEqual(len(acked), 300)
        srv.start()
        lost, wrong = [], []
        conn = srv.connection()
        for rid, val in acked.items():
            g = srv.request("GET", f"{FHIR}/Observation/{rid}", conn=conn)
            if g.status != 200:
                lost.append((rid, g.status))
            elif g.json().get("valueString") != val:
                wrong.append(rid)
        conn.close()
        self.assertEqual(lost, [], f"{len(lost)} acknowledged writes lost after SIGKILL")
        self.assertEqual(wrong, [])


class GracefulShutdownTests(KuraTestCase):

    def test_sigterm_completes_in_flight_requests(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        # 1. Requests whose body is half sent when SIGTERM arrives must still complete.
        partial = []
        for i in range(6):
            s = srv.tls_socket()
            val = f"inflight-{i}-{uuid.uuid4().hex}"
            body = json.dumps(observation(val)).encode()
            head = (f"POST {FHIR}/Observation HTTP/1.1\r\nHost: localhost\r\n"
                    f"Authorization: Bearer {srv.token}\r\nContent-Type: application/fhir+json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            s.sendall(head + body[: len(body) // 2])
            partial.append((s, body, val))
        # 2. Busy keep-alive clients.
        sent_before_signal_failed = []
        sig_time = [None]
        stop = threading.Event()
        lock = threading.Lock()
        acked = {}

        def client(n):
            conn = srv.connection(timeout=15)
            while not stop.is_set():
                val = f"busy{n}-{uuid.uuid4().hex}"
                sent = time.monotonic()
                try:
                    conn.request("POST", f"{FHIR}/Observation", body=json.dumps(observation(val)),
                                 headers={"Authorization": f"Bearer {srv.token}",
                                          "Content-Type": "application/fhir+json"})
                    sent = time.monotonic()
                    r = conn.getresponse()
                    data = r.read()
                    if r.status == 201:
                        with lock:
                            acked[json.loads(data)["id"]] = val
                    if r.will_close:
                        conn.close()
                        return
                except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                    with lock:
                        if sig_time[0] is None or sent < sig_time[0] - 0.05:
                            sent_before_signal_failed.append(f"{type(e).__name__}: {e}")
                    return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = len(srv.logs)
        sig_time[0] = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        self.assertIsNotNone(srv.wait_for_log(lambda r: r.get("event") == "shutdown_started", 10, start))
        # Finish the half-sent bodies after the drain started.
        for s, body, val in partial:
            s.sendall(body[len(body) // 2:])
        results = []
        for s, body, val in partial:
            r = read_raw_response(s)
            s.close()
            results.append((r, val))
        stop.set()
        for t in threads:
            t.join(30)
        rc = srv.wait_exit(40)
        self.assertEqual(rc, 0, "exit code after SIGTERM")
        for r, val in results:
            self.assertIsNotNone(r, "an in-flight request was dropped during shutdown")
            self.assertEqual(r.status, 201, r)
            self.assertTrue(r.will_close, "responses during a drain should close the connection")
        self.assertEqual(sent_before_signal_failed, [],
                         "requests sent before SIGTERM failed instead of completing")
        recs = srv.log_records()
        self.assertTrue(any(x.get("event") == "shutdown_complete" for x in recs))
        # Everything acknowledged is durable.
        srv.start()
        ids = [r.json()["id"] for r, _ in results] + list(acked)
        for (r, val) in results:
            rid = r.json()["id"]
            g = srv.request("GET", f"{FHIR}/Observation/{rid}")
            self.assertStatus(g, 200)
            self.assertEqual(g.json()["valueString"], val)
        for rid, val in acked.items():
            g = srv.request("GET", f"{FHIR}/Observation/{rid}")
            self.assertStatus(g, 200)
            self.assertEqual(g.json()["valueString"], val)
        self.assertEqual(len(set(ids)), len(ids))

    def test_sigterm_idle_server_exits_zero(self):
        srv = KuraServer()
        self.addCleanup(srv.close)
        c = srv.connection()
        self.assertStatus(srv.request("GET", f"{FHIR}/metadata", conn=c), 200)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.wait_exit(30)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 10, "an idle keep-alive connection delayed shutdown")
        c.close()
        events = [r.get("event") for r in srv.log_records()]
        self.assertIn("signal_received", events)
        self.assertIn("shutdown_complete", events)


if __name__ == "__main__":
    unittest.main()
