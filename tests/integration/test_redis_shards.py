"""Client-side sharding (SPEC §3.2, §3.5) over three real redis-servers, through a real
lighttpd running one persistent ustatus worker. Each server sits behind a counting relay
(harness.Proxy) so the round trips of a request can be counted and timed.

The expected shard of a user is computed here, independently of the C code, from the
published algorithms: FNV-1a 64 (checked against its reference vectors below) and Jump
Consistent Hash as printed in Lamping & Veach's paper.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402

KEY = "shards-key-71c0"
N_SHARDS = 3
DELAY_S = 0.3  # reply delay the relays add when timing concurrency


def setUpModule():
    global TMP, SERVERS, PROXIES, WEB, CONF, api
    TMP = h.make_tmpdir("ustatus-shards-")
    SERVERS = [h.Redis().start() for _ in range(N_SHARDS)]
    PROXIES = [h.Proxy(s.port).start() for s in SERVERS]
    addrs = ", ".join(f'"127.0.0.1:{p.port}"' for p in PROXIES)
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{ address = {{{addrs}}} prefix = "sh" io_timeout = "2s" }}
}}
""")
    WEB = h.Lighttpd(CONF).start()
    api = at.Api(WEB.port, KEY)


def tearDownModule():
    h.tear_down_module(WEB, *PROXIES, *SERVERS, dirs=[WEB.dir, TMP] + [s.dir for s in SERVERS])


def keys_on(server):
    return {k.decode() for k in server.command("KEYS", "sh.user_status.*")}


def flush():
    for s in SERVERS:
        s.cli("FLUSHALL")


class Instruments(unittest.TestCase):
    def test_relay_counts_exchanges(self):
        import socket
        PROXIES[0].reset()
        with socket.create_connection(("127.0.0.1", PROXIES[0].port)) as c:
            f = c.makefile("rb")
            c.sendall(b"PING\r\nPING\r\n")          # pipelined: one exchange
            self.assertEqual((f.readline(), f.readline()), (b"+PONG\r\n", b"+PONG\r\n"))
            for _ in range(2):                         # one by one: one exchange each
                c.sendall(b"PING\r\n")
                self.assertEqual(f.readline(), b"+PONG\r\n")
            deadline = time.monotonic() + 5
            while len(PROXIES[0].exchanges()) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        self.assertEqual([len(e.request) for _, e in PROXIES[0].exchanges()], [12, 6, 6])


class Hashes(unittest.TestCase):
    def test_reference_implementations(self):
        # FNV reference vectors; a wrong local FNV would make every placement check moot.
        self.assertEqual(h.fnv1a64(b""), 0xcbf29ce484222325)
        self.assertEqual(h.fnv1a64(b"a"), 0xaf63dc4c8601ec8c)
        self.assertEqual(h.fnv1a64(b"foobar"), 0x85944171f73967e8)
        # Jump hash properties from the paper: one bucket -> 0; growing the bucket count
        # only ever moves a key to the new bucket.
        for k in range(0, 2 ** 64, 2 ** 58 + 12345):
            self.assertEqual(h.jump_hash(k, 1), 0)
            prev = 0
            for n in range(2, 20):
                b = h.jump_hash(k, n)
                self.assertIn(b, (prev, n - 1))
                prev = b


class Placement(unittest.TestCase):
    def setUp(self):
        flush()

    def test_1000_users_each_on_its_shard_only(self):
        users = [f"user-{i}" for i in range(1000)] + ["юникод", "{tag}x", "a b", "x" * 1024]
        self.assertEqual(api.json("update_user_status", {"users": users}), {"result": {}})
        expected = [set() for _ in SERVERS]
        for u in users:
            expected[h.shard_index(u, N_SHARDS)].add("sh.user_status." + u)
        for i, s in enumerate(SERVERS):
            self.assertEqual(keys_on(s), expected[i], f"shard {i}")
            # jump hash spreads evenly: each of 3 shards gets about a third
            self.assertGreater(len(expected[i]), 250)
        statuses = api.json("get_user_status", {"users": users})["result"]["statuses"]
        self.assertEqual([s["user"] for s in statuses], users)
        self.assertTrue(all("active" in s for s in statuses))

    def test_get_update_delete_across_shards_in_one_call(self):
        users = [f"x{i}" for i in range(60)]
        shards = {h.shard_index(u, N_SHARDS) for u in users}
        self.assertEqual(shards, {0, 1, 2})
        api.json("update_user_status", {"users": users, "state": "away"})
        api.json("update_user_online", {"users": users[::2]})
        st = api.json("get_user_status", {"users": users[::-1]})["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], users[::-1])
        self.assertTrue(all(s["state"] == "away" for s in st))
        self.assertEqual(sum("online" in s for s in st), 30)
        gone = users[:30]
        self.assertEqual(api.json("delete_user_status", {"users": gone}), {"result": {}})
        st = api.json("get_user_status", {"users": users})["result"]["statuses"]
        self.assertEqual(st[:30], [{"user": u} for u in gone])
        self.assertTrue(all(s["state"] == "away" for s in st[30:]))
        left = set().union(*(keys_on(s) for s in SERVERS))
        self.assertEqual(left, {"sh.user_status." + u for u in users[30:]})
        # a batch mixing all of it, across shards, in request order
        body = {"commands": [{"update_user_status": {"users": gone[:5], "state": "back"}},
                             {"get_user_status": {"users": gone[:5] + users[40:42]}},
                             {"delete_user_status": {"users": users[40:42]}},
                             {"get_user_status": {"users": users[40:42]}}]}
        rep = api.json("batch", body)["replies"]
        got = rep[1]["get_user_status"]["statuses"]
        self.assertEqual([s.get("state") for s in got], ["back"] * 5 + ["away"] * 2)
        self.assertEqual(rep[3]["get_user_status"]["statuses"],
                         [{"user": u} for u in users[40:42]])


class Health(unittest.TestCase):
    def test_health_pings_every_shard(self):
        r = h.cgi(CONF, method="GET", path="/health")
        self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'), r.stderr)


class RoundTrips(unittest.TestCase):
    """One pipelined exchange per shard per request, all shards written before any reply
    is read (SPEC §3.5)."""

    @classmethod
    def setUpClass(cls):
        flush()
        cls.users = [f"rt{i}" for i in range(300)]
        cls.per_shard = [0] * N_SHARDS
        for u in cls.users:
            cls.per_shard[h.shard_index(u, N_SHARDS)] += 1
        # warm up: connections open, Lua script cached on every shard
        api.json("update_user_status", {"users": cls.users})

    def tearDown(self):
        for p in PROXIES:
            p.delay_s = 0

    def measure(self, method, body, marker):
        for p in PROXIES:
            p.delay_s = DELAY_S
            p.reset()
        t0 = time.monotonic()
        r = api(method, body)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertNotIn(b"error", r.body)
        exchanges = [p.exchanges() for p in PROXIES]
        for i, ex in enumerate(exchanges):
            self.assertEqual(len(ex), 1, f"shard {i}: {len(ex)} exchanges")
            self.assertIn(marker, ex[0][1].request)
        # concurrency: every shard got its whole request before the first reply left any
        # relay, and the request took one delay, not one per shard
        last_request = max(ex[0][1].t_request for ex in exchanges)
        first_reply = min(ex[0][1].t_reply for ex in exchanges)
        self.assertLess(last_request, first_reply)
        self.assertLess(elapsed, DELAY_S * 2, f"{elapsed:.2f}s for {N_SHARDS} shards")
        return r

    def test_get_one_exchange_per_shard(self):
        r = self.measure("get_user_status", {"users": self.users}, b"GET")
        st = r.json()["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], self.users)

    def test_update_one_exchange_per_shard(self):
        self.measure("update_user_status", {"users": self.users, "state": "rt"}, b"EVALSHA")

    def test_batch_one_exchange_per_shard(self):
        body = {"commands": [{"update_user_online": {"users": self.users[:150]}},
                             {"get_user_status": {"users": self.users}},
                             {"delete_user_status": {"users": ["nobody"]}}]}
        self.measure("batch", body, b"EVALSHA")

    def test_commands_per_shard_match_the_hash(self):
        before = [key_lookups(s) for s in SERVERS]
        api.json("get_user_status", {"users": self.users})
        after = [key_lookups(s) for s in SERVERS]
        self.assertEqual([a - b for a, b in zip(after, before)], self.per_shard)


def key_lookups(server):
    """Keys the server has looked up (hits and misses), whatever the commands were."""
    n = 0
    for line in server.cli("INFO", "stats").splitlines():
        if line.startswith(("keyspace_hits:", "keyspace_misses:")):
            n += int(line.split(":")[1])
    return n


if __name__ == "__main__":
    unittest.main()
