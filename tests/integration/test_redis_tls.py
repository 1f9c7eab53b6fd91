"""Every topology over TLS (SPEC §3.7), against real TLS-only servers with certificates
made by certs.py: three TLS shards, Sentinel over TLS (sentinels on tls-port, data nodes
with tls-replication) through a SENTINEL FAILOVER, and a TLS Redis Cluster (tls-cluster)
through a slot migration under traffic. Each runs the representative API run of
certs.check_api in one persistent worker under lighttpd.
"""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import certs as tls  # noqa: E402
import harness as h  # noqa: E402
import servers as srv  # noqa: E402
from test_redis_cluster import slot_of  # noqa: E402

KEY = "tls-key-77c1"


def setUpModule():
    global TMP, CERTS
    TMP = h.make_tmpdir("ustatus-tls-")
    CERTS = tls.Certs()


def tearDownModule():
    h.tear_down_module(dirs=[TMP])


class TlsShards(unittest.TestCase):
    def test_three_tls_shards(self):
        shards = [tls.TlsRedis(CERTS).start() for _ in range(3)]
        try:
            conf = tls.json_config(TMP, {"address": [f"127.0.0.1:{s.port}" for s in shards],
                                         "prefix": "ts", "tls": CERTS.tls_object()},
                                   "shards.json", KEY)
            with h.Lighttpd(conf) as web:
                api = at.Api(web.port, KEY)

                def exists(key):
                    user = key.decode().split(".user_status.", 1)[1]
                    n = [s.command("EXISTS", key) for s in shards]
                    # on the shard the jump hash names, and only there
                    self.assertEqual(sum(n), n[h.shard_index(user, 3)])
                    return n[h.shard_index(user, 3)]

                for i in range(3):
                    tls.check_api(self, api, exists, "ts", f"shard{i}")
                users = [f"many{i}" for i in range(60)]
                self.assertTrue(at.ok(api("update_user_status", {"users": users})))
                self.assertEqual(sum(int(s.cli("DBSIZE")) for s in shards), 60)
                self.assertTrue(all(int(s.cli("DBSIZE")) > 0 for s in shards))
                self.assertNotIn("error", web.error_log())
        finally:
            for s in shards:
                s.stop()


class TlsSentinel(unittest.TestCase):
    def test_sentinel_over_tls_with_failover(self):
        data = ["--tls-replication", "yes", "--repl-diskless-sync-delay", "0"]
        master = tls.TlsRedis(CERTS, args=data).start()
        replica = tls.TlsRedis(CERTS, args=data + ["--replicaof", "127.0.0.1",
                                                   str(master.port)]).start()
        sentinels = []
        try:
            srv.wait_until(lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
                           20, "replication link")
            sentinels = [tls.tls_sentinel(CERTS, master.port).start() for _ in range(3)]
            srv.wait_until(lambda: all(
                str(replica.port) in s.cli("SENTINEL", "replicas", "mymaster")
                for s in sentinels), 20, "sentinels see the replica")
            conf = tls.json_config(TMP, {
                "sentinel_address": ",".join(f"127.0.0.1:{s.port}" for s in sentinels),
                "sentinel_master_name": "mymaster", "prefix": "tn",
                "tls": CERTS.tls_object(), "sentinel_tls": CERTS.tls_object()},
                "sentinel.json", KEY)
            with h.Lighttpd(conf) as web:
                api = at.Api(web.port, KEY)
                tls.check_api(self, api, lambda k: master.command("EXISTS", k), "tn", "before")
                self.assertEqual(sentinels[0].cli("SENTINEL", "FAILOVER", "mymaster"), "OK")
                srv.wait_until(lambda: "role:master" in replica.cli("INFO", "replication"), 30,
                               "the replica promoted")
                probe = at.Unique.user("probe")
                srv.wait_until(lambda: at.ok(
                    api("update_user_status", {"users": [probe]})) and
                    replica.command("EXISTS", at.key_of(probe, "tn")) == 1, 30,
                    "requests go to the new master")
                tls.check_api(self, api, lambda k: replica.command("EXISTS", k), "tn", "after")
                log = web.error_log()
                self.assertIn(f"127.0.0.1:{replica.port}", log)
        finally:
            for s in sentinels:
                s.stop()
            replica.stop()
            master.stop()


class TlsCluster(unittest.TestCase):
    def test_cluster_over_tls_with_slot_migration_under_traffic(self):
        ports = []
        while len(ports) < 3:
            p = h.free_port(20000, 45000)
            if p not in ports and all(abs(p - q) != 10000 for q in ports):
                ports.append(p)
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
                "--tls-cluster", "yes", "--tls-replication", "yes"]
        nodes = [tls.TlsRedis(CERTS, port=p, args=args).start() for p in ports]
        try:
            r = subprocess.run([h.which("redis-cli"), *CERTS.client_args(), "--cluster",
                                "create", *[f"127.0.0.1:{p}" for p in ports],
                                "--cluster-replicas", "0", "--cluster-yes"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            srv.wait_until(lambda: all("cluster_state:ok" in n.cli("CLUSTER", "INFO")
                                       for n in nodes), 30, "cluster ok")
            conf = tls.json_config(TMP, {"cluster_address": f"127.0.0.1:{ports[0]}",
                                         "prefix": "tc", "tls": CERTS.tls_object()},
                                   "cluster.json", KEY)

            def exists(key):
                return int(nodes[0].cli("-c", "EXISTS", key.decode()))

            with h.Lighttpd(conf) as web:
                api = at.Api(web.port, KEY)
                tls.check_api(self, api, exists, "tc", "cluster")
                # a slot moves from one master to another while requests keep coming
                users = [f"{{mig}}{i}" for i in range(20)]
                slot = slot_of(at.key_of(users[0], "tc").decode())
                self.assertTrue(at.ok(api("update_user_status", {"users": users,
                                                                 "state": "s0"})))

                def owner():
                    for rng in nodes[0].command("CLUSTER", "SLOTS"):
                        if rng[0] <= slot <= rng[1]:
                            return next(n for n in nodes if n.port == rng[2][1])
                src = owner()
                dst = next(n for n in nodes if n is not src)
                src_id, dst_id = src.cli("CLUSTER", "MYID"), dst.cli("CLUSTER", "MYID")
                failures, done, count = [], threading.Event(), [0]

                def traffic():
                    while not done.is_set():
                        r = api("update_user_status", {"users": users, "state": "live"})
                        if not at.ok(r):
                            failures.append(r)
                        st = api("get_user_status", {"users": users})
                        if not at.ok(st) or b'"live"' not in st.body:
                            failures.append(st)
                        count[0] += 1

                t = threading.Thread(target=traffic)
                t.start()
                try:
                    time.sleep(0.3)
                    self.assertEqual(dst.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING",
                                             src_id), "OK")
                    self.assertEqual(src.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING",
                                             dst_id), "OK")
                    time.sleep(0.3)
                    keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                    self.assertEqual(len(keys), len(users))
                    # all at once: a request for keys split between the two nodes is
                    # answered TRYAGAIN by Redis, which a long split would exhaust
                    self.assertEqual(src.command("MIGRATE", "127.0.0.1", dst.port, "", 0,
                                                 5000, "KEYS", *keys), "OK")
                    time.sleep(0.3)
                    for n in nodes:
                        n.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
                    time.sleep(0.5)
                finally:
                    done.set()
                    t.join()
                self.assertEqual(failures, [], web.error_log()[-3000:])
                self.assertGreater(count[0], 5)
                self.assertEqual(len(dst.command("CLUSTER", "GETKEYSINSLOT", slot, 100)),
                                 len(users))
                self.assertEqual(src.command("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
                st = api.statuses(users)
                self.assertTrue(all(s.get("state") == "live" for s in st), st)
                tls.check_api(self, api, exists, "tc", "after-move")
        finally:
            for n in nodes:
                n.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
