"""The counters of GET /metrics (SPEC §7, issue 4; the endpoints themselves: test_ops.py) are summed over every
process that runs with the same configuration file, whether they are the ustatus pool's
workers, processes lighttpd spawned (max-procs 4), or separate CGI runs.

To be sure several processes did the counting, each scenario first holds Redis still
(SIGSTOP) while as many concurrent requests as there are processes are in flight: each
process, serving one request at a time, must then take one of them.
"""
import os
import shutil
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "metrics-key-90f3"
AUTH = {"X-API-Key": KEY}
API_METHODS = ("update_user_status", "get_user_status", "delete_user_status",
               "update_user_online")


def setUpModule():
    global REDIS, TMP
    REDIS = h.Redis().start()
    TMP = s.make_shared_dir("ustatus-metrics-it-")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[REDIS.dir, TMP])


_n = [0]


def new_conf(redis_addr=None):
    _n[0] += 1
    d = os.path.join(TMP, f"c{_n[0]}")
    os.makedirs(d)
    os.chmod(d, 0o755)
    addr = redis_addr or f'"127.0.0.1:{REDIS.port}"'
    path = h.write_config(d, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  redis {{ address = {addr} prefix = "m" io_timeout = "10s" connect_timeout = "300ms" }}
}}
""")
    os.chmod(path, 0o644)
    return path


def in_parallel(fn, n):
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def one_each(fn, n):
    """n concurrent requests while Redis stands still: n single-request processes must
    each take one."""
    REDIS.proc.send_signal(signal.SIGSTOP)
    try:
        results = []
        t = threading.Thread(target=lambda: results.extend(in_parallel(fn, n)))
        t.start()
        time.sleep(0.6)
    finally:
        REDIS.proc.send_signal(signal.SIGCONT)
    t.join(30)
    return results


def check_exposition(test, text):
    """Every family declared once with HELP and TYPE; histograms consistent."""
    samples = s.parse_metrics(text)
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            test.assertNotIn(name, families)
            families[name] = kind
    test.assertEqual(families.get("ustatus_api_command_duration_seconds"), "histogram")
    for fam in ("ustatus_api_commands_total", "ustatus_api_command_errors_total",
                "ustatus_redis_errors_total", "ustatus_redis_reconnects_total"):
        test.assertEqual(families.get(fam), "counter", fam)
    for m in API_METHODS:
        prev = -1
        for le in ("0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                   "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"):
            v = s.metric(samples, "ustatus_api_command_duration_seconds_bucket", method=m, le=le)
            test.assertGreaterEqual(v, prev, (m, le))
            prev = v
        count = s.metric(samples, "ustatus_api_command_duration_seconds_count", method=m)
        test.assertEqual(prev, count, m)
        test.assertEqual(count, s.metric(samples, "ustatus_api_commands_total", method=m), m)
    return samples


class PoolOfFour(unittest.TestCase):
    def test_counters_sum_over_the_workers(self):
        conf = new_conf()
        shm = s.metrics_shm_path(conf)
        pool = s.Pool(conf, workers=4).start()
        try:
            st = os.stat(shm)
            self.assertEqual(st.st_mode & 0o777, 0o600)
            self.assertEqual(st.st_uid, os.geteuid())
            # 4 in flight at once: every worker serves one.
            r = one_each(lambda i: pool.request("/api/get_user_status", {"users": [f"u{i}"]},
                                                AUTH), 4)
            self.assertTrue(all(x.status == 200 for x in r), r)
            # Then 190 more from 8 client threads, spread as they come.
            plan = (["update_user_status"] * 100 + ["get_user_status"] * 40 +
                    ["delete_user_status"] * 20 + ["bad"] * 20 + ["nope"] * 5 +
                    ["noauth"] * 5)

            def send(i):
                kind = plan[i]
                if kind == "bad":
                    return pool.request("/api/update_user_status", {"users": [""]}, AUTH)
                if kind == "nope":
                    return pool.request("/api/nope", {}, AUTH)
                if kind == "noauth":
                    return pool.request("/api/get_user_status", {"users": ["x"]}, {})
                return pool.request(f"/api/{kind}", {"users": [f"u{i % 7}"]}, AUTH)

            results = []
            for base in range(0, len(plan), 8):
                results += in_parallel(lambda j: send(base + j), min(8, len(plan) - base))
            for kind, r in zip(plan, results):
                self.assertIsInstance(r, h.Response, (kind, r))
            # One batch of three commands, and one batch rejected whole.
            r = pool.request("/api/batch", {"commands": [
                {"get_user_status": {"users": ["u1"]}},
                {"update_user_online": {"users": ["u1"]}},
                {"get_user_status": {"users": "x"}}]}, AUTH)
            self.assertEqual(r.status, 200)
            r = pool.request("/api/batch", {"commands": "x"}, AUTH)
            self.assertEqual(r.status, 400)

            r = pool.request("/metrics", method="GET")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
            m = check_exposition(self, r.body.decode())
            c = lambda meth: s.metric(m, "ustatus_api_commands_total", method=meth)  # noqa: E731
            e = lambda meth, err: s.metric(m, "ustatus_api_command_errors_total",  # noqa: E731
                                           method=meth, error=err)
            self.assertEqual(c("update_user_status"), 120)
            self.assertEqual(c("get_user_status"), 4 + 40 + 2)
            self.assertEqual(c("delete_user_status"), 20)
            self.assertEqual(c("update_user_online"), 1)
            self.assertEqual(c("unknown"), 5)
            self.assertEqual(c("batch"), 1)
            self.assertEqual(e("update_user_status", "bad_request"), 20)
            self.assertEqual(e("get_user_status", "bad_request"), 1)
            self.assertEqual(e("unknown", "not_found"), 5)
            self.assertEqual(e("batch", "bad_request"), 1)
            self.assertEqual(s.metric(m, "ustatus_http_responses_total", code="401"), 5)
            self.assertEqual(s.metric(m, "ustatus_http_responses_total", code="404"), 5)
            self.assertEqual(s.metric(m, "ustatus_worker_starts_total"), 4)
            self.assertEqual(s.metric(m, "ustatus_metrics_shared"), 1)
            self.assertGreater(s.metric(m, "ustatus_api_command_duration_seconds_sum",
                                        method="get_user_status"), 0.5,
                               "the 4 requests held by the stopped Redis took > 0.5 s each")
        finally:
            pool.stop()
        self.assertFalse(os.path.exists(shm), "the pool removes its segment at a clean exit")


class WorkerGauges(unittest.TestCase):
    def test_busy_and_idle_while_requests_are_held(self):
        """Redis stopped (SIGSTOP): two requests stay in two workers; the scrape is a
        third busy worker; the fourth is idle. Then Redis goes on and they are idle."""
        conf = new_conf()
        pool = s.Pool(conf, workers=4).start()

        def gauges():
            # A scrape accepted by a worker just before it began a held request waits
            # behind it (a worker serves its connections one at a time): give up on that
            # scrape and ask again, as Prometheus would at its next interval.
            try:
                r = pool.request("/metrics", method="GET", timeout=2)
            except OSError:
                return None
            m = s.parse_metrics(r.body.decode())
            return (s.metric(m, "ustatus_workers", state="busy"),
                    s.metric(m, "ustatus_workers", state="idle"))

        try:
            s.wait_until(lambda: gauges() == (1, 3), 10, "4 workers up: the scrape busy, 3 idle")
            REDIS.proc.send_signal(signal.SIGSTOP)
            # One held request at a time: a worker serving one takes no new connection, so
            # the second lands in another worker (sent together, both could be accepted by
            # one worker before it begins the first, and that worker counts once).
            held = [threading.Thread(target=lambda i=i: pool.request(
                "/api/get_user_status", {"users": [f"g{i}"]}, AUTH)) for i in range(2)]
            try:
                held[0].start()
                s.wait_until(lambda: gauges() == (2, 2), 10, "1 held + the scrape busy, 2 idle")
                held[1].start()
                s.wait_until(lambda: gauges() == (3, 1), 10, "2 held + the scrape busy, 1 idle")
            finally:
                REDIS.proc.send_signal(signal.SIGCONT)
            for t in held:
                t.join(30)
            s.wait_until(lambda: gauges() == (1, 3), 10, "the held requests answered")
            # a worker killed with -9 stops counting at once; its replacement counts
            victim = pool.workers()[0]
            os.kill(victim, signal.SIGKILL)
            s.wait_until(lambda: len(pool.workers()) == 4 and victim not in pool.workers(), 10,
                         "the replacement")
            s.wait_until(lambda: gauges() == (1, 3), 10, "4 workers counted again")
        finally:
            pool.stop()

    def test_build_info(self):
        version = h.run_bin("--version").stdout.split()[1]
        r = h.cgi(new_conf(), method="GET", path="/metrics")
        m = check_exposition(self, r.body.decode())
        self.assertEqual(s.metric(m, "ustatus_build_info", version=version), 1)
        self.assertIn("# TYPE ustatus_build_info gauge", r.body.decode())


class LighttpdMaxProcs(unittest.TestCase):
    def test_counters_sum_over_lighttpd_processes(self):
        conf = new_conf()
        web = h.Lighttpd(conf, procs=4, extra="""
fastcgi.server += ( "/metrics" => (( "bin-path" => "%s -c %s", "socket" => "%s",
                                      "check-local" => "disable", "max-procs" => 1 )) )
""")
        web.extra = web.extra % (h.BIN, conf, os.path.join(web.dir, "metrics.sock"))
        web.start()
        try:
            api = lambda i: h.http(web.port, "POST", "/api/update_user_status",  # noqa: E731
                                   {"users": [f"l{i}"]}, AUTH)
            s.wait_until(lambda: len(h.child_pids(web.proc.pid)) == 5, 10,
                         "lighttpd's 4 + 1 processes")
            r = one_each(api, 4)
            self.assertTrue(all(x.status == 200 for x in r), r)
            for base in range(0, 96, 8):
                for x in in_parallel(lambda j: api(base + j), 8):
                    self.assertEqual(x.status, 200, x)
            # /metrics is answered by a fifth process, which served no API request.
            r = h.http(web.port, "GET", "/metrics")
            self.assertEqual(r.status, 200, web.error_log())
            m = check_exposition(self, r.body.decode())
            self.assertEqual(s.metric(m, "ustatus_api_commands_total",
                                      method="update_user_status"), 100)
            self.assertEqual(s.metric(m, "ustatus_worker_starts_total"), 5)
        finally:
            web.stop()
            shutil.rmtree(web.dir, ignore_errors=True)
            s.unlink_metrics(conf)


class CgiProcesses(unittest.TestCase):
    def test_separate_processes_share_and_the_segment_is_private(self):
        conf = new_conf()
        shm = s.metrics_shm_path(conf)
        try:
            for i in range(3):
                r = h.cgi(conf, path="/api/update_user_status", body={"users": [f"c{i}"]},
                          headers=AUTH)
                self.assertEqual(r.status, 200, r.stderr)
            r = h.cgi(conf, method="GET", path="/metrics")
            m = s.parse_metrics(r.body.decode())
            self.assertEqual(s.metric(m, "ustatus_api_commands_total",
                                      method="update_user_status"), 3)
            self.assertEqual(os.stat(shm).st_mode & 0o777, 0o600)
        finally:
            s.unlink_metrics(conf)

    @unittest.skipUnless(s.AS_ROOT, "needs root to plant a segment owned by someone else")
    def test_a_segment_of_another_user_is_not_used(self):
        conf = new_conf()
        shm = s.metrics_shm_path(conf)
        fd = os.open(shm, os.O_CREAT | os.O_RDWR, 0o666)
        os.fchown(fd, 65534, 65534)
        os.close(fd)
        try:
            r = h.cgi(conf, method="GET", path="/metrics")
            self.assertEqual(r.status, 200)
            self.assertIn(b"ustatus_metrics_shared 0", r.body)
            self.assertIn("belongs to uid 65534", r.stderr)
            self.assertEqual(os.stat(shm).st_size, 0, "left untouched")
        finally:
            os.unlink(shm)

    def test_a_pool_refuses_a_planted_segment_and_still_sums_its_workers(self):
        """Another local user created the segment's name first: the pool says so in its
        log (log.file here) and its workers count together in a private mapping."""
        conf = new_conf()
        log = os.path.join(os.path.dirname(conf), "ustatus.log")
        with open(conf, "a") as f:
            f.write(f'log {{ file = "{log}" }}\n')
        shm = s.metrics_shm_path(conf)
        fd = os.open(shm, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.fchown(fd, 65534, 65534)
        os.close(fd)
        pool = s.Pool(conf, workers=2).start()
        try:
            one_each(lambda i: pool.request("/api/get_user_status", {"users": [f"p{i}"]}, AUTH),
                     2)
            m = s.parse_metrics(pool.request("/metrics", method="GET").body.decode())
            self.assertEqual(s.metric(m, "ustatus_api_commands_total", method="get_user_status"),
                             2, "both workers' requests, summed")
            self.assertEqual(s.metric(m, "ustatus_metrics_shared"), 0)
            with open(log) as f:
                text = f.read()
            self.assertIn(f"warn: metrics: {shm} belongs to uid 65534, not to uid "
                          f"{os.geteuid()} that runs ustatus (another local user created it "
                          f"first?): not used", text)
            self.assertEqual(os.stat(shm).st_size, 0, "left untouched")
        finally:
            pool.stop()
        self.assertEqual(os.stat(shm).st_uid, 65534, "not ours to remove at exit either")
        os.unlink(shm)


class RedisCounters(unittest.TestCase):
    def test_errors_and_reconnects(self):
        redis = h.Redis().start()
        conf = new_conf(redis_addr=f'"127.0.0.1:{redis.port}"')
        pool = s.Pool(conf, workers=1).start()
        try:
            r = pool.request("/api/update_user_status", {"users": ["r1"]}, AUTH)
            self.assertEqual(r.status, 200)
            redis.cli("CLIENT", "KILL", "TYPE", "normal")  # the worker's connection breaks
            r = pool.request("/api/update_user_status", {"users": ["r1"]}, AUTH)
            self.assertEqual(r.json(), {"result": {}}, "reconnected and retried once")
            redis.stop()
            r = pool.request("/api/update_user_status", {"users": ["r1"]}, AUTH)
            self.assertEqual(r.json()["error"]["code"], 100)
            m = s.parse_metrics(pool.request("/metrics", method="GET").body.decode())
            self.assertGreaterEqual(s.metric(m, "ustatus_redis_reconnects_total"), 1)
            self.assertGreaterEqual(s.metric(m, "ustatus_redis_errors_total"), 2)
        finally:
            pool.stop()
            redis.stop()
            shutil.rmtree(redis.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
