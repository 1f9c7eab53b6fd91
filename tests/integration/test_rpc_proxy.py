"""The Centrifugo OSS RPC proxy endpoint (SPEC §6): POST <centrifugo_proxy.handler_prefix>/rpc
with Centrifugo's RPC proxy JSON, authenticated by centrifugo_proxy.key in X-API-Key,
against a real redis-server through a real lighttpd running one ustatus-fcgi process for
/api, /client and /centrifugo (so the minimum write interval it shares with the client
endpoints is observable), and as plain CGI for configuration variants.
"""
import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
from apitest import Unique  # noqa: E402

API_KEY = "rpc-it-api-key"
PROXY_KEY = "rpc-it-proxy-key"
SECRET = "rpc-it-hmac-secret"
PREFIX = "rp"


def setUpModule():
    global REDIS, WEB, TMP
    TMP = h.make_tmpdir("ustatus-rpc-")
    REDIS = h.Redis().start()
    WEB = h.Lighttpd(config("main.json"), prefix="/api", procs=1)
    # bin-path spawns the process on <socket>-0; the other prefixes reach the same one.
    WEB.extra = f"""
fastcgi.server += (
  "/client" => (( "socket" => "{WEB.dir}/ustatus.sock-0", "check-local" => "disable" )),
  "/centrifugo" => (( "socket" => "{WEB.dir}/ustatus.sock-0", "check-local" => "disable" )),
)
"""
    WEB.start()


def tearDownModule():
    h.tear_down_module(WEB, REDIS, dirs=[TMP])


def config(name, proxy=None):
    doc = {"http_api": {"key": API_KEY},
           "user_status": {"state_regex": "^[a-z]+$",
                           "redis": {"address": f"127.0.0.1:{REDIS.port}", "prefix": PREFIX}},
           "client": {"token": {"hmac_secret_key": SECRET}},
           "centrifugo_proxy": {"key": PROXY_KEY} if proxy is None else proxy}
    return h.write_config(TMP, json.dumps(doc), name)


def stored(user):
    return at.stored(REDIS, f"{PREFIX}.user_status.{user}")


def eval_calls():
    return at.script_calls(REDIS)


def rpc_request(who, method="update_user_status", **kw):
    # Exactly what Centrifugo v6 sends for a client RPC (proxyproto.RPCRequest as JSON).
    body = {"client": "9336a229-2400-4ebc-8c50-0a643d22e8a0", "transport": "websocket",
            "protocol": "json", "encoding": "json", "user": who, "method": method,
            "data": {}}
    body.update(kw)
    return body


def rpc(body, key=PROXY_KEY, method="POST"):
    hdrs = {"Content-Type": "application/json"}
    if key is not None:
        hdrs["X-API-Key"] = key
    return h.http(WEB.port, method, "/centrifugo/rpc", body, hdrs)


def warm():
    """One write through the process, so that the script is loaded in Redis and a
    NOSCRIPT retry cannot inflate the counts that follow."""
    r = rpc(rpc_request(Unique.user("warm")))
    assert r.body == b'{"result":{"data":{}}}', r


class RpcProxy(unittest.TestCase):
    def rpc(self, body, key=PROXY_KEY, method="POST"):
        return rpc(body, key, method)

    def request(self, who, method="update_user_status", **kw):
        return rpc_request(who, method, **kw)

    def test_update(self):
        u = Unique.user("rpc")
        before = int(time.time())
        r = self.rpc(self.request(u))
        self.assertEqual((r.status, r.body), (200, b'{"result":{"data":{}}}'))
        self.assertEqual(r.headers["content-type"], "application/json")
        st = stored(u)
        self.assertGreaterEqual(int(st["active"]), before)
        self.assertEqual(st["online"], st["active"])
        self.assertNotIn("state", st)

    def test_namespaced_method(self):
        u = Unique.user("rpc-ns")
        r = self.rpc(self.request(u, method="status:update_user_status"))
        self.assertEqual((r.status, r.body), (200, b'{"result":{"data":{}}}'))
        self.assertIn("active", stored(u))

    def test_state_meta_and_binary(self):
        u = Unique.user("rpc-state")
        r = self.rpc(self.request(u, data={"state": "away"}, meta={"x": 1}))
        self.assertEqual((r.status, r.body), (200, b'{"result":{"data":{}}}'))
        self.assertEqual(stored(u)["state"], "away")
        r = self.rpc(self.request(u, data={"state": "NOT valid"}))
        self.assertEqual(r.json(), {"error": {"code": 400, "message": "bad request"}})
        # binary_encoding: b64data instead of data, and nothing but b64data may come back.
        u2 = Unique.user("rpc-binary")
        req = self.request(u2, encoding="binary", b64data=base64.b64encode(b"\x00\x01").decode())
        del req["data"]
        r = self.rpc(req)
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        self.assertIn("active", stored(u2))

    def test_errors(self):
        u = Unique.user("rpc-err")
        for key in (None, "", "wrong", PROXY_KEY + "x", API_KEY):
            r = self.rpc(self.request(u), key=key)
            self.assertEqual((r.status, r.body), (401, b""), key)
        for other in ("getCurrentPrice", "update_user_status:x", "update_user_statuses",
                      "update_user_online", ""):
            r = self.rpc(self.request(u, method=other))
            self.assertEqual(r.json()["error"]["code"], 404, other)
        r = self.rpc(self.request(u, method="getCurrentPrice"))
        self.assertEqual((r.status, r.body), (200, b'{"error":{"code":404,"message":"method not found"}}'))
        r = self.rpc(self.request(""))
        self.assertEqual((r.status, r.body), (200, b'{"error":{"code":403,"message":"permission denied"}}'))
        r = self.rpc(self.request(u, user=None))
        self.assertEqual(r.json()["error"]["code"], 403)
        r = self.rpc(None, method="GET")  # (lighttpd itself refuses a GET with a body)
        self.assertEqual((r.status, r.headers.get("allow")), (405, "POST"))
        for body in (b"", b"{", b"[]"):
            self.assertEqual(self.rpc(body).status, 400, body)
        r = h.http(WEB.port, "POST", "/centrifugo/connect", self.request(u),
                   {"X-API-Key": PROXY_KEY})
        self.assertEqual(r.status, 404)
        self.assertEqual(stored(u), {})

    def test_disabled_without_key(self):
        conf = config("noproxy.json", proxy={})
        u = Unique.user("rpc-off")
        r = h.cgi(conf, path="/centrifugo/rpc", body=self.request(u),
                  headers={"X-API-Key": PROXY_KEY})
        self.assertEqual((r.status, r.body), (401, b""))  # the server API's answer
        r = h.cgi(conf, path="/centrifugo/rpc", body=self.request(u),
                  headers={"X-API-Key": API_KEY})
        self.assertEqual(r.status, 404)
        self.assertEqual(stored(u), {})

    def test_shares_the_minimum_interval(self):
        u = Unique.user("rpc-burst")
        warm()
        before = eval_calls()
        t0 = time.time()
        for _ in range(20):
            self.assertEqual(self.rpc(self.request(u)).status, 200)
        seconds = int(time.time()) - int(t0) + 1
        self.assertLessEqual(eval_calls() - before, seconds)

    def test_shares_the_minimum_interval_with_the_client_endpoints(self):
        # The same process, the same user, the same second: a /client write then an RPC
        # are one write; the reply is a success all the same.
        u = Unique.user("rpc-client")
        warm()
        time.sleep(1.02 - (time.time() % 1.0))  # at the start of a second
        token = at.hs256_for(SECRET, u)
        before = eval_calls()
        t0 = time.time()
        r = h.http(WEB.port, "POST", "/client/update_user_status", b"{}",
                   {"Authorization": "Bearer " + token})
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        r = self.rpc(self.request(u))
        t1 = time.time()
        self.assertEqual((r.status, r.body), (200, b'{"result":{"data":{}}}'))
        # one write per second touched: one, unless the two calls straddled a second
        self.assertEqual(eval_calls() - before, 1 + (int(t1) - int(t0)))
        self.assertIn("active", stored(u))


class JsonIntake(unittest.TestCase):
    """The proxy reads Centrifugo's JSON with the same strict reader as the server API
    (SPEC §1.2): NaN, Infinity, a raw control character and trailing garbage are a bad
    request (400 / 107, as for any malformed body) and nothing is written."""

    def test_refused_and_nothing_written(self):
        cases = []
        for good in (b'{"x":"<S>"}', b'{"state":"<S>"}'):
            for what, data in at.bad_json_bodies(good):
                if what in ("trailing garbage", "a second value"):
                    continue  # inside "data" these are a missing ',' (below: after the body)
                cases.append((f"data {good!r}: {what}", lambda u, d=data: (
                    b'{"client":"c","transport":"websocket","protocol":"json",'
                    b'"encoding":"json","user":"' + u.encode() +
                    b'","method":"update_user_status","data":' + d + b'}')))
        for what, body in at.bad_json_bodies(b'{"client":"<S>","user":"@U@",'
                                             b'"method":"update_user_status","data":{}}'):
            cases.append((f"body: {what}", lambda u, b=body: b.replace(b"@U@", u.encode())))
        for what, make in cases:
            with self.subTest(what=what):
                u = Unique.user("rpc-intake")
                r = rpc(make(u))
                self.assertEqual(stored(u), {}, f"{what}: wrote")
                at.assert_bad_request(self, r, what)


if __name__ == "__main__":
    unittest.main(verbosity=2)
