"""The same API smoke suite through every supported deployment (issue 4), each started on
loopback from the shipped deploy/ files (paths and ports substituted):

  - Apache 2.4 + mod_fcgid spawning ustatus-fcgi   (deploy/apache/ustatus.conf)
  - lighttpd spawning ustatus-fcgi                 (deploy/lighttpd/lighttpd.conf)
  - lighttpd + the ustatus pool on a unix socket   (deploy/lighttpd/lighttpd-pool.conf,
                                                    the pool's ExecStart from deploy/systemd)
  - nginx + the ustatus pool on a unix socket      (deploy/nginx/ustatus.conf, same pool)
  - nginx + spawn-fcgi                             (deploy/spawn-fcgi/ustatus-spawn-fcgi.service)

Each one: update / get / delete, an error reply, the three ways to pass the key, a 401,
/health and /metrics reachable from 127.0.0.1 and refused from 127.0.0.2, and no ustatus
process running as root.
"""
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "web-key-51c0a7"
TOKEN_SECRET = "web-token-secret-9e2b"
PROXY_KEY = "web-proxy-key-7a41"


def hs256_token(sub):
    """A Centrifugo connection JWT for sub, valid for an hour."""
    return at.hs256_for(TOKEN_SECRET, sub, ttl=3600)


def setUpModule():
    global REDIS, TMP, CONF
    REDIS = h.Redis().start()
    TMP = s.make_shared_dir("ustatus-web-")
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
client {{ token {{ hmac_secret_key = "{TOKEN_SECRET}" }} }}
centrifugo_proxy {{ key = "{PROXY_KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "web" io_timeout = "2s" }}
}}
""")
    # The web servers' users (www-data, nobody) read it; a test key is no secret.
    os.chmod(CONF, 0o644)


def tearDownModule():
    try:
        h.tear_down_module(REDIS, dirs=[REDIS.dir])
    finally:
        s.unlink_metrics(CONF)
        shutil.rmtree(TMP, ignore_errors=True)


class Smoke:
    """The suite; a subclass provides self.port and the processes to check."""

    port = None
    user_prefix = "smoke"

    def api(self, method, body, headers=None, query=""):
        return at.Api(self.port, KEY)(method, body, headers, query)

    def test_client_endpoint_and_rpc_proxy(self):
        # The web server must route /client and /centrifugo and pass Authorization on.
        user = f"client-{self.__class__.__name__}"
        r = h.http(self.port, "POST", "/client/update_user_status", b"{}",
                   {"Authorization": f"Bearer {hs256_token(user)}",
                    "Content-Type": "application/json"})
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        st = self.api("get_user_status", {"users": [user]}).json()["result"]["statuses"][0]
        self.assertIn("active", st)
        self.assertIn("online", st)
        r = h.http(self.port, "POST", "/client/online", b"{}",
                   {"Authorization": "Bearer " + hs256_token(user)[:-2] + "xx"})
        self.assertEqual(r.status, 401)
        rpc = {"client": "c1", "transport": "websocket", "protocol": "json",
               "encoding": "json", "user": user + "-rpc", "method": "update_user_status",
               "data": {}}
        r = h.http(self.port, "POST", "/centrifugo/rpc", rpc, {"X-API-Key": PROXY_KEY})
        self.assertEqual((r.status, r.body), (200, b'{"result":{"data":{}}}'))
        r = h.http(self.port, "POST", "/centrifugo/rpc", rpc, {"X-API-Key": "wrong"})
        self.assertEqual(r.status, 401)

    def test_update_get_delete_and_the_three_keys(self):
        user = f"{self.user_prefix}-{self.__class__.__name__}"
        r = self.api("update_user_status", {"users": [user], "state": "away"})
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        now = int(time.time())
        # Authorization: apikey — the header Apache hides unless told to pass it.
        r = self.api("get_user_status", {"users": [user]}, {"Authorization": f"apikey {KEY}"})
        self.assertEqual(r.status, 200, r)
        st = r.json()["result"]["statuses"]
        self.assertEqual(st[0]["user"], user)
        self.assertLessEqual(abs(st[0]["active"] - now), 2)
        self.assertEqual(st[0]["state"], "away")
        # ?api_key=
        r = self.api("get_user_status", {"users": [user]}, {}, query=f"api_key={KEY}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["result"]["statuses"][0]["state"], "away")
        r = self.api("delete_user_status", {"users": [user]})
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
        r = self.api("get_user_status", {"users": [user]})
        self.assertEqual(r.json(), {"result": {"statuses": [{"user": user}]}})

    def test_errors(self):
        r = self.api("get_user_status", {"users": "not-an-array"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], 107)
        r = self.api("update_user_status", {"users": [""]})
        self.assertEqual(r.status, 200)
        err = r.json()["error"]
        self.assertEqual(sorted(err), ["code", "details", "message"])
        self.assertEqual((err["code"], err["message"]), (107, "bad request"))
        # the details say what was wrong: the first user ID is empty
        self.assertIsInstance(err["details"], str)
        self.assertIn("users[0]", err["details"])
        r = self.api("no_such_method", {})
        self.assertEqual((r.status, r.json()), (404, {"error": {"code": 104, "message": "not found"}}))
        for hdrs in ({}, {"X-API-Key": "wrong"}, {"Authorization": "apikey wrong"}):
            r = self.api("get_user_status", {"users": ["1"]}, hdrs)
            self.assertEqual(r.status, 401, hdrs)

    def test_health_and_metrics_restricted(self):
        r = h.http(self.port, "GET", "/health")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        r = h.http(self.port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"), r.headers)
        self.assertIn(b"ustatus_api_commands_total", r.body)
        for path in ("/health", "/metrics"):
            r = s.http_from(self.port, "GET", path, "127.0.0.2")
            self.assertEqual(r.status, 403, path)

    def test_not_root(self):
        self.api("get_user_status", {"users": ["1"]})  # at least one process is up
        pids = s.processes_with(CONF)
        self.assertTrue(pids)
        for pid in pids:
            ruid, euid = s.proc_user(pid)
            if s.AS_ROOT:
                self.assertNotEqual((ruid, euid), (0, 0), pid)
            self.assertNotEqual(euid, 0, pid)


class ApacheFcgid(Smoke, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = s.Apache(CONF).start()
        cls.port = cls.web.port

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        # mod_fcgid's processes die with Apache's process manager.
        s.wait_until(lambda: not s.processes_with(CONF), 10, "mod_fcgid's processes to exit")

    def test_processes_are_spawned_by_apache(self):
        # CI runs the tests as root, which this needs: Apache must start as root to run
        # its children as its User. Anything else is a failure, not a skip.
        self.assertTrue(s.AS_ROOT, "run as root: mod_fcgid's processes must run as www-data")
        r = self.api("get_user_status", {"users": ["1"]})
        self.assertEqual(r.status, 200, r)
        pids = s.processes_with(CONF)
        self.assertTrue(pids, "no ustatus process found after a request through Apache")
        apache_tree = {self.web.proc.pid}
        for pid in pids:
            ruid, euid = s.proc_user(pid)
            self.assertEqual((ruid, euid), (33, 33),
                             "mod_fcgid runs them as Apache's User (www-data)")
            # ... and they descend from the Apache we started, not from anything else
            chain, p = [], pid
            while p > 1 and p not in apache_tree:
                chain.append(p)
                with open(f"/proc/{p}/stat") as f:
                    p = int(f.read().rsplit(")", 1)[1].split()[1])
            self.assertIn(p, apache_tree, f"{pid} is not in Apache's process tree: {chain}")


class LighttpdSpawned(Smoke, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = s.make_shared_dir("ustatus-lighttpd-spawn-")
        cls.port = h.free_port()
        with open(os.path.join(s.DEPLOY, "lighttpd", "lighttpd.conf")) as f:
            web = f.read()
        web = (s.substitute(web, s.deploy_paths(CONF, cls.dir))
               .replace("/var/empty", cls.dir)
               .replace("server.port = 8000", f"server.port = {cls.port}"))
        if s.AS_ROOT:
            os.chmod(cls.dir, 0o1777)  # lighttpd creates its sockets as www-data
            for name in ("lighttpd-error.log", "ustatus.log"):
                open(os.path.join(cls.dir, name), "a").close()
                shutil.chown(os.path.join(cls.dir, name), "www-data", "www-data")
        else:
            web = re.sub(r"^server\.(user|group)name.*$", "", web, flags=re.M)
        path = h.write_config(cls.dir, web, "lighttpd.conf")
        cls.logs = [os.path.join(cls.dir, n) for n in ("lighttpd-error.log", "ustatus.log")]
        h.watch_log(*cls.logs)
        cls.proc = h.start_process([h.which("lighttpd"), "-D", "-f", path],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(cls.port, proc=cls.proc)

    @classmethod
    def tearDownClass(cls):
        h.stop_process(cls.proc)
        s.wait_until(lambda: not s.processes_with(CONF), 10, "lighttpd's processes to exit")
        h.scan_logs(*cls.logs)
        shutil.rmtree(cls.dir, ignore_errors=True)


def pool_from_unit(run_dir):
    """The pool exactly as deploy/systemd/ustatus.service starts it, but for the paths and
    for the service user: systemd would start it as User=ustatus; here root starts it and
    it drops to nobody itself (the same socket owner and mode the unit asks for)."""
    argv = s.unit_exec_start(os.path.join(s.DEPLOY, "systemd", "ustatus.service"))
    argv = [s.substitute(a, s.deploy_paths(CONF, run_dir)) for a in argv]
    i = argv.index("--socket-owner")
    if s.AS_ROOT:
        argv[i + 1] = argv[i + 1].replace("ustatus:", "nobody:")
        argv += ["--user", "nobody", "--group", "nogroup", "--workers", "2"]
    else:
        del argv[i:i + 2]
        argv += ["--workers", "2"]
    argv[0] = h.BIN
    return argv


class PoolProcess:
    """A pool started from the unit's command line; stderr kept for the checks."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.socket = os.path.join(run_dir, "ustatus-fcgi.sock")
        self.log_path = os.path.join(run_dir, "pool.log")

    def start(self):
        h.watch_log(self.log_path)
        self.log = open(self.log_path, "ab")
        self.proc = h.start_process(pool_from_unit(self.run_dir), stdout=subprocess.DEVNULL,
                                    stderr=self.log)
        s.wait_until(lambda: len(h.child_pids(self.proc.pid)) == 2, 10, "the pool's workers")
        return self

    def stop(self):
        h.stop_process(self.proc)
        self.log.close()
        h.scan_logs(self.log_path)


class PoolChecks:
    def test_socket_owner_and_mode(self):
        st = os.stat(self.pool.socket)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        if s.AS_ROOT:
            import grp
            import pwd
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, "nobody")
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "www-data")

    def test_pid_file(self):
        with open(os.path.join(self.pool.run_dir, "ustatus-fcgi.pid")) as f:
            self.assertEqual(int(f.read()), self.pool.proc.pid)


class NginxPool(Smoke, PoolChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.pool = PoolProcess(cls.run_dir).start()
        cls.web = s.Nginx(cls.pool.socket).start()
        cls.port = cls.web.port

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.pool.stop()
        shutil.rmtree(cls.run_dir, ignore_errors=True)

    def test_nginx_without_socket_permission_gets_502(self):
        # The fact the socket options exist for: a socket nginx's workers may not open.
        if not s.AS_ROOT:
            self.skipTest("needs root: nginx's workers must run as another user")
        os.chmod(self.pool.socket, 0o600)
        try:
            r = h.http(self.port, "POST", "/api/get_user_status", {"users": ["1"]},
                       {"X-API-Key": KEY})
            self.assertEqual(r.status, 502)
        finally:
            os.chmod(self.pool.socket, 0o660)
        r = h.http(self.port, "POST", "/api/get_user_status", {"users": ["1"]}, {"X-API-Key": KEY})
        self.assertEqual(r.status, 200)


class LighttpdPool(Smoke, PoolChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.pool = PoolProcess(cls.run_dir).start()
        cls.web = s.LighttpdPool(cls.pool.socket).start()
        cls.port = cls.web.port

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.pool.stop()
        shutil.rmtree(cls.run_dir, ignore_errors=True)

    def test_lighttpd_spawns_nothing(self):
        self.api("get_user_status", {"users": ["1"]})
        self.assertEqual(h.child_pids(self.web.proc.pid), [])
        self.assertEqual(sorted(s.processes_with(CONF)),
                         sorted([self.pool.proc.pid] + h.child_pids(self.pool.proc.pid)))


class NginxSpawnFcgi(Smoke, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.spawner = s.SpawnFcgi(CONF, cls.run_dir).start()
        cls.web = s.Nginx(cls.spawner.socket_path).start()
        cls.port = cls.web.port

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.spawner.stop()
        shutil.rmtree(cls.run_dir, ignore_errors=True)

    def test_four_processes_share_the_socket(self):
        pids = s.processes_with(CONF)
        self.assertEqual(len(pids), 4, pids)
        st = os.stat(self.spawner.socket_path)
        self.assertEqual(st.st_mode & 0o777, 0o660)

    def test_sigterm_stops_them(self):
        # What `systemctl stop` does (KillMode=control-group): SIGTERM to every process.
        # On a second spawn-fcgi, so the one behind nginx stays for the other tests.
        run_dir = s.make_shared_dir("ustatus-run2-")
        with open(CONF) as f:
            conf2 = h.write_config(run_dir, f.read())
        os.chmod(conf2, 0o644)
        sp = s.SpawnFcgi(conf2, run_dir).start()
        try:
            pids = s.processes_with(conf2)
            self.assertEqual(len(pids), 4)
        finally:
            t0 = time.monotonic()
            sp.stop()
        self.assertLess(time.monotonic() - t0, 2.0, "idle processes exit at once on SIGTERM")
        s.unlink_metrics(conf2)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
