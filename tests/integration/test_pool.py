"""The prefork pool (SPEC §5, issue 4): `ustatus-fcgi --listen ... --workers N` driven by a
FastCGI client that talks to its socket directly — no web server in between, and no
retries: every request that does not get its answer is counted as a failure.

What is asserted, precisely:
  - kill -9 of a busy worker under load: at most ONE failed request (the one that worker
    had in hand, if it had one), successes continue, and a new worker replaces it;
  - SIGTERM during slow requests (Redis SIGSTOPped): the requests in hand complete with
    their normal answers, an idle worker exits at once, the socket is removed at once,
    then every process exits (none left, zombies aside) with status 0;
  - SIGHUP with a changed expire_interval under load: ZERO failed requests, every worker
    replaced, and the new TTL applies;
  - SIGHUP with a broken file: the same workers keep serving with the old settings and
    the log names the option;
  - the supervisor SIGKILLed: every worker is gone within 5 s (PR_SET_PDEATHSIG), and a
    new pool takes over the stale socket path;
  - max_requests recycling, back-off when workers keep dying, TCP + --user, usage errors.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "pool-key-77e1"
AUTH = {"X-API-Key": KEY}


def conf_text(expire="1h", extra=""):
    return f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "{expire}"
  redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "pool" io_timeout = "10s" }}
}}
{extra}
"""


def setUpModule():
    global REDIS, TMP
    REDIS = h.Redis().start()
    TMP = s.make_shared_dir("ustatus-pool-it-")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[REDIS.dir, TMP])


_n = [0]


def new_conf(**kw):
    """A configuration file of its own (its path names the pool's processes and its
    metrics segment)."""
    _n[0] += 1
    d = os.path.join(TMP, f"c{_n[0]}")
    os.makedirs(d)
    os.chmod(d, 0o755)
    path = h.write_config(d, conf_text(**kw))
    os.chmod(path, 0o644)
    return path


class Load:
    """Client threads sending update_user_status back to back, without retries."""

    def __init__(self, pool, threads=4, prefix="load"):
        self.pool = pool
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i, prefix), daemon=True)
                        for i in range(threads)]

    def _run(self, idx, prefix):
        n = 0
        while not self.stop_flag.is_set():
            user = f"{prefix}-{idx}-{n % 20}"
            n += 1
            try:
                r = self.pool.request("/api/update_user_status", {"users": [user]}, AUTH,
                                      timeout=15)
                good = r.status == 200 and r.body == b'{"result":{}}'
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failures.append((time.monotonic(), repr(r)))
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.failures.append((time.monotonic(), repr(e)))

    def start(self):
        for t in self.threads:
            t.start()
        s.wait_until(lambda: self.ok >= 50, 10, "the load to get going")
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(20)


def ttl(user):
    return int(REDIS.cli("TTL", f"pool.user_status.{user}"))


class Basics(unittest.TestCase):
    def test_serves_with_n_workers_pid_file_and_socket_mode(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=3, args=["--pid-file", os.path.join(TMP, "p.pid")]).start()
        try:
            self.assertEqual(len(pool.workers()), 3)
            with open(os.path.join(TMP, "p.pid")) as f:
                self.assertEqual(int(f.read()), pool.proc.pid)
            self.assertEqual(os.stat(pool.address).st_mode & 0o777, 0o660)
            r = pool.request("/api/update_user_status", {"users": ["b1"]}, AUTH)
            self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            r = pool.request("/api/get_user_status", {"users": ["b1"]}, AUTH)
            self.assertEqual(r.json()["result"]["statuses"][0]["user"], "b1")
            r = pool.request("/health", method="GET")
            self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        finally:
            pool.stop()
        self.assertEqual(pool_exit_code(pool), 0)
        self.assertFalse(os.path.exists(pool.address), "the socket is removed at exit")
        self.assertFalse(os.path.exists(os.path.join(TMP, "p.pid")), "and the pid file")
        self.assertEqual(s.processes_with(conf), [])

    def test_listen_and_workers_from_the_file_cli_wins(self):
        sock = os.path.join(TMP, "from-file.sock")
        conf = new_conf(extra=f'fcgi {{ listen = "unix:{sock}" workers = 3 }}')
        log_path = os.path.join(TMP, "from-file.log")
        h.watch_log(log_path)
        log = open(log_path, "ab")
        p = h.start_process([h.BIN, "-c", conf], stdout=subprocess.DEVNULL, stderr=log)
        try:
            s.wait_until(lambda: len(h.child_pids(p.pid)) == 3, 10, "3 workers from fcgi.workers")
        finally:
            h.stop_process(p)
        p = h.start_process([h.BIN, "-c", conf, "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=log)
        try:
            s.wait_until(lambda: len(h.child_pids(p.pid)) == 1, 10, "--workers 1 winning")
            time.sleep(0.2)
            self.assertEqual(len(h.child_pids(p.pid)), 1)
            r = s.fcgi_request(sock, s.api_params("/health", "GET"))
            self.assertEqual(r.status, 200)
        finally:
            h.stop_process(p)
            log.close()

    def test_sigint_stops_like_sigterm(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=2).start()
        pool.proc.send_signal(signal.SIGINT)
        self.assertEqual(pool.proc.wait(5), 0)
        s.wait_until(lambda: not s.processes_with(conf), 5, "the workers to exit")
        pool.stop()


def pool_exit_code(pool_or_proc):
    proc = getattr(pool_or_proc, "proc", None) or pool_or_proc
    return proc.returncode if proc is not None else None


class Failures(unittest.TestCase):
    def test_kill_9_worker_under_load(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=4).start()
        load = Load(pool, threads=4, prefix="k9").start()
        try:
            victim = pool.workers()[0]
            ok_before = load.ok
            t_kill = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            new = s.wait_until(lambda: (lambda w: len(w) == 4 and victim not in w and w)(
                pool.workers()), 5, "a new worker in place of the killed one")
            s.wait_until(lambda: load.ok >= ok_before + 300, 10, "300 more successes")
        finally:
            load.stop()
        pool.stop()
        # The one request the killed worker may have had in hand is the only one allowed
        # to fail; nothing else may (the backlog keeps the rest for the other workers).
        self.assertLessEqual(len(load.failures), 1, load.failures)
        for t, _ in load.failures:
            self.assertLess(t - t_kill, 1.0, "a failure long after the kill")
        self.assertNotIn(victim, new)
        self.assertIn(f"worker {victim} killed by signal 9", pool.log_text())

    def test_supervisor_sigkill_leaves_no_orphans(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=3).start()
        workers = pool.workers()
        os.kill(pool.proc.pid, signal.SIGKILL)
        pool.proc.wait(5)
        s.wait_until(lambda: not any(s.alive(w) for w in workers), 5,
                     "the workers to die with their supervisor")
        self.assertEqual(s.processes_with(conf), [])
        # The socket file stayed behind; the next pool takes the path over.
        self.assertTrue(os.path.exists(pool.address))
        pool2 = s.Pool(conf, listen=pool.listen, workers=1, directory=pool.dir).start()
        try:
            r = pool2.request("/health", method="GET")
            self.assertEqual(r.status, 200)
        finally:
            pool2.stop()
            pool.stop()

    def test_back_off_when_workers_keep_dying(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=1).start()
        try:
            last = None
            starts = []
            for _ in range(5):
                w = s.wait_until(lambda: (lambda ws: ws and ws[0] != last and ws[0])(
                    pool.workers()), 5, "a replacement worker")
                starts.append(time.monotonic())
                os.kill(w, signal.SIGKILL)
                last = w
            pool.wait_log(r"workers keep dying \(\d+ in a row")
            # The waits grow: the last replacement came >= 0.2 s after the one before.
            self.assertGreaterEqual(starts[-1] - starts[-2], 0.15, starts)
            # ... and the pool does come back.
            s.wait_until(lambda: (lambda ws: ws and ws[0] != last)(pool.workers()), 5,
                         "a worker after the back-off")
            r = pool.request("/health", method="GET")
            self.assertEqual(r.status, 200)
        finally:
            pool.stop()


class Signals(unittest.TestCase):
    def test_sigterm_finishes_requests_in_hand_then_exits(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=3, args=["--shutdown-timeout", "10s"]).start()
        workers = pool.workers()
        results = []

        def slow(i):
            try:
                results.append(pool.request("/api/get_user_status", {"users": [f"slow{i}"]},
                                            AUTH, timeout=20))
            except Exception as e:  # noqa: BLE001
                results.append(e)

        REDIS.proc.send_signal(signal.SIGSTOP)
        try:
            threads = [threading.Thread(target=slow, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            time.sleep(0.5)  # both requests are now waiting for Redis in two workers
            t_term = time.monotonic()
            pool.proc.send_signal(signal.SIGTERM)  # the supervisor only
            # The idle worker goes at once; the socket disappears at once.
            pool.wait_log(r"worker \d+ finished", timeout=2)
            self.assertLess(time.monotonic() - t_term, 1.0)
            self.assertFalse(os.path.exists(pool.address))
            self.assertEqual(sum(s.alive(w) for w in workers), 2, "the busy ones are still at it")
            self.assertIsNone(pool.proc.poll())
            time.sleep(0.5)
        finally:
            REDIS.proc.send_signal(signal.SIGCONT)
        for t in threads:
            t.join(20)
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertIsInstance(r, h.Response, r)
            self.assertEqual(r.status, 200)
            self.assertIn("statuses", r.json()["result"])
        self.assertEqual(pool.proc.wait(5), 0)
        s.wait_until(lambda: not s.processes_with(conf), 5, "every process to exit")
        self.assertIn("all workers have exited", pool.log_text())
        self.assertNotIn("killing", pool.log_text())
        pool.stop()

    def test_shutdown_timeout_kills_stragglers(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=1, args=["--shutdown-timeout", "300ms"]).start()
        out = []
        REDIS.proc.send_signal(signal.SIGSTOP)
        try:
            t = threading.Thread(target=lambda: out.append(
                _try(lambda: pool.request("/api/get_user_status", {"users": ["x"]}, AUTH))))
            t.start()
            time.sleep(0.3)
            pool.proc.send_signal(signal.SIGTERM)
            self.assertEqual(pool.proc.wait(5), 0)
        finally:
            REDIS.proc.send_signal(signal.SIGCONT)
        t.join(20)
        self.assertIn("shutdown timeout: killing 1 workers", pool.log_text())
        self.assertEqual(s.processes_with(conf), [])
        pool.stop()

    def test_sighup_new_expire_interval_under_load(self):
        conf = new_conf(expire="1h")
        pool = s.Pool(conf, workers=2).start()
        before = pool.workers()
        r = pool.request("/api/update_user_status", {"users": ["hup-before"]}, AUTH)
        self.assertEqual(r.status, 200)
        self.assertTrue(3500 < ttl("hup-before") <= 3600)
        load = Load(pool, threads=3, prefix="hup").start()
        try:
            with open(conf, "w") as f:
                f.write(conf_text(expire="2h"))
            pool.proc.send_signal(signal.SIGHUP)
            pool.wait_log("reload: configuration valid")
            s.wait_until(lambda: (lambda w: len(w) == 2 and not set(w) & set(before))(
                pool.workers()), 5, "every worker replaced")
            ok = load.ok
            s.wait_until(lambda: load.ok >= ok + 100, 10, "100 more successes after reload")
        finally:
            load.stop()
        try:
            self.assertEqual(load.failures, [], "a reload must not fail a single request")
            r = pool.request("/api/update_user_status", {"users": ["hup-after"]}, AUTH)
            self.assertEqual(r.status, 200)
            self.assertTrue(7100 < ttl("hup-after") <= 7200, ttl("hup-after"))
        finally:
            pool.stop()

    def test_sighup_broken_file_keeps_the_workers(self):
        conf = new_conf(expire="1h")
        pool = s.Pool(conf, workers=2).start()
        try:
            before = pool.workers()
            with open(conf, "w") as f:
                f.write(conf_text(expire="12x"))
            pool.proc.send_signal(signal.SIGHUP)
            line = pool.wait_log(r"error: reload: .*").group(0)
            self.assertIn("expire_interval", line)
            self.assertIn("keep the previous configuration", line)
            time.sleep(0.3)
            self.assertEqual(pool.workers(), before)
            r = pool.request("/api/update_user_status", {"users": ["broken"]}, AUTH)
            self.assertEqual(r.status, 200)
            self.assertTrue(3500 < ttl("broken") <= 3600)
            # A file the loader takes but the store refuses is caught too.
            with open(conf, "w") as f:
                f.write(conf_text().replace(f"127.0.0.1:{REDIS.port}", "not an address::"))
            pool.proc.send_signal(signal.SIGHUP)
            s.wait_until(lambda: pool.log_text().count("error: reload:") >= 2, 5,
                         "the second reload to be refused")
            self.assertEqual(pool.workers(), before)
        finally:
            pool.stop()

    def test_kept_connection(self):
        # A web server may ask to keep the connection (FCGI_KEEP_CONN): the worker serves
        # the next request on it, and SIGTERM still ends an idle kept connection at once.
        conf = new_conf()
        pool = s.Pool(conf, workers=1).start()
        conn = s.FcgiConnection(pool.address)
        try:
            for i in range(3):
                body = b'{"users":["kc"]}'
                r = conn.request(s.api_params("/api/update_user_status", body=body,
                                              headers=AUTH), body, keep=True)
                self.assertEqual((r.status, r.body), (200, b'{"result":{}}'), i)
            pool.proc.send_signal(signal.SIGTERM)
            self.assertTrue(conn.closed_by_peer(timeout=3))
            self.assertEqual(pool.proc.wait(5), 0)
        finally:
            conn.close()
            pool.stop()

    def test_max_requests_recycles_workers(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=1, args=["--max-requests", "5"]).start()
        try:
            seen = set()
            for i in range(12):
                seen.update(pool.workers())
                r = pool.request("/api/update_user_status", {"users": [f"mr{i}"]}, AUTH)
                self.assertEqual(r.status, 200, i)
            s.wait_until(lambda: pool.log_text().count("(recycled)") >= 2, 5, "two recycles")
            self.assertGreaterEqual(len(seen), 2)
            self.assertNotIn("keep dying", pool.log_text())
        finally:
            pool.stop()


def _try(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


class Privileges(unittest.TestCase):
    @unittest.skipUnless(s.AS_ROOT, "needs root")
    def test_tcp_and_user_drop(self):
        conf = new_conf()
        port = h.free_port()
        pool = s.Pool(conf, listen=f"127.0.0.1:{port}", workers=2,
                      args=["--user", "nobody", "--group", "nogroup"]).start()
        try:
            for pid in [pool.proc.pid] + pool.workers():
                self.assertEqual(s.proc_user(pid), (65534, 65534), pid)
            r = pool.request("/api/update_user_status", {"users": ["tcp"]}, AUTH)
            self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            self.assertIn("running as uid 65534", pool.log_text())
        finally:
            pool.stop()
        s.unlink_metrics(conf)


class Usage(unittest.TestCase):
    def run_bin(self, *args):
        return h.run_bin(*args, timeout=10)

    def test_errors(self):
        conf = new_conf()
        r = self.run_bin("-c", conf, "--workers", "2")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("need --listen", r.stderr)
        r = self.run_bin("-c", conf, "--listen", "unix:/nonexistent-dir/x.sock")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bind", r.stderr)
        regular = os.path.join(TMP, "a-regular-file")
        open(regular, "w").close()
        r = self.run_bin("-c", conf, "--listen", f"unix:{regular}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a socket", r.stderr)
        self.assertTrue(os.path.exists(regular))
        r = self.run_bin("-c", conf, "--listen", "127.0.0.1:80x")
        self.assertEqual(r.returncode, 1)
        r = self.run_bin("-c", conf, "--listen", "127.0.0.1:1", "--socket-mode", "0600")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unix: socket only", r.stderr)
        r = self.run_bin("-c", conf, "--listen", "unix:/tmp/x.sock", "--socket-mode", "99")
        self.assertEqual(r.returncode, 64)
        bad = os.path.join(TMP, "bad.conf")
        with open(bad, "w") as f:
            f.write('user_status { expire_interval = "12x" }\n')
        r = self.run_bin("-c", bad, "--listen", "unix:/tmp/never.sock")
        self.assertEqual(r.returncode, 78)
        self.assertFalse(os.path.exists("/tmp/never.sock"))

    def test_socket_in_use(self):
        conf = new_conf()
        pool = s.Pool(conf, workers=1).start()
        try:
            r = self.run_bin("-c", conf, "--listen", pool.listen)
            self.assertEqual(r.returncode, 1)
            self.assertIn("another process is listening", r.stderr)
            r = pool.request("/health", method="GET")
            self.assertEqual(r.status, 200, "the running pool keeps its socket")
        finally:
            pool.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
