"""The worker a web server spawns (fcgi/worker.c, SPEC §5): the FastCGI socket is fd 0, the
process serves requests one at a time and keeps serving (no process per request), a
SIGTERM lets the request in hand finish with its normal answer, an idle worker leaves at
once, FCGI_WEB_SERVER_ADDRS filters TCP peers. The worker is started here exactly as
lighttpd and spawn-fcgi start it (a listening socket as stdin) and driven by a FastCGI
client with no web server in between; then once under a real lighttpd.
"""
import os
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


def setUpModule():
    global REDIS, TMP, CONF
    REDIS = h.Redis().start()
    TMP = h.make_tmpdir("ustatus-worker-")
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "wk" io_timeout = "10s" }} }}
""")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[TMP])


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
            self.assertEqual(at.stored(REDIS, "wk.user_status.m19").keys(), {"active"})
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
            self.assertLessEqual(a[1], b[1], "the second request overtook the first")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
