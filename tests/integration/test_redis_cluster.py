"""Redis Cluster (SPEC §3.4, §3.5) with real servers: 3 masters and 3 replicas made by
redis-cli --cluster create, each node behind a counting relay (harness.Proxy) that it
announces as its address, so every client (ustatus, redis-cli, MIGRATE) goes through the
relays and the round trips of a request can be counted. ustatus runs as one persistent
worker under a real lighttpd, keeping its slot map and connections across requests.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
from apitest import ok  # noqa: E402

KEY = "cluster-key-2d8f"
AUTH = {"X-API-Key": KEY}
PREFIX = "cl.user_status."
DELAY_S = 0.3


def crc16(data):
    """CRC16-CCITT (XMODEM), as the cluster specification defines the slot hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot_of(key):
    k = key.encode()
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % 16384


def setUpModule():
    global TMP, CL, WEB, CONF, api
    TMP = h.make_tmpdir("ustatus-cluster-")
    CL = h.Cluster(proxied=True).start()
    seeds = ",".join(f"127.0.0.1:{CL.announced(n)}" for n in CL.nodes[:2])
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{ cluster_address = {{"{seeds}"}} prefix = "cl"
          connect_timeout = "500ms" io_timeout = "2s" }}
}}
""")
    WEB = h.Lighttpd(CONF).start()
    api = at.Api(WEB.port, KEY, timeout=10)


def tearDownModule():
    h.tear_down_module(WEB, CL, dirs=[WEB.dir, TMP] + [n.dir for n in CL.nodes])


def slot_owners():
    """slot -> the Redis instance serving it, per a live node's CLUSTER SLOTS."""
    node = next(n for n in CL.nodes if n.proc)
    owners = {}
    for r in node.command("CLUSTER", "SLOTS"):
        inst = CL.node_by_announced(r[2][1])
        for s in range(r[0], r[1] + 1):
            owners[s] = inst
    return owners


def asking(node, *args):
    """A command preceded by ASKING on the same connection: how an importing node serves
    a key of a slot it does not own yet."""
    import socket
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as c:
        out = b""
        for cmd in (("ASKING",), args):
            out += b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        c.sendall(out)
        f = c.makefile("rb")
        assert h._read_resp(f) == "OK"
        return h._read_resp(f)


def close_slot(slot, src, dst):
    """Ends a hand-made migration of `slot`: the keys left on src go to dst, and every
    master learns that dst owns it."""
    for k in src.command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
        src.command("MIGRATE", "127.0.0.1", dst.port, k, 0, 5000)
    dst_id = CL.node_id(dst)
    for m in [dst, src] + [m for m in CL.masters_now() if m not in (src, dst)]:
        m.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
    CL.wait_ok()


def keys_on(node):
    return {k.decode() for k in node.command("KEYS", PREFIX + "*")}


def replica_of(master):
    mid = CL.node_id(master)
    for line in master.cli("CLUSTER", "NODES").splitlines():
        f = line.split()
        if "slave" in f[2] and f[3] == mid and "fail" not in f[2]:
            return CL.node_by_announced(int(f[1].split("@")[0].rsplit(":", 1)[1]))
    raise AssertionError("no replica")


class Traffic:
    """Requests in a loop from a thread while the cluster changes: writes of fresh users
    and reads of known ones, every outcome recorded with its time."""

    def __init__(self, known):
        self.known = known
        self.written = []      # fresh users whose update succeeded
        self.results = []      # (monotonic time, ok, body)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            fresh = [f"live-{id(self)}-{n}-{i}" for i in range(10)]
            n += 1
            r = api("update_user_status", {"users": fresh, "state": "live"})
            self.results.append((time.monotonic(), ok(r), r.body))
            if ok(r):
                self.written += fresh
            part = self.known[(n * 20) % len(self.known):][:20]
            r = api("get_user_status", {"users": part})
            good = ok(r) and all("active" in s for s in r.json()["result"]["statuses"])
            self.results.append((time.monotonic(), good, r.body))
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(30)

    def failures(self):
        return [(t, b) for t, good, b in self.results if not good]


def wait_calls(node):
    for line in node.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


class A0_WaitReplicas(unittest.TestCase):
    """redis.wait_replicas on a cluster: each master that took writes is asked WAIT in
    the same exchange, and a write fewer replicas confirm fails (error 100)."""

    def conf(self, n):
        seeds = ",".join(f"127.0.0.1:{CL.announced(x)}" for x in CL.nodes[:2])
        return h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ cluster_address = {{"{seeds}"}} prefix = "cl"
                       io_timeout = "2s" wait_replicas = {n} wait_timeout = "200ms" }} }}
""", f"wait{n}.conf")

    def test_confirmed_by_each_masters_replica(self):
        masters = CL.masters_now()
        before = {m.port: wait_calls(m) for m in masters}
        users = [f"wait{i}" for i in range(300)]
        r = h.cgi(self.conf(1), path="/api/update_user_status", body={"users": users},
                  headers=AUTH)
        self.assertEqual(r.body, b'{"result":{}}', r.stderr)
        owners = slot_owners()
        for m in masters:
            mine = [u for u in users if owners[slot_of(PREFIX + u)] is m]
            self.assertTrue(mine)
            self.assertGreaterEqual(wait_calls(m), before[m.port] + 1, m.port)
            # confirmed: the replica already holds them
            held = keys_on(replica_of(m))
            self.assertEqual([u for u in mine if PREFIX + u not in held], [])

    def test_more_replicas_than_a_master_has(self):
        r = h.cgi(self.conf(2), path="/api/update_user_status", body={"users": ["w2"]},
                  headers=AUTH)
        self.assertEqual(r.json(), {"error": {"code": 100, "message": "internal server error"}},
                         r.stderr)
        self.assertIn("1 of 2 replicas confirmed", r.stderr)
        r = h.cgi(self.conf(2), path="/api/get_user_status", body={"users": ["w2"]},
                  headers=AUTH)
        self.assertTrue(ok(r), r.stderr)


class A_Routing(unittest.TestCase):
    def test_crc16_matches_redis(self):
        self.assertEqual(crc16(b"123456789"), 0x31C3)
        for k in ("cl.user_status.42", "{user1000}.following", "foo{}{bar}", "{}x", "a{b}c"):
            self.assertEqual(slot_of(k), CL.nodes[0].command("CLUSTER", "KEYSLOT", k), k)

    def test_1000_users_span_all_masters_in_request_order(self):
        users = [f"c{i}" for i in range(1000)] + ["{t}a", "{t}b", "юникод", "x" * 1024]
        self.assertEqual(api("update_user_status", {"users": users, "state": "here"}).body,
                         b'{"result":{}}')
        st = api.statuses(users)
        self.assertEqual([s["user"] for s in st], users)
        self.assertTrue(all(s.get("state") == "here" and "active" in s for s in st))
        owners = slot_owners()
        masters = CL.masters_now()
        self.assertEqual(len(masters), 3)
        for m in masters:
            expected = {PREFIX + u for u in users if owners[slot_of(PREFIX + u)] is m}
            got = keys_on(m) & {PREFIX + u for u in users}
            self.assertEqual(got, expected, f"master {m.port}")
            self.assertGreater(len(expected), 250)

    def test_one_exchange_per_master_concurrently(self):
        users = [f"rt{i}" for i in range(150)]
        api("update_user_status", {"users": users})  # warm: connections, map, script
        masters = CL.masters_now()
        proxies = list(CL.proxies.values())
        try:
            for p in proxies:
                p.delay_s = DELAY_S
                p.reset()
            t0 = time.monotonic()
            r = api("get_user_status", {"users": users})
            elapsed = time.monotonic() - t0
        finally:
            for p in proxies:
                p.delay_s = 0
        self.assertTrue(ok(r))
        per_master = [CL.proxies[m.port].exchanges(b"GET") for m in masters]
        self.assertEqual([len(e) for e in per_master], [1, 1, 1])
        replicas = [n for n in CL.nodes if n not in masters]
        self.assertEqual(sum(len(CL.proxies[n.port].exchanges(b"GET")) for n in replicas), 0)
        self.assertEqual(sum(len(p.exchanges(b"CLUSTER")) for p in proxies), 0)
        last_request = max(e[0][1].t_request for e in per_master)
        first_reply = min(e[0][1].t_reply for e in per_master)
        self.assertLess(last_request, first_reply)
        self.assertLess(elapsed, DELAY_S * 2, f"{elapsed:.2f}s for 3 masters")
        # the one exchange carried exactly the users of that master
        owners = slot_owners()
        for m, ex in zip(masters, per_master):
            n = sum(owners[slot_of(PREFIX + u)] is m for u in users)
            self.assertEqual(ex[0][1].request.count(b".user_status."), n)


class B_Redirects(unittest.TestCase):
    """In order: ASK by hand, MOVED after it, a reshard under load, a replica takeover,
    a master killed."""

    def test_1_ask_then_moved(self):
        ua, ub, uc = "{ask}a", "{ask}b", "{ask}c"
        slot = slot_of(PREFIX + ua)
        self.assertTrue(ok(api("update_user_status", {"users": [ua, uc], "state": "s1"})))
        src = slot_owners()[slot]
        dst = next(m for m in CL.masters_now() if m is not src)
        src_id, dst_id = CL.node_id(src), CL.node_id(dst)
        self.assertEqual(dst.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id), "OK")
        self.assertEqual(src.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id), "OK")
        try:
            self.ask_then_moved(slot, src, dst, ua, ub, uc)
        finally:
            # whatever happened, the slot ends up closed, on dst, for the tests after this
            close_slot(slot, src, dst)

    def ask_then_moved(self, slot, src, dst, ua, ub, uc):
        self.assertEqual(src.cli("MIGRATE", "127.0.0.1", str(dst.port), PREFIX + ua, "0",
                                 "5000"), "OK")
        proxies = list(CL.proxies.values())
        for p in proxies:
            p.reset()
        # ua has moved: ASK; ub exists nowhere: ASK; uc is still on src: served there
        st = api.statuses([ua, ub, uc])
        self.assertEqual([s.get("state") for s in st], ["s1", None, "s1"])
        self.assertTrue(ok(api("update_user_status", {"users": [ub], "state": "new"})))
        self.assertEqual(asking(dst, "EXISTS", PREFIX + ub), 1)
        on_src = src.command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        self.assertIn((PREFIX + uc).encode(), on_src)
        self.assertNotIn((PREFIX + ub).encode(), on_src)
        self.assertNotIn((PREFIX + ua).encode(), on_src)
        self.assertGreater(len(CL.proxies[dst.port].exchanges(b"ASKING")), 0)
        # ASK does not touch the slot map: no CLUSTER SLOTS was asked
        self.assertEqual(sum(len(p.exchanges(b"CLUSTER")) for p in proxies), 0)

        # finish the migration: the slot now belongs to dst, and ustatus's map is stale
        close_slot(slot, src, dst)
        for p in proxies:
            p.reset()
        st = api.statuses([ua, ub, uc])
        self.assertEqual([s.get("state") for s in st], ["s1", "new", "s1"])
        # MOVED: one map refresh for the whole request, then the named node
        self.assertEqual(sum(len(p.exchanges(b"CLUSTER")) for p in proxies), 1)
        for p in proxies:
            p.reset()
        api.statuses([ua, ub, uc])
        self.assertEqual(sum(len(p.exchanges(b"CLUSTER")) for p in proxies), 0)
        self.assertEqual(len(CL.proxies[dst.port].exchanges(b"GET")), 1)

    def test_2_reshard_with_live_traffic(self):
        known = [f"w{i}" for i in range(400)]
        self.assertTrue(ok(api("update_user_status", {"users": known, "state": "w"})))
        masters = CL.masters_now()
        src, dst = masters[0], masters[1]
        with Traffic(known) as traffic:
            time.sleep(0.2)
            r = subprocess.run([h.which("redis-cli"), "--cluster", "reshard",
                                f"127.0.0.1:{CL.announced(src)}",
                                "--cluster-from", CL.node_id(src), "--cluster-to",
                                CL.node_id(dst), "--cluster-slots", "1500", "--cluster-yes"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
            time.sleep(0.2)
        CL.wait_ok()
        asks = len(CL.proxies[dst.port].exchanges(b"ASKING"))
        print(f"\n  reshard of 1500 slots: {len(traffic.results)} requests during it, "
              f"{len(traffic.failures())} failed, {asks} exchanges with ASKING",
              file=sys.stderr)
        self.assertGreater(len(traffic.results), 10)
        self.assertEqual(traffic.failures(), [])
        st = api.statuses(known)
        self.assertTrue(all(s.get("state") == "w" for s in st))
        written = list(traffic.written)
        for i in range(0, len(written), 5000):  # max_users_per_request is 10000
            st = api.statuses(written[i:i + 5000])
            self.assertTrue(all(s.get("state") == "live" for s in st), "a write was lost")

    def test_3_replica_takeover(self):
        known = [f"p{i}" for i in range(300)]
        self.assertTrue(ok(api("update_user_status", {"users": known, "state": "pre"})))
        owners = slot_owners()
        master = CL.masters_now()[2]
        replica = replica_of(master)
        with Traffic(known) as traffic:
            time.sleep(0.2)
            t0 = time.monotonic()
            self.assertEqual(replica.cli("CLUSTER", "FAILOVER"), "OK")
            deadline = t0 + 20
            while replica.cli("ROLE").split()[0] != "master":
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            CL.wait_ok()
            t1 = time.monotonic()
            time.sleep(0.3)
        fails = traffic.failures()
        print(f"\n  CLUSTER FAILOVER took {t1 - t0:.2f}s; {len(traffic.results)} requests "
              f"during it, {len(fails)} failed", file=sys.stderr)
        for t, body in fails:
            self.assertTrue(t0 <= t <= t1 + 0.5, f"failed outside the failover: {body!r}")
        st = api.statuses(known)
        self.assertTrue(all(s.get("state") == "pre" for s in st), "a write was lost")
        written = list(traffic.written)
        for i in range(0, len(written), 5000):  # max_users_per_request is 10000
            st = api.statuses(written[i:i + 5000])
            self.assertTrue(all(s.get("state") == "live" for s in st), "a write was lost")
        # writes for the old master's slots go to the new master now
        moved = next(u for u in (f"n{i}" for i in range(1000))
                     if owners[slot_of(PREFIX + u)] is master)
        self.assertTrue(ok(api("update_user_status", {"users": [moved]})))
        self.assertEqual(replica.command("EXISTS", PREFIX + moved), 1)


    def test_4_killed_master(self):
        known = [f"k{i}" for i in range(300)]
        self.assertTrue(ok(api("update_user_status", {"users": known, "state": "pre"})))
        master = CL.masters_now()[0]
        replica = replica_of(master)
        # what was acknowledged must be on the replica before the master dies
        self.assertEqual(master.command("WAIT", 1, 5000), 1)
        with Traffic(known) as traffic:
            time.sleep(0.2)
            t0 = time.monotonic()
            os.killpg(master.proc.pid, signal.SIGKILL)
            master.stop()
            deadline = t0 + 30
            while replica.cli("ROLE").split()[0] != "master":
                self.assertLess(time.monotonic(), deadline, "no failover")
                time.sleep(0.02)
            CL.wait_ok()
            t1 = time.monotonic()
            time.sleep(0.5)
        fails = traffic.failures()
        print(f"\n  master killed: replica promoted after {t1 - t0:.2f}s (node timeout 2s); "
              f"{len(traffic.results)} requests, {len(fails)} failed, the last "
              f"{max((t for t, _ in fails), default=t0) - t0:.2f}s after the kill",
              file=sys.stderr)
        for t, body in fails:
            self.assertTrue(t0 <= t <= t1 + 0.5, f"failed outside the failover: {body!r}")
        self.assertTrue(all(good for t, good, _ in traffic.results if t > t1 + 0.5))
        st = api.statuses(known)
        self.assertTrue(all(s.get("state") == "pre" for s in st), "a write was lost")
        written = list(traffic.written)
        for i in range(0, len(written), 5000):  # max_users_per_request is 10000
            st = api.statuses(written[i:i + 5000])
            self.assertTrue(all(s.get("state") == "live" for s in st), "a write was lost")
        # every master answers: the dead one is no longer in the map
        r = h.cgi(CONF, method="GET", path="/health")
        self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'), r.stderr)


class C_SeveralClusters(unittest.TestCase):
    def test_two_clusters_are_shards(self):
        single = h.Redis(args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        single.start()
        try:
            self.assertEqual(single.cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383"), "OK")
            deadline = time.monotonic() + 10
            while "cluster_state:ok" not in single.cli("CLUSTER", "INFO"):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            seeds = f"127.0.0.1:{CL.announced(CL.masters_now()[0])}"
            conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ cluster_address = {{"{seeds}", "127.0.0.1:{single.port}"}}
                       prefix = "cl" }} }}
""", "two.conf")
            users = [f"two{i}" for i in range(300)]
            r = h.cgi(conf, path="/api/update_user_status", body={"users": users},
                      headers=AUTH)
            self.assertEqual(r.body, b'{"result":{}}', r.stderr)
            owners = slot_owners()
            for u in users:
                key = PREFIX + u
                in_first = owners[slot_of(key)].command("EXISTS", key)
                in_second = single.command("EXISTS", key)
                self.assertEqual((in_first, in_second),
                                 (1, 0) if h.shard_index(u, 2) == 0 else (0, 1), u)
            r = h.cgi(conf, path="/api/get_user_status", body={"users": users}, headers=AUTH)
            self.assertEqual([s["user"] for s in r.json()["result"]["statuses"]], users)
            r = h.cgi(conf, method="GET", path="/health")
            self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'), r.stderr)
            # a second "cluster" that is a plain server: named, with why
            plain = h.Redis().start()
            try:
                bad = h.write_config(TMP, f"""
user_status {{ redis {{ cluster_address = {{"{seeds}", "127.0.0.1:{plain.port}"}} }} }}
""", "bad.conf")
                r = h.cgi(bad, method="GET", path="/health")
            finally:
                plain.stop()
                shutil.rmtree(plain.dir, ignore_errors=True)
            self.assertEqual(r.status, 503)
            nodes = r.json()["nodes"]
            self.assertEqual(sum(n["ok"] for n in nodes), 3)
            self.assertEqual(nodes[-1]["node"], "cluster 2")
            self.assertIn("cluster support disabled", nodes[-1]["error"])
        finally:
            single.stop()
            shutil.rmtree(single.dir, ignore_errors=True)


class D_ClusterDown(unittest.TestCase):
    def test_clusterdown_is_retried_after_a_pause(self):
        node = h.Redis(args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        node.start()
        try:
            self.assertEqual(node.cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383"), "OK")
            conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ cluster_address = "127.0.0.1:{node.port}" prefix = "cl" }} }}
""", "down.conf")

            def state_is(state):
                deadline = time.monotonic() + 10
                while f"cluster_state:{state}" not in node.cli("CLUSTER", "INFO"):
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.02)

            state_is("ok")
            user = next(u for u in (f"d{i}" for i in range(100)) if slot_of(PREFIX + u) != 0)
            # slot 0 unassigned: the whole cluster is down (full coverage required)
            node.cli("CLUSTER", "DELSLOTS", "0")
            state_is("fail")
            timer = threading.Timer(0.15, node.cli, ("CLUSTER", "ADDSLOTS", "0"))
            t0 = time.monotonic()
            timer.start()
            r = h.cgi(conf, path="/api/update_user_status", body={"users": [user]},
                    headers=AUTH)
            elapsed = time.monotonic() - t0
            timer.join()
            self.assertEqual(r.body, b'{"result":{}}', r.stderr)
            self.assertGreater(elapsed, 0.1)
            self.assertEqual(node.command("EXISTS", PREFIX + user), 1)
            # down for good: error 100 after the bounded pauses (5 redirections)
            state_is("ok")
            node.cli("CLUSTER", "DELSLOTS", "0")
            state_is("fail")
            t0 = time.monotonic()
            r = h.cgi(conf, path="/api/get_user_status", body={"users": [user]}, headers=AUTH)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.json()["error"]["code"], 100)
            self.assertIn("CLUSTERDOWN", r.stderr)
            self.assertTrue(0.4 < elapsed < 3, f"{elapsed:.2f}s")
        finally:
            node.stop()
            shutil.rmtree(node.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
