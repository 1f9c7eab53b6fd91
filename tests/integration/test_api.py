"""The server API (SPEC §1) against a real redis-server, through a real lighttpd spawning
ustatus-fcgi: routing, authentication, the envelope and errors, the one strict JSON
intake, batch and the legacy form; plus plain-CGI runs of the same binary for
configuration variants. (What is stored in Redis: test_store.py; the command line:
test_main.py; the Redis connection: test_redis_node.py.)
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402

KEY = "it-key-3f9a"
AUTH = {"X-API-Key": KEY, "Content-Type": "application/json"}


def setUpModule():
    global REDIS, WEB, TMP, CONF, api
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
    api = at.Api(WEB.port, KEY)


def tearDownModule():
    h.tear_down_module(WEB, REDIS, dirs=[TMP])


key_of = at.key_of


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
        r = api("batch", body)
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
        self.assertEqual(sorted(rep[4]["error"]), ["code", "details", "message"])
        self.assertEqual((rep[4]["error"]["code"], rep[4]["error"]["message"]),
                         (104, "not found"))
        self.assertIsInstance(rep[4]["error"]["details"], str)
        self.assertIn("unknown method", rep[4]["error"]["details"])
        self.assertEqual(rep[5]["error"]["code"], 107)
        self.assertEqual(rep[6], {"delete_user_status": {}})
        self.assertEqual(rep[7]["error"]["code"], 107)
        # the delete ran after the update in the same pipeline
        self.assertEqual(REDIS.command("EXISTS", key_of("b1")), 0)
        self.assertEqual(REDIS.command("EXISTS", key_of("b2")), 1)

    def test_batch_bad_body(self):
        r = api("batch", {"commands": {}})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], 107)
        r = api("batch", b"[]")
        self.assertEqual(r.status, 400)

    def test_legacy_form(self):
        r = api.legacy([
            json.dumps({"id": 1, "method": "update_user_status", "params": {"users": ["l1"]}}),
            "",
            json.dumps({"id": 2, "method": "GET_USER_STATUS", "params": {"users": ["l1", "l2"]}}),
            json.dumps({"id": 3, "method": "publish", "params": {}}),
            "{broken",
            json.dumps({"method": "delete_user_status", "params": {"users": ["l1"]}}),
        ])
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


class JsonIntake(unittest.TestCase):
    """One strict JSON reader for every body (SPEC §1.2): NaN, Infinity, -Infinity, a raw
    control character in a string and anything after the JSON value are malformed JSON,
    answered 400 / 107 like any other, and nothing reaches Redis."""

    def setUp(self):
        REDIS.cli("FLUSHALL")

    def assert_nothing_written(self):
        self.assertEqual(REDIS.command("KEYS", "*"), [])

    def test_direct_calls(self):
        for method in ("update_user_status", "get_user_status", "delete_user_status",
                       "update_user_online"):
            for what, body in at.bad_json_bodies(b'{"users":["<S>"]}'):
                at.assert_bad_request(self, api(method, body), f"{method}: {what}")
        for what, body in at.bad_json_bodies(b'{"users":["j1"],"state":"<S>"}'):
            at.assert_bad_request(self, api("update_user_status", body), f"state: {what}")
        self.assert_nothing_written()
        # The same bodies without the flaw are taken (the flaw alone is refused).
        r = api("update_user_status", b'{"users":["j1"],"state":"s","x":1.5e3}')
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))

    def test_batch(self):
        for what, body in at.bad_json_bodies(
                b'{"commands":[{"update_user_status":{"users":["<S>"]}}]}'):
            at.assert_bad_request(self, api("batch", body), f"batch: {what}")
        for what, body in at.bad_json_bodies(b'{"users":["<S>"]}'):
            if what in ("trailing garbage", "a second value"):
                continue  # inside the array these are a missing ',' — malformed all the same
            whole = b'{"commands":[{"update_user_status":' + body + b'}]}'
            at.assert_bad_request(self, api("batch", whole), f"batch params: {what}")
        # A good command next to the bad one is not run either: the body is refused whole.
        body = (b'{"commands":[{"update_user_status":{"users":["b1"]}},'
                b'{"update_user_online":{"users":["b2"],"x":NaN}}]}')
        at.assert_bad_request(self, api("batch", body), "good and bad commands")
        self.assert_nothing_written()

    def test_legacy_form(self):
        # A line the reader refuses is answered in its reply line as error 107, like the
        # "{broken" line of test_legacy_form; the request as a whole is still HTTP 200.
        for what, params in at.bad_json_bodies(b'{"users":["<S>"]}'):
            line = b'{"id":7,"method":"update_user_status","params":' + params + b'}'
            r = api.legacy([line])
            self.assertEqual(r.status, 200, what)
            replies = r.body.split(b"\n")
            # (a raw newline splits the line in two: two malformed lines, two replies)
            self.assertEqual(len(replies), 2 if what == "a raw newline in a string" else 1,
                             (what, r))
            for reply in replies:
                j = json.loads(reply)
                self.assertNotIn("result", j, what)
                self.assertEqual((j["error"]["code"], j["error"]["message"]),
                                 (107, "bad request"), (what, r))
        # NaN and garbage after the line's own object, with a good line before and after.
        good = json.dumps({"id": 1, "method": "get_user_status", "params": {"users": ["x"]}})
        for bad in (b'{"id":2,"method":"update_user_status","params":{"users":["lg"]},"x":NaN}',
                    b'{"id":2,"method":"update_user_status","params":{"users":["lg"]}} x',
                    b'{"id":2,"method":"update_user_status","params":{"users":["lg"],'
                    b'"x":-Infinity}}'):
            r = api.legacy([good, bad, good])
            self.assertEqual(r.status, 200, bad)
            lines = r.body.split(b"\n")
            self.assertEqual(len(lines), 3, r)
            self.assertEqual(lines[0], b'{"id":1,"result":{"statuses":[{"user":"x"}]}}')
            self.assertEqual(json.loads(lines[1])["error"]["code"], 107, (bad, r))
            self.assertNotIn(b'"result"', lines[1])
            self.assertEqual(lines[2], lines[0])
        self.assert_nothing_written()


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
        # read back through the API: the key's encoding is the store's business (SPEC §2)
        r = h.cgi(c, path="/api/get_user_status", body={"users": ["r"]}, headers=hd)
        self.assertEqual(r.json()["result"]["statuses"][0].get("state"), "away")

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
        at.assert_ttl(self, REDIS, key_of("j"), 86400)
        r = h.cgi(path, path="/api/update_user_status", body={"users": ["j"]},
                  headers={"X-API-Key": "from-env"},
                  env={"USTATUS_HTTP_API_KEY": "from-env",
                       "USTATUS_USER_STATUS_EXPIRE_INTERVAL": "2h"})
        self.assertEqual(r.body, b'{"result":{}}')
        at.assert_ttl(self, REDIS, key_of("j"), 7200)

    def test_key_never_logged(self):
        c = self.conf(name="log.conf")
        r = h.cgi(c, body={"users": ["1"]}, headers={"X-API-Key": "wrong"},
                  env={"USTATUS_LOG_LEVEL": "debug"})
        self.assertEqual(r.status, 401)
        self.assertNotIn(KEY, r.stderr)
        self.assertNotIn(KEY, WEB.error_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
