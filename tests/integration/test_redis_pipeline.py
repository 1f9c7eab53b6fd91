"""Writes confirmed by replicas (redis.wait_replicas, SPEC §3.6), with a real master and
replica: WAIT follows the writes of a pipeline in the same exchange, reads never wait,
and a write fewer replicas confirm than asked is answered as error 100 (it may still
have happened on the master, as any failed write may), with one log line per outage.
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import fake_redis  # noqa: E402
import harness as h  # noqa: E402
import servers as s  # noqa: E402
from apitest import ok  # noqa: E402

KEY = "pipeline-key-2c9d"
ERROR_100 = {"code": 100, "message": "internal server error"}


def conf_text(port, replicas=1, extra=""):
    return f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{
    address = "127.0.0.1:{port}"
    prefix = "it"
    io_timeout = "2s"
    wait_replicas = {replicas}
    wait_timeout = "300ms"
    {extra}
  }}
}}
"""


def calls(redis, command):
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def link_up(replica, master_port):
    info = replica.cli("INFO", "replication")
    return f"master_port:{master_port}" in info and "master_link_status:up" in info


def setUpModule():
    global TMP, MASTER, REPLICA, WEB, api
    TMP = h.make_tmpdir("ustatus-pipeline-")
    MASTER = h.Redis(args=["--repl-diskless-sync-delay", "0"]).start()
    REPLICA = h.Redis(args=["--replicaof", "127.0.0.1", str(MASTER.port)]).start()
    s.wait_until(lambda: link_up(REPLICA, MASTER.port), 15, "replication")
    WEB = h.Lighttpd(h.write_config(TMP, conf_text(MASTER.port))).start()
    api = at.Api(WEB.port, KEY, timeout=10)


def tearDownModule():
    h.tear_down_module(WEB, REPLICA, MASTER, dirs=[WEB.dir, TMP, REPLICA.dir, MASTER.dir])


class WaitReplicas(unittest.TestCase):
    def test_a_write_is_answered_after_the_replica_has_it(self):
        # (the first write of a process may run twice: EVALSHA, NOSCRIPT, then EVAL)
        self.assertTrue(ok(api("update_user_status", {"users": ["warm"]})))
        before = calls(MASTER, "wait")
        users = [f"w{i}" for i in range(50)]
        self.assertTrue(ok(api("update_user_status", {"users": users, "state": "here"})))
        self.assertEqual(calls(MASTER, "wait"), before + 1, "one WAIT for the request")
        # WAIT answered: the replica holds every user without waiting any further
        for u in users:
            self.assertEqual(at.stored(REPLICA, at.key_of(u))["state"], "here", u)
        self.assertTrue(ok(api("delete_user_status", {"users": users[:10]})))
        self.assertEqual(calls(MASTER, "wait"), before + 2, "and one after a delete")
        self.assertEqual(REPLICA.command("EXISTS", at.key_of("w0")), 0)

    def test_reads_never_wait(self):
        self.assertTrue(ok(api("update_user_status", {"users": ["r1"]})))
        before = calls(MASTER, "wait")
        for _ in range(3):
            self.assertEqual(len(api.statuses(["r1", "r2"])), 2)
        self.assertEqual(calls(MASTER, "wait"), before)

    def test_unconfirmed_writes_are_error_100_and_reads_go_on(self):
        self.assertTrue(ok(api("update_user_status", {"users": ["u1"], "state": "one"})))
        os.kill(REPLICA.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = api("update_user_status", {"users": ["u1"], "state": "two"})
            took = time.monotonic() - t0
            self.assertEqual((r.status, r.json()), (200, {"error": ERROR_100}))
            # the WAIT timeout (300 ms), not io_timeout (2 s), bounds the answer
            self.assertLess(took, 1.8, took)
            for _ in range(3):
                self.assertEqual(api("update_user_online", {"users": ["u2"]}).json(),
                                 {"error": ERROR_100})
            # reads need no replica
            st = api.statuses(["u1"])
            self.assertEqual(st[0]["user"], "u1")
            # in a batch, only the writes fail
            r = api.batch([{"get_user_status": {"users": ["u1"]}},
                           {"update_user_status": {"users": ["u3"]}}])
            replies = r.json()["replies"]
            self.assertIn("get_user_status", replies[0])
            self.assertEqual(replies[1], {"error": ERROR_100})
        finally:
            os.kill(REPLICA.proc.pid, signal.SIGCONT)
        s.wait_until(lambda: ok(api("update_user_status", {"users": ["u1"], "state": "three"})),
                     15, "writes confirmed again")
        self.assertEqual(at.stored(REPLICA, at.key_of("u1"))["state"], "three")
        log = WEB.error_log()
        self.assertEqual(log.count("replicas confirmed the writes within 300 ms"), 1, log)
        self.assertIn("0 of 1 replicas confirmed", log)
        self.assertIn("writes confirmed by 1 replicas again", log)

    def test_more_replicas_than_there_are(self):
        # A master with one replica never confirms to two: every write fails, clearly.
        web = h.Lighttpd(h.write_config(TMP, conf_text(MASTER.port, 2), "two.conf")).start()
        try:
            two = at.Api(web.port, KEY, timeout=10)
            r = two("update_user_status", {"users": ["t1"]})
            self.assertEqual(r.json(), {"error": ERROR_100})
            self.assertIn("1 of 2 replicas confirmed", web.error_log())
            self.assertTrue(ok(two("get_user_status", {"users": ["t1"]})))
        finally:
            web.stop()

    def test_wait_on_a_replica_is_refused(self):
        # Pointed at the replica by mistake: the write is refused (READONLY) and so is
        # WAIT; the answer is error 100, and nothing was written.
        web = h.Lighttpd(h.write_config(TMP, conf_text(REPLICA.port), "replica.conf")).start()
        try:
            r = at.Api(web.port, KEY, timeout=10)("update_user_status", {"users": ["ro1"]})
            self.assertEqual(r.json(), {"error": ERROR_100})
            self.assertEqual(MASTER.command("EXISTS", at.key_of("ro1")), 0)
        finally:
            web.stop()


class WaitNotAnswered(unittest.TestCase):
    """The exchange ends before WAIT's answer is read: the writes are not acknowledged.
    A fake Redis (fake_redis.py) answers every write, and WAIT as each test says."""

    def setUp(self):
        self.wait_answers = []   # per WAIT, in order: bytes to send, or "close"

        def handler(args):
            name = args[0].upper() if args else b""
            if name in (b"EVALSHA", b"EVAL", b"DEL"):
                return b":1\r\n"
            if name == b"WAIT":
                answer = self.wait_answers.pop(0) if self.wait_answers else b":1\r\n"
                if answer == "close":
                    raise ValueError("the connection breaks before WAIT's answer")
                return answer
            if name == b"PING":
                return b"+PONG\r\n"
            return b"+OK\r\n"
        self.fake = fake_redis.FakeRedis(handler=handler).start()
        self.fake.mode = "custom"
        self.conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{self.fake.port}" prefix = "it"
                       io_timeout = "1s" wait_replicas = 1 wait_timeout = "300ms" }} }}
""", "fake.conf")

    def tearDown(self):
        self.fake.stop()

    def update(self):
        return h.cgi(self.conf, path="/api/update_user_status", body={"users": ["f1"]},
                     headers={"X-API-Key": KEY})

    def names(self):
        return [c[0].upper() for c in self.fake.commands]

    def test_connection_broken_before_wait_resends_the_write_with_its_wait(self):
        self.wait_answers = ["close", b":1\r\n"]
        r = self.update()
        self.assertEqual(r.body, b'{"result":{}}', r.stderr)
        self.assertEqual(self.fake.accepted, 2)
        sent = [n for n in self.names() if n in (b"EVALSHA", b"EVAL", b"WAIT")]
        self.assertEqual(sent, [b"EVALSHA", b"WAIT", b"EVALSHA", b"WAIT"])

    def test_wait_never_answered_is_error_100(self):
        self.wait_answers = [b""]  # silence until io_timeout
        t0 = time.monotonic()
        r = self.update()
        self.assertEqual(r.json(), {"error": ERROR_100}, r.stderr)
        self.assertGreater(time.monotonic() - t0, 0.9)  # it did wait for the answer
        self.assertIn("timed out", r.stderr)

    def test_wait_answering_an_error_is_error_100(self):
        self.wait_answers = [b"-ERR WAIT cannot be used with replica instances\r\n"]
        r = self.update()
        self.assertEqual(r.json(), {"error": ERROR_100}, r.stderr)
        self.assertIn("WAIT failed: ERR WAIT cannot be used", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
