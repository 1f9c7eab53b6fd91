"""One transport connection (redis_conn.c; SPEC §3.7, §3.8): TLS to a real TLS-only
redis-server (direct and rediss://, mutual TLS, the failures: wrong CA, expired
certificate, wrong host name, missing client certificate), and a Redis that is not trusted
blindly, played by the fake Redis of fake_redis.py in front of a real one: a huge array
header, a huge bulk length, nested headers, a valid reply dripped a byte at a time, a reply
nobody asked for, a reply of the wrong type. Each is answered error 100 within io_timeout +
0.5 s, the worker stays small (VmHWM), and its next request, once the fake relays to the
real Redis again, is correct. Also CLIENT SETNAME (redis.client_name) on every new
connection, and the bound on the connections one request may open on a Redis Cluster whose
slot map names a thousand nodes.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import certs as tls  # noqa: E402
import fake_redis  # noqa: E402
import harness as h  # noqa: E402
from test_redis_cluster import slot_of  # noqa: E402

KEY = "conn-key-5a17"
ERROR_100 = b'{"error":{"code":100,"message":"internal server error"}}'
IO_TIMEOUT_S = 1.0
PEAK_RSS_LIMIT_KB = 32 * 1024


def setUpModule():
    global TMP, REDIS, CERTS
    TMP = h.make_tmpdir("ustatus-conn-")
    REDIS = h.Redis().start()
    CERTS = tls.Certs()


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[TMP])


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def only_worker(web):
    pids = h.child_pids(web.proc.pid)
    assert len(pids) == 1, pids
    return pids[0]


class UntrustedRedis(unittest.TestCase):
    """SPEC §3.8 against the fake Redis, through one persistent worker under lighttpd."""

    @classmethod
    def setUpClass(cls):
        cls.fake = fake_redis.FakeRedis(upstream_port=REDIS.port).start()
        conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{ address = "127.0.0.1:{cls.fake.port}" prefix = "cn" io_timeout = "1s"
          connect_timeout = "500ms" }}
}}
""", "untrusted.conf")
        cls.web = h.Lighttpd(conf).start()
        cls.api = at.Api(cls.web.port, KEY)

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.fake.stop()

    def check_case(self, mode, reason):
        api = self.api
        self.fake.mode = "proxy"
        warm = at.Unique.user("warm")
        deadline = time.monotonic() + 5
        while api("update_user_status", {"users": [warm]}).body != b'{"result":{}}':
            self.assertLess(time.monotonic(), deadline, "no good request before the case")
            time.sleep(0.1)
        pid = only_worker(self.web)
        for method in ("update_user_status", "get_user_status"):
            with self.subTest(mode=mode, method=method):
                self.fake.mode = mode
                log_before = len(self.web.error_log())
                t0 = time.monotonic()
                r = api(method, {"users": [at.Unique.user(mode)]}, timeout=30)
                elapsed = time.monotonic() - t0
                self.fake.mode = "proxy"
                self.assertEqual((r.status, r.body), (200, ERROR_100))
                self.assertLess(elapsed, IO_TIMEOUT_S + 0.5, f"{mode}: {elapsed:.2f}s")
                print(f"\n  {mode} {method}: error 100 after {elapsed:.2f}s", file=sys.stderr)
                self.assertEqual(only_worker(self.web), pid, "the worker must survive")
                self.assertLess(vm_hwm_kb(pid), PEAK_RSS_LIMIT_KB, mode)
                logged = self.web.error_log()[log_before:]
                self.assertRegex(logged, reason)
                # the back-off after the failure is 100 ms; then the same worker, on the
                # same address, meets a correct Redis and must be correct
                time.sleep(0.3)
                u = at.Unique.user("after-" + mode)
                self.assertEqual(api("update_user_status", {"users": [u], "state": "ok"}).body,
                                 b'{"result":{}}')
                self.assertEqual(REDIS.command("EXISTS", at.key_of(u, "cn")), 1)
                st = api.statuses([u])
                self.assertEqual(st[0].get("state"), "ok", st)
                self.assertEqual(only_worker(self.web), pid)
        self.assertLess(vm_hwm_kb(pid), PEAK_RSS_LIMIT_KB)
        print(f"\n  {mode}: worker VmHWM {vm_hwm_kb(pid)} kB", file=sys.stderr)

    def test_huge_array_header(self):
        self.check_case("huge_array", r"refused (an array of 50000000 elements|unexpected reply: an array)")

    def test_huge_bulk_length(self):
        self.check_case("huge_bulk", r"refused (a string over|a string of)")

    def test_nested_headers(self):
        self.check_case("nested", r"refused (an array|arrays nested|unexpected reply)")

    def test_drip(self):
        self.check_case("drip", r"timed out: reply timed out")

    def test_extra_reply(self):
        self.check_case("extra", r"sent data nobody asked for")

    def test_reply_to_another_command(self):
        self.check_case("wrong_type", r"refused unexpected reply: an? (integer|bulk string)")


class ClientName(unittest.TestCase):
    def test_client_setname_on_every_new_connection(self):
        name = "ustatus-conn-test"
        conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "cn"
                      client_name = "{name}" }} }}
""", "name.conf")
        with h.Lighttpd(conf) as web:
            api = at.Api(web.port, KEY)
            self.assertTrue(at.ok(api("update_user_status", {"users": ["named"]})))
            self.assertIn(f"name={name}", REDIS.cli("CLIENT", "LIST"))
            # a new connection (the old one killed) is named again
            REDIS.cli("CLIENT", "KILL", "TYPE", "normal")
            self.assertTrue(at.ok(api("update_user_status", {"users": ["named"]})))
            self.assertIn(f"name={name}", REDIS.cli("CLIENT", "LIST"))


class TlsDirect(unittest.TestCase):
    """A TLS-only redis-server: the API over TLS, and every kind of TLS failure."""

    @classmethod
    def setUpClass(cls):
        cls.redis = tls.TlsRedis(CERTS).start()
        cls.strict = tls.TlsRedis(CERTS, auth_clients="yes").start()
        cls.expired = tls.TlsRedis(CERTS, cert="expired.crt").start()

    @classmethod
    def tearDownClass(cls):
        for r in (cls.redis, cls.strict, cls.expired):
            r.stop()

    def exists(self, key):
        return self.redis.command("EXISTS", key)

    def test_api_over_tls_with_client_certificate(self):
        conf = tls.json_config(TMP, {"address": f"127.0.0.1:{self.redis.port}", "prefix": "tl",
                                     "client_name": "ustatus-tls",
                                     "tls": CERTS.tls_object()}, "tls.json", KEY)
        with h.Lighttpd(conf) as web:
            api = at.Api(web.port, KEY)
            tls.check_api(self, api, self.exists, "tl", "tls")
            self.assertIn("name=ustatus-tls", self.redis.cli("CLIENT", "LIST"))
            self.assertNotIn("error", web.error_log())

    def test_rediss_address_turns_tls_on(self):
        # no "enabled": the scheme alone asks for TLS; the CA comes from the tls object;
        # "localhost" is checked against the certificate's DNS name
        t = CERTS.tls_object()
        del t["enabled"]
        conf = tls.json_config(TMP, {"address": f"rediss://localhost:{self.redis.port}/2",
                                     "prefix": "tl", "tls": t}, "rediss.json", KEY)
        with h.Lighttpd(conf) as web:
            api = at.Api(web.port, KEY)
            tls.check_api(self, api, lambda k: int(self.redis.cli("-n", "2", "EXISTS",
                                                                  k.decode())), "tl", "rediss")

    def test_mutual_tls_required(self):
        conf = tls.json_config(TMP, {"address": f"127.0.0.1:{self.strict.port}", "prefix": "tl",
                                     "tls": CERTS.tls_object()}, "mtls.json", KEY)
        with h.Lighttpd(conf) as web:
            tls.check_api(self, at.Api(web.port, KEY),
                          lambda k: self.strict.command("EXISTS", k), "tl", "mtls")

    def check_failure(self, port, tls_object, pattern, name):
        conf = tls.json_config(TMP, {"address": f"127.0.0.1:{port}", "prefix": "tl",
                                     "connect_timeout": "1s", "tls": tls_object},
                               name, KEY)
        user = at.Unique.user("tlsfail")
        t0 = time.monotonic()
        r = h.cgi(conf, path="/api/update_user_status", body={"users": [user]},
                  headers={"X-API-Key": KEY}, timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual((r.status, r.body), (200, ERROR_100))
        self.assertLess(elapsed, 3.0, "no hang")
        lines = [ln for ln in r.stderr.splitlines() if "TLS" in ln]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertRegex(lines[0], pattern)
        self.assertNotIn("PRIVATE KEY", r.stderr)
        self.assertEqual(self.redis.command("EXISTS", at.key_of(user, "tl")), 0)

    def test_wrong_ca(self):
        self.check_failure(self.redis.port, CERTS.tls_object(ca="other-ca.crt"),
                           r"cannot connect: TLS certificate verification failed: "
                           r"(unable to get local issuer certificate|self-signed certificate in "
                           r"certificate chain)", "wrongca.json")

    def test_expired_certificate(self):
        self.check_failure(self.expired.port, CERTS.tls_object(),
                           r"TLS certificate verification failed: certificate has expired",
                           "expired.json")

    def test_wrong_host_name(self):
        self.check_failure(self.redis.port, CERTS.tls_object(server_name="redis.example.com"),
                           r"TLS certificate verification failed: hostname mismatch",
                           "wronghost.json")

    def test_missing_client_certificate(self):
        self.check_failure(self.strict.port, CERTS.tls_object(client=False),
                           r"cannot connect: TLS .*certificate required", "nocert.json")

    def test_insecure_skip_verify_connects_to_an_unknown_ca(self):
        conf = tls.json_config(TMP, {"address": f"127.0.0.1:{self.expired.port}",
                                     "prefix": "tl",
                                     "tls": CERTS.tls_object(ca="other-ca.crt",
                                                             insecure_skip_verify=True)},
                               "insecure.json", KEY)
        r = h.cgi(conf, path="/api/update_user_status", body={"users": ["insecure"]},
                  headers={"X-API-Key": KEY})
        self.assertEqual(r.body, b'{"result":{}}', r.stderr)
        self.assertIn("insecure_skip_verify", r.stderr)
        self.assertEqual(self.expired.command("EXISTS", at.key_of("insecure", "tl")), 1)

    def test_plain_client_against_tls_server_fails_fast(self):
        conf = h.write_config(TMP, f'http_api {{ key = "{KEY}" }}\n'
                                   f'user_status {{ redis {{ address = "127.0.0.1:'
                                   f'{self.redis.port}" io_timeout = "1s" }} }}\n', "plain.conf")
        t0 = time.monotonic()
        r = h.cgi(conf, path="/api/update_user_status", body={"users": ["p"]},
                  headers={"X-API-Key": KEY}, timeout=20)
        self.assertEqual(r.body, ERROR_100)
        self.assertLess(time.monotonic() - t0, 3.0)


class ClusterConnectionBound(unittest.TestCase):
    """A slot map naming 1000 nodes: one request opens at most 16 new connections."""

    def test_slot_map_of_1000_nodes(self):
        # 1000 distinct nodes: the first 40 are fake Redis servers that count the
        # connections they accept (the first is also the seed), the others a dead port
        slots = []

        def handler(args):
            if [a.upper() for a in args[:2]] == [b"CLUSTER", b"SLOTS"]:
                return slots[0]
            return b"-ERR fake node\r\n"

        listeners = [fake_redis.FakeRedis(handler=handler) for _ in range(40)]
        for f in listeners:
            f.mode = "custom"
            f.start()
        dead = h.free_port()
        ranges = []
        for i in range(1000):
            start, end = i * 16, (i * 16 + 15 if i < 999 else 16383)
            host, port = (b"127.0.0.1", listeners[i].port) if i < len(listeners) \
                else (b"127.0.0.%d" % (2 + i // 200), dead + i % 200)
            node = b"*3\r\n$%d\r\n%s\r\n:%d\r\n$40\r\n%040d\r\n" % (len(host), host, port, i)
            ranges.append(b"*3\r\n:%d\r\n:%d\r\n%s" % (start, end, node))
        slots.append(b"*%d\r\n" % len(ranges) + b"".join(ranges))
        # users whose keys fall on the 40 listening nodes, one each
        users, taken = [], set()
        n = 0
        while len(users) < len(listeners) - 1:
            u = f"b{n}"
            n += 1
            node = slot_of(at.key_of(u, "cb").decode()) // 16
            if 0 < node < len(listeners) and node not in taken:
                taken.add(node)
                users.append(u)
        conf = h.write_config(TMP, f'http_api {{ key = "{KEY}" }}\n'
                                   f'user_status {{ redis {{ cluster_address = "127.0.0.1:'
                                   f'{listeners[0].port}" prefix = "cb" }} }}\n', "bound.conf")
        try:
            with h.Lighttpd(conf) as web:
                api = at.Api(web.port, KEY)
                r = api("update_user_status", {"users": users})
                self.assertEqual(r.body, ERROR_100)
                opened = sum(f.accepted for f in listeners)
                self.assertLessEqual(opened, 16, opened)
                self.assertGreater(opened, 1)
                self.assertIn("more than 16 new connections", web.error_log())
                self.assertLess(vm_hwm_kb(only_worker(web)), PEAK_RSS_LIMIT_KB)
        finally:
            for f in listeners:
                f.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
