"""The server API (SPEC §1, §2) against a real redis-server, through a real lighttpd
spawning ustatus-fcgi, plus plain-CGI runs of the same binary for configuration variants.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

KEY = "it-key-3f9a"
AUTH = {"X-API-Key": KEY, "Content-Type": "application/json"}
EXPIRE_S = 3600


def setUpModule():
    global REDIS, WEB, TMP, CONF
    TMP = h.make_tmpdir("ustatus-it-")
    REDIS = h.Redis().start()
    CONF = h.write_config(TMP, f"""
http_api {{
  key = "{KEY}"
  max_body_bytes = 65536
}}
user_status {{
  expire_interval = "1h"
  max_users_per_request = 2000
  redis {{
    address = "127.0.0.1:{REDIS.port}"
    prefix = "it"
    io_timeout = "1s"
    connect_timeout = "500ms"
  }}
}}
""")
    WEB = h.Lighttpd(CONF).start()


def tearDownModule():
    WEB.stop()
    REDIS.stop()
    shutil.rmtree(TMP, ignore_errors=True)


def api(method, body, headers=None, path_prefix="/api"):
    hdrs = dict(AUTH)
    if headers is not None:
        hdrs = headers
    return h.http(WEB.port, "POST", f"{path_prefix}/{method}", body, hdrs)


def key_of(user):
    return b"it.user_status." + user.encode()


class Errors(unittest.TestCase):
    def test_405_for_other_methods(self):
        for m in ("GET", "PUT", "DELETE", "PATCH"):
            r = h.http(WEB.port, m, "/api/get_user_status", headers=AUTH)
            self.assertEqual(r.status, 405, m)
            self.assertEqual(r.headers.get("allow"), "POST")
            self.assertEqual(r.body, b"")

    def test_401(self):
        body = {"users": ["42"]}
        cases = [
            {},
            {"X-API-Key": "wrong"},
            {"X-API-Key": KEY + "x"},
            {"Authorization": "apikey wrong"},
            {"Authorization": f"Bearer {KEY}"},
            {"Authorization": f"apikey {KEY} extra"},
            # X-API-Key decides when present, even if the other one is right
            {"X-API-Key": "wrong", "Authorization": f"apikey {KEY}"},
        ]
        for hdrs in cases:
            r = api("get_user_status", body, hdrs)
            self.assertEqual((r.status, r.body), (401, b""), hdrs)
        r = h.http(WEB.port, "POST", "/api/get_user_status?api_key=wrong", body, {})
        self.assertEqual((r.status, r.body), (401, b""))

    def test_auth_forms_accepted(self):
        body = {"users": []}
        ok = b'{"result":{"statuses":[]}}'
        for hdrs in ({"X-API-Key": KEY}, {"Authorization": f"apikey {KEY}"},
                     {"Authorization": f"APIKEY {KEY}"}):
            r = api("get_user_status", body, hdrs)
            self.assertEqual((r.status, r.body), (200, ok), hdrs)
        r = h.http(WEB.port, "POST", f"/api/get_user_status?x=1&api_key={KEY}", body, {})
        self.assertEqual((r.status, r.body), (200, ok))

    def test_404_unknown_method(self):
        r = api("get_user_statuz", {"users": ["1"]})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b'{"error":{"code":104,"message":"not found"}}')

    def test_400_not_json_and_wrong_types(self):
        for body in (b"", b"not json", b'{"users":["1"]', b'["1"]', b'{"users":["1"]} x',
                     b'{"users":"1"}', b'{"users":[1]}', b'{"users":["1",null]}',
                     b'{"users":{"a":1}}'):
            r = api("get_user_status", body)
            self.assertEqual(r.status, 400, body)
            j = r.json()
            self.assertEqual(j["error"]["code"], 107, body)
            self.assertEqual(j["error"]["message"], "bad request")
            self.assertIsInstance(j["error"]["details"], str)
        r = api("update_user_status", {"users": ["1"], "state": 5})
        self.assertEqual(r.status, 400)

    def test_200_107_semantic(self):
        long_state = "s" * 257
        cases = [
            {},
            {"users": [""]},
            {"users": ["a\u0000b"]},
            {"users": ["x" * 1025]},
            {"users": [str(i) for i in range(2001)]},
        ]
        for body in cases:
            r = api("update_user_status", body)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["error"]["code"], 107, str(body)[:80])
        r = api("update_user_status", {"users": ["1"], "state": long_state})
        self.assertEqual(r.json()["error"]["code"], 107)
        # invalid UTF-8 in a user ID, sent raw
        r = api("update_user_status", b'{"users":["\xff\xfe"]}')
        self.assertIn(r.status, (200, 400))
        self.assertEqual(r.json()["error"]["code"], 107)
        # nothing was written by any rejected call
        self.assertEqual(REDIS.cli("EXISTS", "it.user_status.1"), "0")

    def test_413(self):
        big = json.dumps({"users": ["u" * 1000] * 70})
        self.assertGreater(len(big), 65536)
        r = api("update_user_status", big)
        self.assertEqual((r.status, r.body), (413, b""))
        self.assertEqual(REDIS.cli("EXISTS", key_of("u" * 1000).decode()), "0")
        # just under the limit is fine
        ok = json.dumps({"users": ["u" * 1000] * 60})
        self.assertEqual(api("get_user_status", ok).status, 200)

    def test_user_limit_exactly(self):
        r = api("get_user_status", {"users": [str(i) for i in range(2000)]})
        self.assertEqual(len(r.json()["result"]["statuses"]), 2000)


class Semantics(unittest.TestCase):
    def setUp(self):
        REDIS.cli("FLUSHALL")

    def test_seed_examples_shapes(self):
        self.assertEqual(api("update_user_status", {"users": ["42"]}).body, b'{"result":{}}')
        now = int(time.time())
        r = api("get_user_status", {"users": ["42"]})
        j = r.json()
        self.assertEqual(r.headers["content-type"], "application/json")
        st = j["result"]["statuses"]
        self.assertEqual(len(st), 1)
        self.assertEqual(st[0]["user"], "42")
        self.assertTrue(now - 2 <= st[0]["active"] <= now + 2)
        self.assertNotIn("online", st[0])
        self.assertEqual(api("delete_user_status", {"users": ["42"]}).body, b'{"result":{}}')
        r = api("get_user_status", {"users": ["42"]})
        self.assertEqual(r.body, b'{"result":{"statuses":[{"user":"42"}]}}')

    def test_order_and_duplicates(self):
        api("update_user_status", {"users": ["b"]})
        r = api("get_user_status", {"users": ["a", "b", "a", "c", "b"]})
        st = r.json()["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], ["a", "b", "a", "c", "b"])
        self.assertEqual(["active" in s for s in st], [False, True, False, False, True])

    def test_online_only(self):
        api("update_user_online", {"users": ["7"]})
        s = api("get_user_status", {"users": ["7"]}).json()["result"]["statuses"][0]
        self.assertIn("online", s)
        self.assertNotIn("active", s)
        api("update_user_status", {"users": ["7"]})
        s = api("get_user_status", {"users": ["7"]}).json()["result"]["statuses"][0]
        self.assertIn("online", s)
        self.assertIn("active", s)

    def test_state(self):
        api("update_user_status", {"users": ["s1"], "state": "away"})
        st = lambda: api("get_user_status", {"users": ["s1"]}).json()["result"]["statuses"][0]
        self.assertEqual(st()["state"], "away")
        api("update_user_status", {"users": ["s1"]})  # absent: kept
        self.assertEqual(st()["state"], "away")
        api("update_user_status", {"users": ["s1"], "state": "dnd \"quoted\" ü"})
        self.assertEqual(st()["state"], "dnd \"quoted\" ü")
        api("update_user_status", {"users": ["s1"], "state": ""})  # "": removed
        self.assertNotIn("state", st())
        self.assertIn("active", st())
        self.assertEqual(REDIS.command("HEXISTS", key_of("s1"), "state"), 0)

    def test_odd_stored_timestamps(self):
        # Someone else wrote these fields: only a positive int64 in decimal is a time, and
        # it is sent as a valid JSON integer (no leading zeros) whatever its stored form.
        cases = [
            ("007", b"7"),
            ("0000000000000000001", b"1"),  # 19 characters
            ("9223372036854775807", b"9223372036854775807"),
            ("9223372036854775808", None),
            ("99999999999999999999", None),
            ("00000000000000000001", None),  # 20 characters
            ("0", None),
            ("000", None),
            ("", None),
            ("12a", None),
            ("-5", None),
            (" 5", None),
        ]
        for stored, sent in cases:
            with self.subTest(stored=stored):
                REDIS.command("DEL", key_of("ts"))
                REDIS.command("HSET", key_of("ts"), "active", stored, "online", stored)
                r = api("get_user_status", {"users": ["ts"]})
                if sent is None:
                    want = b'{"result":{"statuses":[{"user":"ts"}]}}'
                else:
                    want = (b'{"result":{"statuses":[{"user":"ts","active":' + sent +
                            b',"online":' + sent + b'}]}}')
                self.assertEqual(r.body, want)

    def test_delete_removes_everything(self):
        api("update_user_status", {"users": ["d1", "d2"], "state": "x"})
        api("update_user_online", {"users": ["d1"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("d1")), 1)
        api("delete_user_status", {"users": ["d1", "d2"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("d1")), 0)
        self.assertEqual(REDIS.command("EXISTS", key_of("d2")), 0)
        r = api("get_user_status", {"users": ["d1"]})
        self.assertEqual(r.body, b'{"result":{"statuses":[{"user":"d1"}]}}')

    def test_ttl_extended_on_every_write(self):
        api("update_user_status", {"users": ["t"]})
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_online", {"users": ["t"]})
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_status", {"users": ["t"], "state": "x"})
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)

    def test_max_merge_never_lowers(self):
        future = int(time.time()) + 100000
        REDIS.command("HSET", key_of("m"), "active", future, "online", future)
        api("update_user_status", {"users": ["m"]})
        api("update_user_online", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertEqual((s["active"], s["online"]), (future, future))
        # an older stored value is raised
        REDIS.command("HSET", key_of("m"), "active", 1000)
        api("update_user_status", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertGreater(s["active"], future - 100001)
        self.assertEqual(REDIS.command("TTL", key_of("m")), EXPIRE_S)

    def test_user_ids_round_trip_and_never_collide(self):
        users = ["with space", 'quo"te', "back\\slash", "юникод 😀", "a.b", "a", "a ",
                 "x" * 1024, "x" * 1023, "tab\there", "{tag}1", "\u2028sep", "new\nline"]
        r = api("update_user_status", {"users": users, "state": "here"})
        self.assertEqual(r.body, b'{"result":{}}')
        keys = sorted(REDIS.command("KEYS", "it.user_status.*"))
        self.assertEqual(keys, sorted(key_of(u) for u in users))
        r = api("get_user_status", {"users": users + ["x" * 1022]})
        st = r.json()["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], users + ["x" * 1022])
        self.assertTrue(all("active" in s for s in st[:-1]))
        self.assertNotIn("active", st[-1])
        api("delete_user_status", {"users": ["a"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("a ")), 1)

    def test_noscript_reload(self):
        api("update_user_status", {"users": ["n"]})
        REDIS.cli("SCRIPT", "FLUSH")
        REDIS.cli("DEL", "it.user_status.n")
        r = api("update_user_status", {"users": ["n", "n2"]})
        self.assertEqual(r.body, b'{"result":{}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("n")), 1)
        self.assertEqual(REDIS.command("TTL", key_of("n2")), EXPIRE_S)

    def test_one_script_call_per_group_of_users(self):
        # Redis runs the update script once per 100 users of a node, not once per user.
        def evalsha_calls():
            for line in REDIS.cli("INFO", "commandstats").splitlines():
                if line.startswith("cmdstat_evalsha:"):
                    return int(line.split("calls=")[1].split(",")[0])
            return 0
        api("update_user_status", {"users": ["warm"]})  # the script is loaded
        before = evalsha_calls()
        users = [f"g{i}" for i in range(250)]
        self.assertEqual(api("update_user_status", {"users": users, "state": "x"}).body,
                         b'{"result":{}}')
        self.assertEqual(evalsha_calls() - before, 3)
        for u in users:
            self.assertEqual(REDIS.command("TTL", key_of(u)), EXPIRE_S)
            self.assertEqual(REDIS.command("HGET", key_of(u), "state"), b"x")

    def test_order_kept_inside_a_request(self):
        # Writes are grouped only where no get or delete stands between them.
        body = {"commands": [
            {"update_user_status": {"users": ["o1", "o2"]}},
            {"delete_user_status": {"users": ["o1"]}},
            {"get_user_status": {"users": ["o1", "o2"]}},
            {"update_user_online": {"users": ["o1"]}},
            {"update_user_status": {"users": ["o2"], "state": "s"}},
            {"get_user_status": {"users": ["o1", "o2"]}},
        ]}
        rep = h.http(WEB.port, "POST", "/api/batch", body, AUTH).json()["replies"]
        first = rep[2]["get_user_status"]["statuses"]
        self.assertEqual(first[0], {"user": "o1"})
        self.assertIn("active", first[1])
        last = rep[5]["get_user_status"]["statuses"]
        self.assertIn("online", last[0])
        self.assertNotIn("active", last[0])
        self.assertEqual(last[1]["state"], "s")

    def test_empty_users(self):
        self.assertEqual(api("update_user_status", {"users": []}).body, b'{"result":{}}')
        self.assertEqual(api("get_user_status", {"users": []}).body,
                         b'{"result":{"statuses":[]}}')
        self.assertEqual(api("delete_user_status", {"users": []}).body, b'{"result":{}}')

    def test_big_batch_of_users(self):
        users = [f"u{i}" for i in range(2000)]
        self.assertEqual(api("update_user_status", {"users": users}).body, b'{"result":{}}')
        st = api("get_user_status", {"users": users}).json()["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], users)
        self.assertTrue(all("active" in s for s in st))


class BatchAndLegacy(unittest.TestCase):
    def setUp(self):
        REDIS.cli("FLUSHALL")

    def test_batch_mixed(self):
        body = {"commands": [
            {"update_user_status": {"users": ["b1", "b2"], "state": "busy"}},
            {"update_user_online": {"users": ["b2"]}},
            {"get_user_status": {"users": ["b1", "b2", "b3"]}},
            {"get_user_status": {"users": [""]}},
            {"nope": {}},
            {"get_user_status": {"users": 5}},
            {"delete_user_status": {"users": ["b1"]}},
            {"get_user_status": {"users": ["b1"]}, "update_user_status": {"users": ["b1"]}},
        ], "parallel": True}
        r = h.http(WEB.port, "POST", "/api/batch", body, AUTH)
        self.assertEqual(r.status, 200)
        rep = r.json()["replies"]
        self.assertEqual(len(rep), 8)
        self.assertEqual(rep[0], {"update_user_status": {}})
        self.assertEqual(rep[1], {"update_user_online": {}})
        st = rep[2]["get_user_status"]["statuses"]
        self.assertEqual([s["user"] for s in st], ["b1", "b2", "b3"])
        self.assertEqual(st[0]["state"], "busy")
        self.assertIn("online", st[1])
        self.assertNotIn("online", st[0])
        self.assertEqual(st[2], {"user": "b3"})
        self.assertEqual(rep[3]["error"]["code"], 107)
        self.assertEqual(rep[4]["error"], {"code": 104, "message": "not found",
                                           "details": rep[4]["error"]["details"]})
        self.assertEqual(rep[5]["error"]["code"], 107)
        self.assertEqual(rep[6], {"delete_user_status": {}})
        self.assertEqual(rep[7]["error"]["code"], 107)
        # the delete ran after the update in the same pipeline
        self.assertEqual(REDIS.command("EXISTS", key_of("b1")), 0)
        self.assertEqual(REDIS.command("EXISTS", key_of("b2")), 1)

    def test_batch_bad_body(self):
        r = h.http(WEB.port, "POST", "/api/batch", {"commands": {}}, AUTH)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], 107)
        r = h.http(WEB.port, "POST", "/api/batch", b"[]", AUTH)
        self.assertEqual(r.status, 400)

    def test_legacy_form(self):
        body = "\n".join([
            json.dumps({"id": 1, "method": "update_user_status", "params": {"users": ["l1"]}}),
            "",
            json.dumps({"id": 2, "method": "GET_USER_STATUS", "params": {"users": ["l1", "l2"]}}),
            json.dumps({"id": 3, "method": "publish", "params": {}}),
            "{broken",
            json.dumps({"method": "delete_user_status", "params": {"users": ["l1"]}}),
        ])
        r = h.http(WEB.port, "POST", "/api", body, AUTH)
        self.assertEqual(r.status, 200)
        lines = r.body.split(b"\n")
        self.assertEqual(len(lines), 5)
        self.assertEqual(lines[0], b'{"id":1,"result":{}}')
        j = json.loads(lines[1])
        self.assertEqual(j["id"], 2)
        self.assertEqual([s["user"] for s in j["result"]["statuses"]], ["l1", "l2"])
        self.assertIn("active", j["result"]["statuses"][0])
        self.assertEqual(json.loads(lines[2])["error"]["code"], 104)
        self.assertEqual(json.loads(lines[2])["id"], 3)
        self.assertEqual(json.loads(lines[3])["error"]["code"], 107)
        self.assertEqual(lines[4], b'{"result":{}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("l1")), 0)


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
        deadline = time.monotonic() + 5
        while True:
            r = api("update_user_status", {"users": ["o"]})
            if r.body == b'{"result":{}}':
                break
            self.assertLess(time.monotonic(), deadline, "ustatus did not reconnect")
            time.sleep(0.1)
        self.assertEqual(REDIS.command("EXISTS", key_of("o")), 1)
        self.assertIn("redis", WEB.error_log())


class HealthBackOff(unittest.TestCase):
    def test_health_does_not_storm_a_dead_redis(self):
        """/health needs no key: it must respect the connection back-off (SPEC §3.6)."""
        import socket
        import threading
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


class Variants(unittest.TestCase):
    """Configuration variants, each run as plain CGI against the same Redis."""

    def conf(self, http_api="", user_status="", name="v.conf"):
        return h.write_config(TMP, f"""
http_api {{ key = "{KEY}" {http_api} }}
user_status {{ {user_status}
  redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "it" }} }}
""", name)

    def test_disabled_108(self):
        c = self.conf(user_status="enabled = false")
        for m in ("update_user_status", "get_user_status", "delete_user_status",
                  "update_user_online"):
            r = h.cgi(c, path=f"/api/{m}", body={"users": ["1"]}, headers={"X-API-Key": KEY})
            self.assertEqual((r.status, r.json()["error"]["code"]), (200, 108), m)
            self.assertEqual(r.json()["error"]["message"], "not available")
        r = h.cgi(c, path="/api/get_user_status", body={"users": ["1"]},
                  headers={"X-API-Key": KEY, "X-Centrifugo-Error-Mode": "transport"})
        self.assertEqual((r.status, r.body), (400, b'{"code":108,"message":"not available"}'))

    def test_transport_error_mode(self):
        c = self.conf(http_api='error_mode = "transport"')
        hd = {"X-API-Key": KEY}
        r = h.cgi(c, path="/api/get_user_status", body=b"nope", headers=hd)
        self.assertEqual((r.status, r.body), (400, b'{"code":107,"message":"bad request"}'))
        r = h.cgi(c, path="/api/get_user_status", body={"users": [""]}, headers=hd)
        self.assertEqual((r.status, r.body), (400, b'{"code":107,"message":"bad request"}'))
        r = h.cgi(c, path="/api/nope", body={}, headers=hd)
        self.assertEqual((r.status, r.body), (404, b'{"code":104,"message":"not found"}'))
        # batch replies are not affected by the transport mode
        r = h.cgi(c, path="/api/batch", body={"commands": [{"get_user_status": {"users": [""]}}]},
                  headers=hd)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["replies"][0]["error"]["code"], 107)
        # 100 -> 500 with Redis unreachable
        dead = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" error_mode = "transport" }}
user_status {{ redis {{ address = "127.0.0.1:1" }} }}
""", "dead.conf")
        r = h.cgi(dead, path="/api/get_user_status", body={"users": ["1"]}, headers=hd)
        self.assertEqual((r.status, r.body),
                         (500, b'{"code":100,"message":"internal server error"}'))
        # the header switches the mode per request
        c2 = self.conf()
        r = h.cgi(c2, path="/api/get_user_status", body=b"[]",
                  headers={"X-API-Key": KEY, "X-Centrifugo-Error-Mode": "transport"})
        self.assertEqual((r.status, r.body), (400, b'{"code":107,"message":"bad request"}'))

    def test_state_regex(self):
        c = self.conf(user_status='state_regex = "^(away|dnd)$"')
        hd = {"X-API-Key": KEY}
        r = h.cgi(c, path="/api/update_user_status", body={"users": ["r"], "state": "away"},
                  headers=hd)
        self.assertEqual(r.body, b'{"result":{}}')
        r = h.cgi(c, path="/api/update_user_status", body={"users": ["r"], "state": "party"},
                  headers=hd)
        self.assertEqual(r.json()["error"]["code"], 107)
        self.assertEqual(REDIS.command("HGET", key_of("r"), "state"), b"away")

    def test_insecure_and_empty_key(self):
        empty = h.write_config(TMP, f"""
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" }} }}
""", "empty.conf")
        r = h.cgi(empty, body={"users": []}, headers={"X-API-Key": ""})
        self.assertEqual(r.status, 401)
        insecure = h.write_config(TMP, f"""
http_api {{ insecure = true }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" }} }}
""", "insecure.conf")
        r = h.cgi(insecure, body={"users": []})
        self.assertEqual((r.status, r.body), (200, b'{"result":{"statuses":[]}}'))

    def test_json_config_and_env_override(self):
        path = h.write_config(TMP, json.dumps(
            {"http_api": {"key": "from-json"}, "unknown_section": {"x": 1},
             "user_status": {"enabled": True, "expire_interval": "24h",
                             "redis": {"address": f"127.0.0.1:{REDIS.port}",
                                       "prefix": "it"}}}), "c.json")
        r = h.cgi(path, path="/api/update_user_status", body={"users": ["j"]},
                  headers={"X-API-Key": "from-json"})
        self.assertEqual(r.body, b'{"result":{}}')
        self.assertEqual(REDIS.command("TTL", key_of("j")), 86400)
        r = h.cgi(path, path="/api/update_user_status", body={"users": ["j"]},
                  headers={"X-API-Key": "from-env"},
                  env={"USTATUS_HTTP_API_KEY": "from-env",
                       "USTATUS_USER_STATUS_EXPIRE_INTERVAL": "2h"})
        self.assertEqual(r.body, b'{"result":{}}')
        self.assertEqual(REDIS.command("TTL", key_of("j")), 7200)

    def test_key_never_logged(self):
        c = self.conf(name="log.conf")
        r = h.cgi(c, body={"users": ["1"]}, headers={"X-API-Key": "wrong"},
                  env={"USTATUS_LOG_LEVEL": "debug"})
        self.assertEqual(r.status, 401)
        self.assertNotIn(KEY, r.stderr)
        self.assertNotIn(KEY, WEB.error_log())


class ConfigErrors(unittest.TestCase):
    def run_bin(self, *args, env=None):
        e = {"PATH": os.environ.get("PATH", "")}
        e.update(env or {})
        return subprocess.run([h.BIN, *args], capture_output=True, text=True, timeout=20, env=e)

    def test_error_names_option_and_line_exit_78(self):
        c = h.write_config(TMP, 'http_api {\n  key = "k"\n}\nuser_status {\n'
                                '  expire_interval = "12x"\n}\n', "bad.conf")
        r = self.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("expire_interval", r.stderr)
        self.assertIn(":5", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        c = h.write_config(TMP, 'http_api {\n  kee = "k"\n}\n', "bad2.conf")
        r = self.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("kee", r.stderr)
        self.assertIn(":2", r.stderr)
        # the same when started for real, not only with --check-config
        r = self.run_bin("-c", c)
        self.assertEqual(r.returncode, 78)
        r = self.run_bin("-c", os.path.join(TMP, "missing.conf"))
        self.assertEqual(r.returncode, 78)

    def test_long_password_refused_and_not_logged(self):
        secret = "p" * 299 + "Z"
        c = h.write_config(TMP, f'user_status {{ redis {{ password = "{secret}" }} }}\n',
                           "longpw.conf")
        r = self.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("longer than 255 bytes", r.stderr)
        self.assertNotIn("pZ", r.stderr)
        # a password in a redis:// URL with '/' and '?' in it: never quoted back
        r = self.run_bin("-c", CONF, "--check-config", env={
            "USTATUS_USER_STATUS_REDIS_ADDRESS": "redis://default:s3cr/et?PW@127.0.0.1:99999"})
        self.assertEqual(r.returncode, 78)
        self.assertNotIn("s3cr", r.stderr)
        self.assertNotIn("PW", r.stderr)

    def test_check_config_ok_and_version(self):
        r = self.run_bin("-c", CONF, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("ustatus-fcgi "))
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--config", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
