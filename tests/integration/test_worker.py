"""The worker a web server spawns (fcgi/worker.c, SPEC §5): the FastCGI socket is fd 0, the
process serves requests one at a time and keeps serving (no process per request), a
SIGTERM lets the request in hand finish with its normal answer, an idle worker leaves at
once, FCGI_WEB_SERVER_ADDRS filters TCP peers. The worker is started here exactly as
lighttpd and spawn-fcgi start it (a listening socket as stdin) and driven by a FastCGI
client with no web server in between; then once under a real lighttpd.

Then the FastCGI edge cases (issue 12, SPEC §5), against a pool's socket with a raw
FastCGI client of this file that writes records as a hostile or broken peer would:
fcgi.request_timeout closing connections that do not deliver a request (idle new ones,
slow ones) while idle kept-alive connections stay open and hold no worker; a body shorter
than CONTENT_LENGTH refused unrun; CONTENT_LENGTH missing, negative, non-numeric, huge;
records of one byte; FCGI_ABORT_REQUEST; requests on a kept connection after each error.

And keep-alive without stalls (issue 13, SPEC §5): a real nginx running the shipped
deploy/nginx/ustatus.conf (fastcgi_keep_conn on, keepalive 32) in front of a pool at its
default size, 32 client connections at once: every request answered while nginx holds
more kept connections than there are workers.
"""
import http.client
import json
import os
import re
import struct
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "worker-key-6a1e"
AUTH = {"X-API-Key": KEY}


# fcgi.request_timeout of the pool tests: long enough for a sanitizer build to answer a
# request, short enough to wait for.
TIMEOUT_S = 3


def setUpModule():
    global REDIS, TMP, CONF, POOL_CONF
    REDIS = h.Redis().start()
    TMP = h.make_tmpdir("ustatus-worker-")
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "wk" io_timeout = "10s" }} }}
""")
    POOL_CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "wk" io_timeout = "10s" }} }}
fcgi {{ request_timeout = "{TIMEOUT_S}s" }}
""", "pool.conf")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[TMP])


def active_of(request, user):
    """Whether `user` has an `active` time, asked through the API with request(path, body,
    headers=...) (a worker's or a pool's): what a request that ran would have left."""
    r = request("/api/get_user_status", {"users": [user]}, headers=AUTH)
    assert r.status == 200, r
    return "active" in json.loads(r.body)["result"]["statuses"][0]


_n = [0]


class Worker:
    """ustatus-fcgi with a listening socket as fd 0 (unix, or TCP on 127.0.0.1), its stderr
    in a watched log."""

    def __init__(self, tcp=False, env=None):
        _n[0] += 1
        self.log_path = os.path.join(TMP, f"worker{_n[0]}.log")
        if tcp:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = self.sock.getsockname()
        else:
            self.address = os.path.join(TMP, f"worker{_n[0]}.sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.address)
        self.sock.listen(16)
        h.watch_log(self.log_path)
        with open(self.log_path, "ab") as log:
            self.proc = h.start_process([h.BIN, "-c", CONF], stdin=self.sock.fileno(),
                                        stdout=subprocess.DEVNULL, stderr=log,
                                        env=h.clean_env(env))
        self.sock.close()  # the worker holds the only copy now, as under a web server
        # serving: its signal handlers are in place (a sanitizer build starts slowly)
        s.wait_until(lambda: "serving FastCGI requests" in self.log()
                     or self.proc.poll() is not None, 10, "the worker to start")

    def request(self, path, body=b"", method="POST", headers=None, timeout=30):
        if isinstance(body, dict):
            import json
            body = json.dumps(body).encode()
        return s.fcgi_request(self.address, s.api_params(path, method, body, headers),
                              body, timeout)

    def log(self):
        return h.read_logs(TMP, os.path.basename(self.log_path))

    def stop(self):
        h.stop_process(self.proc)
        h.scan_logs(self.log_path)


def in_thread(fn):
    """Runs fn in a thread; returns (thread, out) where out gets [result, t_done]."""
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 - a failure is a result too
            out.append(e)
        out.append(time.monotonic())

    t = threading.Thread(target=run)
    t.start()
    return t, out


class FdZero(unittest.TestCase):
    def test_serves_many_requests_in_one_process(self):
        w = Worker()
        try:
            for i in range(20):
                r = w.request("/api/update_user_status", {"users": [f"m{i}"]}, headers=AUTH)
                self.assertEqual((r.status, r.body), (200, b'{"result":{}}'), i)
            r = w.request("/api/get_user_status", {"users": ["m19"]}, headers=AUTH)
            self.assertEqual(set(json.loads(r.body)["result"]["statuses"][0]),
                             {"user", "active"})
            self.assertIsNone(w.proc.poll())
            self.assertEqual(h.child_pids(w.proc.pid), [], "no process per request")
            self.assertIn("serving FastCGI requests on fd 0", w.log())
        finally:
            w.stop()

    def test_one_request_at_a_time(self):
        # With Redis frozen, a request that needs no Redis (an unknown method: 404) sent
        # second is answered only after the first one, which waits for Redis.
        w = Worker()
        try:
            REDIS.proc.send_signal(signal.SIGSTOP)
            try:
                ta, a = in_thread(lambda: w.request("/api/get_user_status", {"users": ["o"]},
                                                    headers=AUTH))
                time.sleep(0.3)
                tb, b = in_thread(lambda: w.request("/api/nope", {}, headers=AUTH))
                time.sleep(0.7)
                self.assertEqual((a, b), ([], []), "answered while Redis stood still")
            finally:
                REDIS.proc.send_signal(signal.SIGCONT)
            ta.join(20)
            tb.join(20)
            self.assertEqual(a[0].status, 200, a)
            self.assertIn(b'"statuses"', a[0].body)
            self.assertEqual(b[0].status, 404, b)
            # Both answers come within a millisecond once Redis runs again, and the two
            # client threads note their times as the scheduler lets them: a little slack.
            # An overtaking worker would have answered b while Redis stood still (above).
            self.assertLessEqual(a[1], b[1] + 0.05, "the second request overtook the first")
        finally:
            w.stop()

    def test_sigterm_finishes_the_request_in_hand(self):
        w = Worker()
        REDIS.proc.send_signal(signal.SIGSTOP)
        try:
            t, out = in_thread(lambda: w.request("/api/update_user_status",
                                                 {"users": ["term"]}, headers=AUTH))
            time.sleep(0.3)
            w.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(w.proc.poll(), "the worker left with a request in hand")
        finally:
            REDIS.proc.send_signal(signal.SIGCONT)
        t.join(20)
        self.assertIsInstance(out[0], h.Response, out)
        self.assertEqual((out[0].status, out[0].body), (200, b'{"result":{}}'))
        self.assertEqual(REDIS.cli("EXISTS", "wk.user_status.term"), "1")
        self.assertEqual(w.proc.wait(5), 0)
        w.stop()

    def test_idle_worker_leaves_at_once_on_sigterm(self):
        w = Worker()
        try:
            self.assertEqual(w.request("/health", method="GET").status, 200)
            t0 = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(5), 0)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            w.stop()

    def kept_connection(self, user):
        """A worker, and a connection to it kept after one answered request."""
        w = Worker()
        c = Raw(w.address)
        body = json.dumps({"users": [user]}).encode()
        r = c.request(post_params("/api/update_user_status", body), body)
        self.assertEqual(r.status, 200)
        return w, c, body

    def test_sigusr2_drains_kept_connections(self):
        # The pool's way to replace a worker (reload): kept connections go on being
        # served while the web server uses them, and are closed once idle (250 ms), so
        # that none is closed under a request the web server is sending (SPEC §5).
        w, c, body = self.kept_connection("drain1")
        try:
            t0 = time.monotonic()
            w.proc.send_signal(signal.SIGUSR2)
            # in use (a request every 30 ms, well inside the 250 ms): served on, past
            # the 250 ms a drain would have taken had it closed the connection idle
            while time.monotonic() - t0 < 0.5:
                time.sleep(0.03)
                r = c.request(post_params("/api/get_user_status", body), body)
                self.assertEqual(r.status, 200)
            self.assertTrue(c.closed_within(2.0), "idle, it must be closed")
            self.assertEqual(w.proc.wait(5), 0)
            self.assertGreater(time.monotonic() - t0, 0.5 + 0.25)
            self.assertIn("draining 1 FastCGI connections", w.log())
        finally:
            c.close()
            w.stop()

    def test_sigterm_ends_a_drain(self):
        # A connection in constant use is served on during the drain (nginx closes it
        # after keepalive_requests); a SIGTERM, the whole service stopping, ends it.
        w = Worker()
        c = Raw(w.address)
        served, stop = [], threading.Event()

        def busy():
            body = b'{"users":["drain2"]}'
            try:
                while not stop.is_set():
                    r = c.request(post_params("/api/get_user_status", body), body)
                    served.append((time.monotonic(), r.status))
            except (ConnectionError, OSError):
                pass
        th = threading.Thread(target=busy)
        try:
            th.start()
            s.wait_until(lambda: len(served) >= 10, 10, "requests under way")
            t0 = time.monotonic()
            w.proc.send_signal(signal.SIGUSR2)
            time.sleep(1.5)
            self.assertIsNone(w.proc.poll(), "a connection in use is drained, not cut")
            after = [st for at, st in served if at > t0 + 0.5]
            self.assertTrue(after and set(after) == {200}, "served while draining")
            t1 = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(5), 0)
            self.assertLess(time.monotonic() - t1, 1.5)
            self.assertIn("SIGTERM during the drain", w.log())
        finally:
            stop.set()
            c.close()
            th.join(10)
            w.stop()

    def test_sigterm_closes_kept_connections_at_once(self):
        w, c, _ = self.kept_connection("term1")
        try:
            t0 = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            self.assertTrue(c.closed_within(1.0))
            self.assertEqual(w.proc.wait(5), 0)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            c.close()
            w.stop()

    def test_sigterm_while_busy_on_kept_connections(self):
        # ppoll() takes a pending SIGTERM only when nothing is ready: a worker whose kept
        # connections always had a request ready must still leave (before: it spun).
        w = Worker()
        stop, answered, errors = threading.Event(), [], []

        def client(i):
            try:
                c = Raw(w.address)
            except OSError as e:
                errors.append(e)
                return
            try:
                while not stop.is_set():
                    body = json.dumps({"users": [f"busy{i}"]}).encode()
                    r = c.request(post_params("/api/update_user_status", body), body)
                    if r.status != 200:
                        errors.append(r)
                    answered.append(1)
            except (ConnectionError, OSError):
                pass  # closed by the leaving worker between two requests
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        try:
            for t in threads:
                t.start()
            s.wait_until(lambda: len(answered) >= 30, 20, "requests under way")
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(10), 0)
        finally:
            stop.set()
            for t in threads:
                t.join(20)
            w.stop()
        self.assertEqual(errors, [])

    def test_web_server_addrs_filters_tcp_peers(self):
        w = Worker(tcp=True, env={"FCGI_WEB_SERVER_ADDRS": "127.0.0.2, ::1"})
        try:
            with self.assertRaises((ConnectionError, OSError)):
                w.request("/health", method="GET", timeout=5)
            s.wait_until(lambda: "connection from 127.0.0.1 refused" in w.log(), 5,
                         "the refusal in the log")
            self.assertIsNone(w.proc.poll(), "a refused peer does not end the worker")
        finally:
            w.stop()
        w = Worker(tcp=True, env={"FCGI_WEB_SERVER_ADDRS": "127.0.0.2,127.0.0.1"})
        try:
            self.assertEqual(w.request("/health", method="GET").status, 200)
        finally:
            w.stop()


class UnderLighttpd(unittest.TestCase):
    def test_lighttpd_spawned_worker(self):
        web = h.Lighttpd(CONF, procs=1).start()
        try:
            api = at.Api(web.port, KEY)
            self.assertTrue(at.ok(api("update_user_status", {"users": ["l0"]})))
            workers = h.child_pids(web.proc.pid)
            self.assertEqual(len(workers), 1)
            # its fd 0 is the socket lighttpd made for it
            self.assertTrue(os.readlink(f"/proc/{workers[0]}/fd/0").startswith("socket:"))
            for i in range(30):
                self.assertTrue(at.ok(api("update_user_status", {"users": [f"l{i}"]})), i)
            self.assertEqual(h.child_pids(web.proc.pid), workers, "one process throughout")
        finally:
            web.stop()
        s.wait_until(lambda: not s.alive(workers[0]), 5, "the worker to exit with lighttpd")


# ---- a raw FastCGI client: records exactly as a test wants them ----

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6


def record(rtype, content=b"", rid=1):
    assert len(content) <= 65535
    pad = (8 - len(content) % 8) % 8
    return struct.pack("!BBHHBx", 1, rtype, rid, len(content), pad) + content + b"\0" * pad


def stream(rtype, data, chunk=65535, rid=1):
    """data in records of at most `chunk` bytes, then the empty record that ends it."""
    return b"".join(record(rtype, data[i:i + chunk], rid)
                    for i in range(0, len(data), chunk)) + record(rtype, b"", rid)


def name_values(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)
        out += k + v
    return out


def begin(keep=True, rid=1):
    return record(BEGIN, struct.pack("!HB5x", 1, 1 if keep else 0), rid)


def post_params(path, body, content_length="auto", headers=AUTH):
    """The parameters of a POST; content_length "auto" = the body's length, None = absent."""
    p = s.api_params(path, "POST", body, headers)
    if content_length is None:
        del p["CONTENT_LENGTH"]
    elif content_length != "auto":
        p["CONTENT_LENGTH"] = content_length
    return p


def whole_request(params, body=b"", keep=True, chunk=65535):
    return (begin(keep) + stream(PARAMS, name_values(params), chunk) +
            stream(STDIN, body, chunk))


class Raw:
    """One connection to a FastCGI socket, written to record by record."""

    def __init__(self, address, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)

    def send(self, data):
        self.sock.sendall(data)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the FastCGI server")
            buf += chunk
        return buf

    def response(self):
        """The response to the request sent, up to its FCGI_END_REQUEST."""
        out = b""
        while True:
            _v, rtype, _rid, clen, plen = struct.unpack("!BBHHBx", self._exact(8))
            content = self._exact(clen + plen)[:clen]
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                return s.parse_cgi_response(out)

    def request(self, params, body=b"", chunk=65535):
        self.send(whole_request(params, body, True, chunk))
        return self.response()

    def closed_within(self, seconds):
        """True when the server closes the connection within `seconds` (whatever it sent
        before); False when it is still open then."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                if self.sock.recv(65536) == b"":
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True

    def still_open(self):
        return not self.closed_within(0.05)

    def close(self):
        self.sock.close()


def pool_up(workers=2):
    pool = s.Pool(POOL_CONF, workers=workers).start()
    # warm: each worker built its app and answered once (a sanitizer build starts slowly)
    for _ in range(4):
        assert pool.request("/health", method="GET").status == 200
    return pool


class PoolCase(unittest.TestCase):
    """Tests against one pool (2 workers, pool.conf) shared by the class."""

    @classmethod
    def setUpClass(cls):
        cls.pool = pool_up()

    @classmethod
    def tearDownClass(cls):
        cls.pool.stop()


class RequestTimeout(PoolCase):
    """fcgi.request_timeout, and connections that hold no worker (SPEC §5)."""

    def get_ok(self):
        r = self.pool.request("/api/get_user_status", {"users": ["x"]}, headers=AUTH,
                              timeout=TIMEOUT_S)
        self.assertEqual(r.status, 200, r)

    def test_new_connections_that_send_nothing_hold_no_worker_and_are_closed(self):
        # Before: two such connections blocked a 2-worker pool until they closed.
        idle = [Raw(self.pool.address) for _ in range(6)]
        try:
            time.sleep(0.3)
            self.get_ok()
            self.assertTrue(all(c.still_open() for c in idle),
                            "answered only once the idle connections were closed")
            for c in idle:
                self.assertTrue(c.closed_within(TIMEOUT_S + 5), "an idle connection kept")
            self.pool.wait_log(r"sent no request within fcgi\.request_timeout \(3000 ms\)")
            self.get_ok()
        finally:
            for c in idle:
                c.close()

    def test_idle_kept_connections_hold_no_worker_and_stay_open(self):
        kept = [Raw(self.pool.address) for _ in range(6)]
        try:
            for i, c in enumerate(kept):
                body = json.dumps({"users": [f"kept{i}"]}).encode()
                r = c.request(post_params("/api/update_user_status", body), body)
                self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            # six connections kept by the "web server", idle, on two workers:
            self.get_ok()
            # an idle kept connection is not closed by the clock (the web server may pick
            # it for a request at any moment) and serves its next request
            time.sleep(TIMEOUT_S + 1)
            for c in kept:
                body = b'{"users":["kept0"]}'
                r = c.request(post_params("/api/get_user_status", body), body)
                self.assertEqual(r.status, 200, r)
                self.assertIn(b'"active"', r.body)
        finally:
            for c in kept:
                c.close()

    def test_slow_request_is_cut_and_not_run(self):
        body = b'{"users":["slow1"]}'
        c = Raw(self.pool.address)
        try:
            c.send(begin() + stream(PARAMS, name_values(post_params(
                "/api/update_user_status", body))))
            t0 = time.monotonic()
            closed = False
            # one byte of the body a second, never the whole body within the timeout
            for i in range(len(body)):
                try:
                    c.send(record(STDIN, body[i:i + 1]))
                except OSError:
                    closed = True
                    break
                if c.closed_within(1.0):
                    closed = True
                    break
            self.assertTrue(closed, "a request that drips was never cut")
            self.assertLess(time.monotonic() - t0, TIMEOUT_S + 5)
        finally:
            c.close()
        self.assertFalse(active_of(self.pool.request, "slow1"), "a cut request ran")
        self.pool.wait_log(r"did not deliver its request .*within fcgi\.request_timeout")

    def test_request_stalled_in_its_params_is_cut(self):
        c = Raw(self.pool.address)
        try:
            params = name_values(post_params("/api/update_user_status", b"{}"))
            c.send(begin() + record(PARAMS, params[:10]))
            self.get_ok()  # it holds no worker that others need...
            self.assertTrue(c.closed_within(TIMEOUT_S + 5), "...and is closed in time")
        finally:
            c.close()


class NoHeadOfLine(PoolCase):
    """A worker that has just accepted a connection takes no second one before the first
    has delivered its request (FRESH_GRACE_MS): the second goes to an idle worker rather
    than wait behind a first request that may take long."""

    def test_second_connection_is_not_queued_behind_a_slow_request(self):
        slow_body = b'{"users":["hol1"]}'
        refused = b'{"users":["hol2"]}'
        # Web servers connect, then write: two connections arrive together, then their
        # requests. Before, the worker that took the first often took the second as
        # well, and served it only after the first, stuck on a stopped Redis.
        for attempt in range(6):
            a, b = Raw(self.pool.address), Raw(self.pool.address)
            os.kill(REDIS.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(0.1)
                a.send(whole_request(post_params("/api/get_user_status", slow_body),
                                     slow_body))
                time.sleep(0.2)
                t0 = time.monotonic()
                # refused before any Redis work: only a worker that is free can answer
                r = b.request(post_params("/api/get_user_status", refused,
                                          headers={"X-API-Key": "wrong"}), refused)
                took = time.monotonic() - t0
                self.assertEqual(r.status, 401, r)
                self.assertLess(took, 1.0, f"attempt {attempt}: waited behind the slow one")
            finally:
                os.kill(REDIS.proc.pid, signal.SIGCONT)
            self.assertEqual(a.response().status, 200)
            a.close()
            b.close()


class Edges(PoolCase):
    """CONTENT_LENGTH, odd record shapes and aborts, each followed by a request on the same
    kept connection (SPEC §1.2, §5)."""

    def next_request_works(self, c, user):
        body = json.dumps({"users": [user]}).encode()
        r = c.request(post_params("/api/update_user_status", body), body)
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        self.assertTrue(active_of(self.pool.request, user))

    def test_body_shorter_than_content_length_is_400_and_not_run(self):
        # Before: CONTENT_LENGTH 1000 and {"users":["short1"]} wrote the key.
        c = Raw(self.pool.address)
        try:
            body = b'{"users":["short1"]}'
            r = c.request(post_params("/api/update_user_status", body, "1000"), body)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(json.loads(r.body)["error"]["code"], 107)
            self.assertIn(b"CONTENT_LENGTH", r.body)
            self.assertFalse(active_of(self.pool.request, "short1"))
            self.next_request_works(c, "short-after")
        finally:
            c.close()

    def test_content_length_forms(self):
        c = Raw(self.pool.address)
        body = b'{"users":["cl1"]}'
        try:
            # absent: the body is read to the end of its stream
            r = c.request(post_params("/api/update_user_status", body, None), body)
            self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            self.assertTrue(active_of(self.pool.request, "cl1"))
            for bad in ("-1", "abc", "12x", "+17", " 17", "0x11", "1.5"):
                r = c.request(post_params("/api/update_user_status", body, bad), body)
                self.assertEqual(r.status, 400, (bad, r))
                self.assertEqual(json.loads(r.body)["error"]["code"], 107, bad)
                self.next_request_works(c, f"cl-after-{bad}")
            for huge in ("1048577", "99999999999999999999999999999999"):
                r = c.request(post_params("/api/update_user_status", body, huge), body)
                self.assertEqual((r.status, r.body), (413, b""), huge)
                self.next_request_works(c, f"cl-after-{huge[:4]}")
            self.assertFalse(active_of(self.pool.request, "cl2"))
        finally:
            c.close()

    def test_large_body_refused_unread_then_next_request(self):
        # 413 without reading: the rest of that request's stdin is read away, so the next
        # request on the kept connection starts at its own first record.
        c = Raw(self.pool.address, timeout=30)
        try:
            body = b'{"users":["big"],"pad":"' + b"x" * (2 << 20) + b'"}'
            r = c.request(post_params("/api/update_user_status", body), body)
            self.assertEqual((r.status, r.body), (413, b""))
            self.next_request_works(c, "after-413")
            r = c.request(post_params("/api/nope", b"{}"), b"{}")
            self.assertEqual(r.status, 404)
            r = c.request(dict(s.api_params("/health", "GET"), CONTENT_LENGTH="5"), b"hello")
            self.assertEqual(r.status, 200)  # a GET's body is not read, and read away
            r = c.request(post_params("/api/update_user_status", b"{not json"), b"{not json")
            self.assertEqual(r.status, 400)
            self.next_request_works(c, "after-400")
            self.assertFalse(active_of(self.pool.request, "big"))
        finally:
            c.close()

    def test_body_and_params_in_records_of_one_byte(self):
        c = Raw(self.pool.address)
        try:
            body = json.dumps({"users": ["tiny1", "tiny2"], "state": "away"}).encode()
            r = c.request(post_params("/api/update_user_status", body), body, chunk=1)
            self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            body = b'{"users":["tiny2"]}'
            r = c.request(post_params("/api/get_user_status", body), body, chunk=1)
            st = json.loads(r.body)["result"]["statuses"][0]
            self.assertEqual(st["state"], "away")
            self.next_request_works(c, "tiny-after")
        finally:
            c.close()

    def test_abort_request_runs_nothing(self):
        c = Raw(self.pool.address)
        try:
            body = b'{"users":["aborted1"]}'
            c.send(begin() + stream(PARAMS, name_values(post_params(
                "/api/update_user_status", body))) + record(STDIN, body[:8]))
            time.sleep(0.2)
            c.send(record(ABORT))
            # the request is dropped and its connection closed (libfcgi closes a
            # connection whose stream broke); nothing is run
            self.assertTrue(c.closed_within(TIMEOUT_S + 5))
        finally:
            c.close()
        self.assertFalse(active_of(self.pool.request, "aborted1"))
        # an abort before any body byte
        c = Raw(self.pool.address)
        try:
            c.send(begin() + stream(PARAMS, name_values(post_params(
                "/api/update_user_status", b'{"users":["aborted2"]}'))) + record(ABORT))
            self.assertTrue(c.closed_within(TIMEOUT_S + 5))
        finally:
            c.close()
        self.assertFalse(active_of(self.pool.request, "aborted2"))
        c = Raw(self.pool.address)
        try:
            self.next_request_works(c, "after-abort")
        finally:
            c.close()

    def test_peer_gone_mid_body_runs_nothing(self):
        c = Raw(self.pool.address)
        body = b'{"users":["gone1"]}'
        c.send(begin() + stream(PARAMS, name_values(post_params(
            "/api/update_user_status", body))) + record(STDIN, body[:-2]))
        time.sleep(0.2)
        c.close()
        time.sleep(0.3)
        self.assertFalse(active_of(self.pool.request, "gone1"))


class KeepAliveUnderNginx(unittest.TestCase):
    """The shipped nginx example keeps its connections to the pool (fastcgi_keep_conn on,
    keepalive 32): with more kept connections than workers, no request waits on another
    connection's idleness (before: each kept connection pinned a worker, and requests
    waited in the backlog until nginx dropped an idle one)."""

    CLIENTS = 32
    PER_CLIENT = 40

    def test_shipped_config_keeps_connections(self):
        with open(os.path.join(h.SRCDIR, "deploy", "nginx", "ustatus.conf")) as f:
            conf = f.read()
        self.assertRegex(conf, r"(?m)^\s*keepalive\s+32;")
        self.assertRegex(conf, r"(?m)^\s*fastcgi_keep_conn\s+on;")

    def test_32_connections_at_once_all_answered(self):
        # the default size; nginx's workers (www-data when root) connect to the socket
        pool = s.Pool(POOL_CONF, workers=0, args=["--socket-mode", "0666"]).start(
            wait_workers=False)
        nginx = None
        try:
            s.wait_until(lambda: len(pool.workers()) == os.cpu_count(), 10,
                         f"{os.cpu_count()} workers")
            nginx = s.Nginx(pool.address).start()
            r = at.Api(nginx.port, KEY)("update_user_status", {"users": ["ka"]})
            self.assertTrue(at.ok(r), (r, nginx.error_log()))
            failures, done = [], []

            def client():
                conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
                try:
                    for _ in range(self.PER_CLIENT):
                        conn.request("POST", "/api/get_user_status", b'{"users":["ka"]}',
                                     {"X-API-Key": KEY, "Content-Type": "application/json"})
                        r = conn.getresponse()
                        body = r.read()
                        if r.status != 200 or b'"active"' not in body:
                            failures.append((r.status, body))
                        done.append(1)
                except Exception as e:  # noqa: BLE001 - a timeout is a failure too
                    failures.append(e)
                finally:
                    conn.close()

            def burst():
                threads = [threading.Thread(target=client) for _ in range(self.CLIENTS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(120)

            burst()
            self.assertEqual(failures, [])
            self.assertEqual(len(done), self.CLIENTS * self.PER_CLIENT)
            # nginx now holds idle connections to the pool, more than there are workers
            held = sum(self.pool_connections(pool, w) for w in pool.workers())
            self.assertGreater(held, os.cpu_count(), "nginx kept no more connections than "
                               "there are workers: the test proves nothing")
            # ...and a second burst while they are held is answered in full
            burst()
            self.assertEqual(failures, [])
            self.assertEqual(len(done), 2 * self.CLIENTS * self.PER_CLIENT)
            self.assertNotIn("upstream", nginx.error_log())
        finally:
            if nginx:
                nginx.stop()
            pool.stop()

    @staticmethod
    def pool_connections(pool, pid):
        """Connections a worker holds on the pool's unix socket (accepted ones)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(m.group(1))
        n = 0
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                # Num RefCount Protocol Flags Type St Inode [Path]; St 03 = connected
                if parts[6] in inodes and parts[5] == "03" and len(parts) > 7 \
                        and parts[7] == pool.address:
                    n += 1
        return n

class MemoryBound(unittest.TestCase):
    """The worst requests inside the limits (issue 12 item 5) keep a worker's peak RSS
    (VmHWM) within 32 MiB: a 1 MiB body in each form (10 000 users in one call, a batch of
    1000 commands, a legacy body of 1000 lines, a legacy body of 1000 lines of JSON values),
    and a get_user_status of 10 000 users whose statuses all carry a 256-byte state.

    What is measured depends on the build under test (USTATUS_BIN):
    - a build without AddressSanitizer: the worker's VmHWM itself, <= 32 MiB;
    - a sanitizer build (make check's): ASan's shadow memory and its redzones around
      every allocation inflate RSS (a worker starts at ~19 MiB instead of ~5 MiB, and a
      request's many small json-c objects cost ~1.5x), so the bound is on the growth:
      VmHWM after the requests minus VmHWM after a warm-up <= 32 MiB, with ASan's
      quarantine of freed memory off (quarantine_size_mb=0), as it would otherwise hold
      every freed byte. A release worker measured 4.8 MiB warm and 20.7 MiB at its peak
      over these requests; the sanitizer build 19.1 MiB warm and +23.6 MiB. Both bounds
      fail on what issue 12 found (46 MiB for one legacy body)."""

    LIMIT_KB = 32 * 1024

    def vm(self, pid, field):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} for {pid}")

    def sanitized(self, pid):
        with open(f"/proc/{pid}/maps") as f:
            return "libasan" in f.read()

    def test_worst_requests_peak_rss(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        w = Worker(env={"ASAN_OPTIONS": ":".join(
            x for x in (asan, "quarantine_size_mb=0", "thread_local_quarantine_size_kb=0") if x)})
        try:
            pid = w.proc.pid

            def post(path, body):
                b = body if isinstance(body, bytes) else json.dumps(
                    body, separators=(",", ":")).encode()
                self.assertLessEqual(len(b), 1 << 20, path)
                r = w.request(path, b, headers=AUTH, timeout=120)
                self.assertEqual(r.status, 200, (path, r.body[:300]))
                return r

            for _ in range(3):
                post("/api/get_user_status", {"users": ["warm"]})
            warm = self.vm(pid, "VmHWM")
            users = [f"mem{i:05d}-" + "x" * 88 for i in range(10000)]
            r = post("/api/update_user_status", {"users": users})
            self.assertEqual(r.body, b'{"result":{}}')
            for k in range(4):
                post("/api/update_user_status",
                     {"users": users[k * 2500:(k + 1) * 2500], "state": "s" * 256})
            r = post("/api/get_user_status", {"users": users})
            st = json.loads(r.body)["result"]["statuses"]
            self.assertEqual(len(st), 10000)
            self.assertTrue(all(x["state"] == "s" * 256 for x in st))
            r = post("/api/batch", {"commands": [
                {"get_user_status": {"users": users[i * 10:(i + 1) * 10]}}
                for i in range(1000)]})
            self.assertEqual(len(json.loads(r.body)["replies"]), 1000)
            lines = [json.dumps({"id": i, "method": "update_user_status",
                                 "params": {"users": [u[:85] for u in users[i * 10:(i + 1) * 10]],
                                            "state": "t" * 10}}, separators=(",", ":"))
                     for i in range(1000)]
            r = post("/api", "\n".join(lines).encode())
            self.assertEqual(r.body.count(b'"result":{}'), 1000)
            # 1000 lines of 482 JSON values each: the bound of one request holds for all
            lines = [json.dumps({"id": i, "method": "get_user_status",
                                 "params": {"users": [], "x": [0] * 480}},
                                separators=(",", ":")) for i in range(1000)]
            r = post("/api", "\n".join(lines).encode())
            peak = self.vm(pid, "VmHWM")
            if self.sanitized(pid):
                self.assertLessEqual(peak - warm, self.LIMIT_KB,
                                     f"VmHWM grew from {warm} kB to {peak} kB")
            else:
                self.assertLessEqual(peak, self.LIMIT_KB, f"VmHWM {peak} kB")
            self.assertIn(b"JSON values in this request", r.body[-200:], "no line refused")
        finally:
            w.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
