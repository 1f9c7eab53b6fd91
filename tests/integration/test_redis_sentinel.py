"""Sentinel-managed masters (SPEC §3.3) with real redis-server and redis-sentinel
processes: 1 master, 1 replica, 3 sentinels, ACL users on the data nodes and on the
sentinels. ustatus runs as one persistent worker under a real lighttpd, so discovery,
failover handling and rediscovery happen inside a long-lived process, as in production.
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import servers as srv  # noqa: E402
from apitest import ok  # noqa: E402

KEY = "sentinel-key-4b7e"
AUTH = {"X-API-Key": KEY}
NAME = "mymaster"
DATA_USER, DATA_PW = "ustatus", "data-pw-5e1d"
SENT_USER, SENT_PW = "sentuser", "sent-pw-9c2a"
ADMIN_PW = "admin-pw-0f3b"
# ustatus's users get exactly the permissions the README's "ACL users" section lists, so a missing one
# fails here. The default user (replication, the sentinels' own connections) may touch
# none of our keys, so a missing AUTH shows as NOPERM; the tests inspect as "admin".
DATA_ACL = ["--user", DATA_USER, "on", f">{DATA_PW}", "~se.user_status.*", "+ping", "+role",
            "+hmget", "+del", "+evalsha", "+eval", "+hget", "+hset", "+hdel", "+exists",
            "+expire", "+get", "+mget", "+set", "+type", "+hmget",
            "--user", "admin", "on", f">{ADMIN_PW}", "~*", "&*", "+@all",
            "--user", "default", "on", "nopass", "~nothing:*", "&*", "+@all",
            "--repl-diskless-sync-delay", "0"]
# Only SENT_USER may ask a sentinel for the master's address.
SENT_ACL = (f"user {SENT_USER} on >{SENT_PW} &+switch-master +ping +subscribe "
            "+sentinel|get-master-addr-by-name\n"
            "user default on nopass +@all -sentinel|get-master-addr-by-name\n")
DEAD = "127.0.0.1:1"   # a sentinel that is never there: first in the list on purpose


def data(node, *args):
    return node.cli("--user", "admin", "--pass", ADMIN_PW, "--no-auth-warning", *args)


def sentinel_master(s, name=NAME):
    out = s.cli("--user", SENT_USER, "--pass", SENT_PW, "--no-auth-warning",
                "SENTINEL", "get-master-addr-by-name", name).split()
    return int(out[1]) if len(out) == 2 else None


def link_up(replica, master_port):
    info = data(replica, "INFO", "replication")
    return f"master_port:{master_port}" in info and "master_link_status:up" in info


def conf_text(sentinels, name=NAME, extra=""):
    lists = ", ".join('"' + ",".join(group) + '"' for group in sentinels)
    return f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{
    sentinel_address = {{{lists}}}
    sentinel_master_name = "{name}"
    sentinel_user = "{SENT_USER}"
    sentinel_password = "{SENT_PW}"
    user = "{DATA_USER}"
    password = "{DATA_PW}"
    prefix = "se"
    connect_timeout = "300ms"
    io_timeout = "1s"
  }}
}}
{extra}
"""


def setUpModule():
    global TMP, NODES, SENTINELS, WEB, SENT_ADDRS, CONF, api
    TMP = h.make_tmpdir("ustatus-sentinel-")
    master = h.Redis(args=DATA_ACL).start()
    replica = h.Redis(args=DATA_ACL + ["--replicaof", "127.0.0.1", str(master.port)]).start()
    NODES = {master.port: master, replica.port: replica}
    srv.wait_until(lambda: link_up(replica, master.port), 10, "replication")
    SENTINELS = [h.Sentinel(master.port, extra=SENT_ACL).start() for _ in range(3)]
    # A failover needs the sentinels to know the replica and each other (hello messages).
    for s in SENTINELS:
        srv.wait_until(lambda: s.cli("SENTINEL", "replicas", NAME) and
                       s.cli("SENTINEL", "sentinels", NAME).count("runid") == 2, 15,
                       "sentinels to meet")
    SENT_ADDRS = [DEAD] + [f"127.0.0.1:{s.port}" for s in SENTINELS]
    CONF = h.write_config(TMP, conf_text([SENT_ADDRS], extra='log { level = "debug" }'))
    WEB = h.Lighttpd(CONF).start()
    api = at.Api(WEB.port, KEY, timeout=10)


def tearDownModule():
    nodes = list(NODES.values()) + SENTINELS
    h.tear_down_module(WEB, *nodes, dirs=[WEB.dir, TMP] + [n.dir for n in nodes])


def current_master():
    return NODES[sentinel_master(SENTINELS[0])]


def other(node):
    return next(n for n in NODES.values() if n is not node)


class Failover(unittest.TestCase):
    """In order: discovery, a SENTINEL FAILOVER, a master killed with SIGKILL."""

    def probe_until_recovered(self, t0, timeout, new_master):
        """Requests in a loop until the sentinels all name new_master and requests succeed
        again; returns (seconds from t0 to then, failed probes)."""
        failures = 0
        deadline = t0 + timeout
        successes = 0
        while True:
            r1 = api("update_user_status", {"users": ["probe"]})
            r2 = api("get_user_status", {"users": ["probe"]})
            if ok(r1) and ok(r2):
                successes += 1
                # a few in a row, and only once the sentinels agree on the new master
                if successes >= 3 and {sentinel_master(s) for s in SENTINELS} == {
                        new_master.port}:
                    return time.monotonic() - t0, failures
            else:
                self.assertEqual(r1.status, 200)
                failures += 1
                successes = 0
            self.assertLess(time.monotonic(), deadline, "requests did not succeed again")
            time.sleep(0.05)

    def write_and_replicate(self, users, state):
        self.assertTrue(ok(api("update_user_status", {"users": users, "state": state})))
        master = current_master()
        # the replica has it all before the failover: WAIT for one replica
        self.assertEqual(data(master, "WAIT", "1", "5000"), "1")
        return master

    def test_1_discovery_with_acl(self):
        users = [f"d{i}" for i in range(100)]
        self.assertTrue(ok(api("update_user_status", {"users": users, "state": "here"})))
        master = current_master()
        self.assertEqual(data(master, "EXISTS", "se.user_status.d1"), "1")
        # the default user cannot read it: ustatus did authenticate as DATA_USER
        self.assertIn("NOPERM", master.cli("EXISTS", "se.user_status.d1"))
        self.assertTrue(all(s["state"] == "here" for s in api.statuses(users)))

    def test_2_sentinel_failover(self):
        workers = h.child_pids(WEB.proc.pid)
        self.assertEqual(len(workers), 1)
        users = [f"f{i}" for i in range(300)]
        old = self.write_and_replicate(users, "before")
        t0 = time.monotonic()
        self.assertEqual(SENTINELS[1].cli("SENTINEL", "FAILOVER", NAME), "OK")
        took, failures = self.probe_until_recovered(t0, 15, other(old))
        new = current_master()
        self.assertIsNot(new, old)
        print(f"\n  SENTINEL FAILOVER: requests fine again {took:.2f}s after it "
              f"({failures} failed probes)", file=sys.stderr)
        self.assertLess(took, 8)
        st = api.statuses(users)
        self.assertTrue(all(s.get("state") == "before" and "active" in s for s in st))
        # The old master is still a master for a while (the sentinels demote it seconds
        # later), and accepts writes that its resync would then wipe: ustatus must have
        # left it already, told by the +switch-master announcement.
        self.assertIn("master", data(old, "ROLE").split()[0])
        self.assertTrue(ok(api("update_user_status", {"users": ["after-failover"]})))
        self.assertEqual(data(new, "EXISTS", "se.user_status.after-failover"), "1")
        self.assertEqual(data(old, "EXISTS", "se.user_status.after-failover"), "0")
        self.assertIn("+switch-master mymaster", WEB.error_log())
        self.assertEqual(h.child_pids(WEB.proc.pid), workers, "ustatus was restarted")

    def test_3_killed_master(self):
        workers = h.child_pids(WEB.proc.pid)
        master = current_master()
        replica = other(master)
        # The sentinels demote the old master of the previous test only ~10 s after the
        # failover; do now what they would do then, to keep the test short.
        data(replica, "REPLICAOF", "127.0.0.1", str(master.port))
        srv.wait_until(lambda: link_up(replica, master.port), 15, "the old master to resync")
        for s in SENTINELS:
            srv.wait_until(lambda: f"{replica.port}" in s.cli("SENTINEL", "replicas", NAME), 15,
                           "sentinels to see the replica")
        users = [f"k{i}" for i in range(300)]
        self.write_and_replicate(users, "before-kill")
        t0 = time.monotonic()
        os.killpg(master.proc.pid, signal.SIGKILL)
        took, failures = self.probe_until_recovered(t0, 20, replica)
        self.assertEqual(current_master(), replica)
        print(f"\n  master killed: requests fine again {took:.2f}s after it "
              f"({failures} failed probes; down-after-milliseconds is 1s)", file=sys.stderr)
        self.assertLess(took, 10)
        self.assertGreater(failures, 0)
        st = api.statuses(users)
        self.assertTrue(all(s.get("state") == "before-kill" for s in st))
        self.assertEqual(h.child_pids(WEB.proc.pid), workers, "ustatus was restarted")
        r = h.cgi(CONF, method="GET", path="/health")
        self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'))
        log = WEB.error_log()
        self.assertIn(f'master "{NAME}" is 127.0.0.1:{replica.port}', log)

    def test_4_sentinel_that_answered_is_asked_first(self):
        # The dead sentinel heads the configured list. The first discovery tried it;
        # the rediscoveries of the failovers started with the sentinel that answered.
        log = WEB.error_log()
        self.assertEqual(log.count(f"sentinel {DEAD}:"), 1, log[-3000:])
        self.assertGreaterEqual(log.count(f'master "{NAME}" is '), 3)

    def test_5_no_password_in_logs(self):
        log = WEB.error_log()
        self.assertNotIn(DATA_PW, log)
        self.assertNotIn(SENT_PW, log)
        self.assertNotIn("SUBSCRIBE +switch-master failed", log)


class Errors(unittest.TestCase):
    def test_wrong_master_name(self):
        conf = h.write_config(TMP, conf_text([SENT_ADDRS[1:]], name="no-such-master"),
                              "wrong.conf")
        with h.Lighttpd(conf) as web:
            web_api = at.Api(web.port, KEY, timeout=10)
            r = web_api("get_user_status", {"users": ["1"]})
            self.assertEqual((r.status, r.body),
                             (200, b'{"error":{"code":100,"message":"internal server error"}}'))
            r = web_api("update_user_status", {"users": ["1"]})
            self.assertEqual(r.json()["error"]["code"], 100)
            log = web.error_log()
        self.assertIn('master name "no-such-master" unknown to the sentinels', log)
        self.assertNotIn("no sentinel reachable", log)
        r = h.cgi(conf, method="GET", path="/health")
        self.assertEqual(r.status, 503)
        node = r.json()["nodes"][0]
        self.assertFalse(node["ok"])
        self.assertIn('master name "no-such-master" unknown', node["error"])

    def test_no_sentinel_reachable(self):
        conf = h.write_config(TMP, conf_text([["127.0.0.1:1", "127.0.0.1:2"]]), "dead.conf")
        t0 = time.monotonic()
        r = h.cgi(conf, body={"users": ["1"]}, headers=AUTH)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(r.json()["error"]["code"], 100)
        self.assertIn('no sentinel reachable for master "mymaster" '
                      '(tried 127.0.0.1:1, 127.0.0.1:2)', r.stderr)
        self.assertNotIn("unknown", r.stderr)

    def test_sentinel_credentials_required(self):
        # Without sentinel_user, the sentinels refuse: neither "unreachable" nor "unknown".
        text = conf_text([SENT_ADDRS[1:]]).replace(f'sentinel_user = "{SENT_USER}"', "")
        conf = h.write_config(TMP, text, "nouser.conf")
        r = h.cgi(conf, body={"users": ["1"]}, headers=AUTH)
        self.assertEqual(r.json()["error"]["code"], 100)
        self.assertIn("no sentinel gave an address", r.stderr)
        self.assertNotIn(SENT_PW, r.stderr)


class ReadOnly(unittest.TestCase):
    """A master demoted behind ustatus's back (no sentinel failover, connections kept):
    the write gets READONLY, ustatus rediscovers and resends it in the same request."""

    def test_readonly_rediscovers_and_retries(self):
        a = h.Redis(args=DATA_ACL).start()
        b = h.Redis(args=DATA_ACL + ["--replicaof", "127.0.0.1", str(a.port)]).start()
        s = h.Sentinel(a.port, master_name="ro", quorum=1, down_after_ms=60000,
                       extra=SENT_ACL).start()
        conf = h.write_config(TMP, conf_text([[f"127.0.0.1:{s.port}"]], name="ro"), "ro.conf")
        try:
            with h.Lighttpd(conf) as web:
                web_api = at.Api(web.port, KEY, timeout=10)
                self.assertTrue(ok(web_api("update_user_status", {"users": ["r1"]})))
                self.assertEqual(data(a, "EXISTS", "se.user_status.r1"), "1")
                srv.wait_until(lambda: link_up(b, a.port), 10, "replication")
                # swap roles by hand and tell the sentinel: ustatus's connection to a stays
                s.cli("SENTINEL", "REMOVE", "ro")
                self.assertEqual(s.cli("SENTINEL", "MONITOR", "ro", "127.0.0.1", str(b.port),
                                       "1"), "OK")
                s.cli("SENTINEL", "SET", "ro", "down-after-milliseconds", "60000")
                data(b, "REPLICAOF", "NO", "ONE")
                data(a, "REPLICAOF", "127.0.0.1", str(b.port))
                srv.wait_until(lambda: link_up(a, b.port), 10, "a to follow b")
                r = web_api("update_user_status", {"users": ["r1", "r2"], "state": "moved"})
                self.assertEqual(r.body, b'{"result":{}}')
                self.assertEqual(data(b, "EXISTS", "se.user_status.r2"), "1")
                self.assertEqual(web_api.statuses(["r2"])[0].get("state"), "moved")
                log = web.error_log()
            self.assertIn("READONLY", log)
            self.assertIn("rediscovering the master", log)
            self.assertIn(f'master "ro" is 127.0.0.1:{b.port}, was 127.0.0.1:{a.port}', log)
        finally:
            s.stop()
            b.stop()
            a.stop()


class Shards(unittest.TestCase):
    """Two sentinel_address elements: two shards, each with its own sentinels."""

    def test_two_sentinel_shards(self):
        other_master = h.Redis(args=DATA_ACL).start()
        s = h.Sentinel(other_master.port, quorum=1, extra=SENT_ACL).start()
        conf = h.write_config(TMP, conf_text([SENT_ADDRS[1:], [f"127.0.0.1:{s.port}"]]),
                              "two.conf")
        try:
            users = [f"s{i}" for i in range(200)]
            r = h.cgi(conf, path="/api/update_user_status", body={"users": users},
                      headers=AUTH)
            self.assertEqual(r.body, b'{"result":{}}', r.stderr)
            masters = [current_master(), other_master]
            for u in users:
                where = [data(m, "EXISTS", f"se.user_status.{u}") for m in masters]
                expect = ["0", "0"]
                expect[h.shard_index(u, 2)] = "1"
                self.assertEqual(where, expect, u)
            r = h.cgi(conf, path="/api/get_user_status", body={"users": users}, headers=AUTH)
            self.assertEqual([x["user"] for x in r.json()["result"]["statuses"]], users)
        finally:
            s.stop()
            other_master.stop()


if __name__ == "__main__":
    unittest.main()
