"""The operations endpoints (SPEC §7): GET (and HEAD) /health and GET /metrics, recognised
by path whatever the API prefix, needing no key, GET only; as plain CGI and through a
lighttpd-spawned worker. (How /metrics sums the counters of many processes:
test_metrics.py; the deployments' access rules: test_webservers.py.)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "ops-key-3d9b"
AUTH = {"X-API-Key": KEY}


def setUpModule():
    global REDIS, TMP
    REDIS = h.Redis().start()
    TMP = h.make_tmpdir("ustatus-ops-")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[TMP])


_n = [0]


def new_conf(redis_addr=None, http_api=""):
    _n[0] += 1
    addr = redis_addr or f'"127.0.0.1:{REDIS.port}"'
    return h.write_config(TMP, f"""
http_api {{ key = "{KEY}" {http_api} }}
user_status {{ redis {{ address = {addr} prefix = "ops" connect_timeout = "300ms" }} }}
""", f"c{_n[0]}.conf")

class Health(unittest.TestCase):
    def test_ok_and_unavailable(self):
        conf = new_conf()
        r = h.cgi(conf, method="GET", path="/health")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertEqual(r.headers["content-type"], "application/json")
        dead = h.free_port()
        conf = new_conf(redis_addr=f'{{"127.0.0.1:{REDIS.port}", "127.0.0.1:{dead}"}}')
        r = h.cgi(conf, method="GET", path="/health")
        self.assertEqual(r.status, 503)
        body = r.json()
        self.assertEqual(body["status"], "unavailable")
        nodes = {n["node"]: n for n in body["nodes"]}
        self.assertTrue(nodes[f"127.0.0.1:{REDIS.port}"]["ok"])
        self.assertFalse(nodes[f"127.0.0.1:{dead}"]["ok"])
        self.assertTrue(nodes[f"127.0.0.1:{dead}"]["error"])
        s.unlink_metrics(conf)

    def test_no_key_get_only_exact_paths(self):
        conf = new_conf()
        r = h.cgi(conf, method="POST", path="/health", headers=AUTH, body={})
        self.assertEqual((r.status, r.headers.get("allow")), (405, "GET, HEAD"))
        r = h.cgi(conf, method="POST", path="/metrics", headers=AUTH, body={})
        self.assertEqual((r.status, r.headers.get("allow")), (405, "GET"))
        # Under the API prefix they are API paths like any other: not operations.
        r = h.cgi(conf, method="GET", path="/api/health")
        self.assertEqual((r.status, r.headers.get("allow")), (405, "POST"))
        r = h.cgi(conf, method="POST", path="/api/metrics", headers=AUTH, body={})
        self.assertEqual(r.status, 404)
        s.unlink_metrics(conf)

    def test_head(self):
        conf = new_conf()
        r = h.cgi(conf, method="HEAD", path="/health")
        self.assertEqual((r.status, r.body), (200, b""))
        s.unlink_metrics(conf)

    def test_whatever_the_api_prefix(self):
        conf = new_conf(http_api='handler_prefix = "/v1"')
        r = h.cgi(conf, method="GET", path="/health")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        r = h.cgi(conf, method="GET", path="/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn(b"ustatus_api_commands_total", r.body)
        r = h.cgi(conf, method="GET", path="/v1/health")
        self.assertEqual((r.status, r.headers.get("allow")), (405, "POST"))
        r = h.cgi(conf, path="/v1/get_user_status", body={"users": []}, headers=AUTH)
        self.assertEqual((r.status, r.body), (200, b'{"result":{"statuses":[]}}'))
        s.unlink_metrics(conf)


class ThroughAWorker(unittest.TestCase):
    """A lighttpd-spawned worker serving the API, /health and /metrics alike."""

    def test_health_and_metrics(self):
        conf = new_conf()
        web = h.Lighttpd(conf, prefix="/", procs=1).start()
        try:
            api = at.Api(web.port, KEY)
            for i in range(3):
                self.assertTrue(at.ok(api("update_user_status", {"users": [f"w{i}"]})))
            self.assertEqual(api("get_user_status", {"users": [""]}).json()["error"]["code"], 107)
            r = h.http(web.port, "GET", "/health")
            self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'))
            self.assertEqual(r.headers["content-type"], "application/json")
            r = h.http(web.port, "GET", "/metrics")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
            m = s.parse_metrics(r.body.decode())
            self.assertEqual(s.metric(m, "ustatus_api_commands_total",
                                      method="update_user_status"), 3)
            self.assertEqual(s.metric(m, "ustatus_api_command_errors_total",
                                      method="get_user_status", error="bad_request"), 1)
            self.assertEqual(s.metric(m, "ustatus_worker_starts_total"), 1)
            # /health and /metrics are no API commands
            self.assertEqual(sum(v for (name, _), v in m.items()
                                 if name == "ustatus_api_commands_total"), 4)
            r = h.http(web.port, "POST", "/metrics", b"{}", AUTH)
            self.assertEqual((r.status, r.headers.get("allow")), (405, "GET"))
        finally:
            web.stop()
            s.unlink_metrics(conf)


if __name__ == "__main__":
    unittest.main(verbosity=2)
