"""One Redis connection (SPEC §3.1, §3.6, §3.8), redis_node.c's job: the address forms
(a unix socket with a password, a redis:// URL with an ACL user, a db and timeouts), AUTH
failures, a Redis that goes away, freezes, drops the connection or answers nonsense, and
the back-off that keeps a worker from storming a dead Redis. Against real redis-servers,
through a real lighttpd spawning ustatus-fcgi and as plain CGI.
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

KEY = "node-key-8e02"
ERROR_100 = b'{"error":{"code":100,"message":"internal server error"}}'


def setUpModule():
    global REDIS, WEB, TMP, CONF, api
    TMP = h.make_tmpdir("ustatus-node-")
    REDIS = h.Redis().start()
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{
    address = "127.0.0.1:{REDIS.port}"
    prefix = "it"
    io_timeout = "1s"
    connect_timeout = "500ms"
  }}
}}
""")
    WEB = h.Lighttpd(CONF).start()
    api = at.Api(WEB.port, KEY)


def tearDownModule():
    h.tear_down_module(WEB, REDIS, dirs=[TMP])


key_of = at.key_of


def wait_success(user, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        r = api("update_user_status", {"users": [user]})
        if r.body == b'{"result":{}}':
            return
        assert time.monotonic() < deadline, f"ustatus did not reconnect: {r}"
        time.sleep(0.1)


class RedisOutage(unittest.TestCase):
    def test_redis_stopped_mid_run(self):
        self.assertEqual(api("update_user_status", {"users": ["o"]}).body, b'{"result":{}}')
        REDIS.stop()
        try:
            for _ in range(5):
                t0 = time.monotonic()
                r = api("get_user_status", {"users": ["o"]})
                elapsed = time.monotonic() - t0
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body,
                                 b'{"error":{"code":100,"message":"internal server error"}}')
                self.assertLess(elapsed, 1.0, "error 100 must come within io_timeout (1s)")
        finally:
            REDIS.start()
        wait_success("o")
        self.assertEqual(REDIS.command("EXISTS", key_of("o")), 1)
        self.assertIn("redis", WEB.error_log())

    def test_connection_dropped_between_requests_is_retried(self):
        # Reads, deletes and the max-merging updates are idempotent: after the connection
        # broke, the request reconnects and goes through, in the same worker.
        workers = h.child_pids(WEB.proc.pid)
        wait_success("k1")
        self.assertEqual(REDIS.command("CLIENT", "KILL", "TYPE", "normal"), 1)
        r = api("update_user_status", {"users": ["k2"]})
        self.assertEqual(r.body, b'{"result":{}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("k2")), 1)
        REDIS.command("CLIENT", "KILL", "TYPE", "normal")
        self.assertIn("active", api.statuses(["k2"])[0])
        self.assertEqual(h.child_pids(WEB.proc.pid), workers)

    def test_frozen_redis_answers_within_the_timeouts(self):
        wait_success("f")
        REDIS.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = api("get_user_status", {"users": ["f"]})
            elapsed = time.monotonic() - t0
        finally:
            REDIS.proc.send_signal(signal.SIGCONT)
        self.assertEqual((r.status, r.body), (200, ERROR_100))
        # io_timeout (1s) for the exchange, one reconnect (connect_timeout 500ms) and one
        # retry at most: never more.
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 3.0)
        wait_success("f")
        self.assertIn("active", api.statuses(["f"])[0])


class HealthBackOff(unittest.TestCase):
    def test_health_does_not_storm_a_dead_redis(self):
        """/health needs no key: it must respect the connection back-off (SPEC §3.6)."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        accepted = []

        def accept_and_close():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(time.monotonic())
                conn.close()  # a Redis that accepts and hangs up at once

        threading.Thread(target=accept_and_close, daemon=True).start()
        conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{listener.getsockname()[1]}" }} }}
""", "health.conf")
        with h.Lighttpd(conf, prefix="/health") as web:
            t0 = time.monotonic()
            for _ in range(40):
                r = h.http(web.port, "GET", "/health")
                self.assertEqual(r.status, 503)
            elapsed = time.monotonic() - t0
        listener.close()
        # Back-off: 100 ms, doubling, at most 1 s; a few connects per second, never one
        # per request.
        self.assertLessEqual(len(accepted), 2 + int(elapsed / 0.1), (len(accepted), elapsed))
        self.assertLess(len(accepted), 40)


class Addresses(unittest.TestCase):
    """SPEC §3.1 against a Redis that wants a password: a unix socket, and a redis:// URL
    with an ACL user, a db and timeouts; AUTH and SELECT on every new connection."""

    @classmethod
    def setUpClass(cls):
        cls.sock = os.path.join(h.make_tmpdir("ustatus-unix-"), "redis.sock")
        cls.redis = h.Redis(args=["--unixsocket", cls.sock, "--unixsocketperm", "700",
                                  "--requirepass", "default-pw",
                                  "--user", "alice", "on", ">alice-pw", "~*", "+@all"])
        # Redis.start() PINGs without a password: start by hand and wait for the port.
        cls.redis.proc = h.start_process(
            [h.which("redis-server"), "--port", str(cls.redis.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", cls.redis.dir] + cls.redis.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(cls.redis.port, proc=cls.redis.proc)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def cli(self, db, *args):
        r = subprocess.run([h.which("redis-cli"), "-p", str(self.redis.port), "-a",
                            "default-pw", "--no-auth-warning", "-n", str(db), *args],
                           capture_output=True, text=True, timeout=20)
        return r.stdout.strip()

    def conf(self, name, redis):
        return h.write_config(TMP, f'http_api {{ key = "{KEY}" }}\n'
                                   f'user_status {{ redis {{ {redis} prefix = "ad" }} }}\n', name)

    def update(self, conf, user):
        return h.cgi(conf, path="/api/update_user_status", body={"users": [user]},
                     headers={"X-API-Key": KEY})

    def test_unix_socket_with_password(self):
        c = self.conf("unix.conf", f'address = "unix://{self.sock}" password = "default-pw"')
        r = self.update(c, "u1")
        self.assertEqual(r.body, b'{"result":{}}', r.stderr)
        self.assertEqual(self.cli(0, "EXISTS", "ad.user_status.u1"), "1")

    def test_redis_url_acl_user_db_and_timeouts(self):
        c = self.conf("url.conf", f'address = "redis://alice:alice-pw@127.0.0.1:{self.redis.port}'
                                  f'/3?connect_timeout=500ms&io_timeout=2s"')
        r = self.update(c, "u2")
        self.assertEqual(r.body, b'{"result":{}}', r.stderr)
        self.assertEqual(self.cli(3, "EXISTS", "ad.user_status.u2"), "1")
        self.assertEqual(self.cli(0, "EXISTS", "ad.user_status.u2"), "0")
        # the section's user/password/db options do the same as the URL
        c = self.conf("opts.conf", f'address = "127.0.0.1:{self.redis.port}" user = "alice" '
                                   f'password = "alice-pw" db = 5')
        self.assertEqual(self.update(c, "u3").body, b'{"result":{}}')
        self.assertEqual(self.cli(5, "EXISTS", "ad.user_status.u3"), "1")

    def test_wrong_password_is_error_100_and_not_logged(self):
        c = self.conf("badpw.conf", f'address = "redis://alice:wrong-secret@127.0.0.1:'
                                    f'{self.redis.port}"')
        r = self.update(c, "u4")
        self.assertEqual(r.body, b'{"error":{"code":100,"message":"internal server error"}}')
        self.assertIn("AUTH failed", r.stderr)
        self.assertNotIn("wrong-secret", r.stderr)
        self.assertEqual(self.cli(0, "EXISTS", "ad.user_status.u4"), "0")


def fake_redis(reply):
    """A listener that answers every command with `reply` (raw RESP): a Redis gone mad."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                while conn.recv(65536):
                    conn.sendall(reply)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


class UntrustedReplies(unittest.TestCase):
    """SPEC §3.8: a reply larger than the request could need is a protocol error (error
    100, within the io_timeout), not an allocation, a hang or a crash."""

    def check_refused(self, reply, within=3.0):
        listener = fake_redis(reply)
        try:
            conf = h.write_config(TMP, f'http_api {{ key = "{KEY}" }}\n'
                                       f'user_status {{ redis {{ address = "127.0.0.1:'
                                       f'{listener.getsockname()[1]}" io_timeout = "1s" }} }}\n',
                                  "mad.conf")
            for method in ("update_user_status", "get_user_status"):
                t0 = time.monotonic()
                r = h.cgi(conf, path=f"/api/{method}", body={"users": ["m"]},
                          headers={"X-API-Key": KEY}, timeout=10)
                self.assertEqual((r.status, r.body), (200, ERROR_100), (reply, method))
                self.assertLess(time.monotonic() - t0, within, (reply, method))
        finally:
            listener.close()

    def test_impossible_lengths(self):
        for reply in (b"*9223372036854775807\r\n", b"*3\r\n$-5\r\n", b"$999999999999\r\n"):
            self.check_refused(reply)

    def test_array_header_of_millions(self):
        # One user asked for: an array of 2^31 - 1 (or 10^8) elements is no answer to it.
        for reply in (b"*2147483647\r\n", b"*100000000\r\n"):
            self.check_refused(reply)


if __name__ == "__main__":
    unittest.main(verbosity=2)
