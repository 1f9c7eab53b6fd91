"""The same API smoke suite through every supported deployment (issue 4), each started on
loopback from the shipped deploy/ files (paths and ports substituted):

  - Apache 2.4 + mod_fcgid spawning ustatus-fcgi   (deploy/apache/ustatus.conf)
  - lighttpd spawning ustatus-fcgi                 (deploy/lighttpd/lighttpd.conf)
  - lighttpd + the ustatus pool on a unix socket   (deploy/lighttpd/lighttpd-pool.conf,
                                                    the pool of deploy/systemd's units,
                                                    socket-activated as systemd would)
  - nginx + the ustatus pool on a unix socket      (deploy/nginx/ustatus.conf, same pool)
  - nginx + spawn-fcgi                             (deploy/spawn-fcgi/ustatus-spawn-fcgi.service)

Each one: update / get / delete, an error reply, the three ways to pass the key, a 401,
/health and /metrics reachable from 127.0.0.1 and refused from 127.0.0.2, no ustatus
process running as root, and ustatus's log lines in the place the README names for that
deployment (a request against a Redis that is down logs "cannot connect").
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import servers as s  # noqa: E402
import units  # noqa: E402

# The shipped files name the installed binary /usr/local/sbin/ustatus-fcgi (a daemon, in
# $(sbindir)); the units name @sbindir@/@sysconfdir@, substituted by make install.
_deploy_paths = s.deploy_paths


def deploy_paths(conf, run_dir, log_dir=None, bin_path=None):
    m = {"/usr/local/sbin/ustatus-fcgi": bin_path or h.BIN,
         "@sbindir@/ustatus-fcgi": bin_path or h.BIN,
         "@sysconfdir@/ustatus/ustatus.conf": conf}
    m.update(_deploy_paths(conf, run_dir, log_dir, bin_path))
    return m


s.deploy_paths = deploy_paths  # servers.Apache and servers.SpawnFcgi use it too

KEY = "web-key-51c0a7"
TOKEN_SECRET = "web-token-secret-9e2b"
PROXY_KEY = "web-proxy-key-7a41"


def hs256_token(sub):
    """A Centrifugo connection JWT for sub, valid for an hour."""
    return at.hs256_for(TOKEN_SECRET, sub, ttl=3600)


def setUpModule():
    global REDIS, TMP, CONF, DEAD_CONF
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
    # The same behind a Redis that is down: every request logs "cannot connect".
    dead = h.free_port()
    DEAD_CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{dead}" connect_timeout = "200ms" }} }}
""", "dead.conf")
    os.chmod(DEAD_CONF, 0o644)


def tearDownModule():
    try:
        h.tear_down_module(REDIS, dirs=[REDIS.dir])
    finally:
        s.unlink_metrics(CONF)
        s.unlink_metrics(DEAD_CONF)
        shutil.rmtree(TMP, ignore_errors=True)


CANNOT_CONNECT = re.compile(r"^.*redis 127\.0\.0\.1:\d+: cannot connect.*$", re.M)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def request_dead_redis(port):
    """One API call through a deployment running DEAD_CONF: error 100, and a log line."""
    r = h.http(port, "POST", "/api/get_user_status", {"users": ["1"]}, {"X-API-Key": KEY})
    assert (r.status, r.json()["error"]["code"]) == (200, 100), r


def wait_line(path, pattern=CANNOT_CONNECT, timeout=10):
    """The first line of `path` matching `pattern`, waiting for it to be written."""
    def find():
        m = pattern.search(h.read_logs(os.path.dirname(path), os.path.basename(path)))
        return m.group(0) if m else None
    return s.wait_until(find, timeout, f"{pattern.pattern!r} in {path}")


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

    def test_log_lines_in_apaches_main_error_log(self):
        # The README (and deploy/apache/ustatus.conf): mod_fcgid's processes write to
        # Apache's main ErrorLog (/var/log/apache2/error.log), not the virtual host's.
        web = s.Apache(DEAD_CONF).start()
        try:
            request_dead_redis(web.port)
            wait_line(os.path.join(web.dir, "error.log"))
            self.assertIsNone(CANNOT_CONNECT.search(h.read_logs(web.dir, "ustatus-error.log")))
        finally:
            web.stop()
            s.wait_until(lambda: not s.processes_with(DEAD_CONF), 10, "mod_fcgid's processes to exit")


def start_lighttpd_spawned(conf):
    """deploy/lighttpd/lighttpd.conf with the test's paths: (directory, port, process)."""
    d = s.make_shared_dir("ustatus-lighttpd-spawn-")
    port = h.free_port()
    with open(os.path.join(s.DEPLOY, "lighttpd", "lighttpd.conf")) as f:
        web = f.read()
    web = (s.substitute(web, s.deploy_paths(conf, d))
           .replace("/var/empty", d)
           .replace("server.port = 8000", f"server.port = {port}"))
    if s.AS_ROOT:
        os.chmod(d, 0o1777)  # lighttpd creates its sockets as www-data
        for name in ("lighttpd-error.log", "lighttpd-ustatus.log"):
            open(os.path.join(d, name), "a").close()
            shutil.chown(os.path.join(d, name), "www-data", "www-data")
    else:
        web = re.sub(r"^server\.(user|group)name.*$", "", web, flags=re.M)
    path = h.write_config(d, web, "lighttpd.conf")
    h.watch_log(*[os.path.join(d, n) for n in ("lighttpd-error.log", "lighttpd-ustatus.log")])
    proc = h.start_process([h.which("lighttpd"), "-D", "-f", path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.wait_port(port, proc=proc)
    return d, port, proc


def stop_lighttpd_spawned(d, proc, conf):
    h.stop_process(proc)
    s.wait_until(lambda: not s.processes_with(conf), 10, "lighttpd's processes to exit")
    h.scan_logs(*[os.path.join(d, n) for n in ("lighttpd-error.log", "lighttpd-ustatus.log")])
    shutil.rmtree(d, ignore_errors=True)


class LighttpdSpawned(Smoke, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.port, cls.proc = start_lighttpd_spawned(CONF)

    @classmethod
    def tearDownClass(cls):
        stop_lighttpd_spawned(cls.dir, cls.proc, CONF)

    def test_log_lines_in_the_breakage_log(self):
        # The README: lighttpd gives the processes it spawns server.breakagelog as stderr,
        # /var/log/ustatus/lighttpd-ustatus.log; lighttpd's own error log stays its own.
        d, port, proc = start_lighttpd_spawned(DEAD_CONF)
        try:
            request_dead_redis(port)
            wait_line(os.path.join(d, "lighttpd-ustatus.log"))
            self.assertIsNone(CANNOT_CONNECT.search(h.read_logs(d, "lighttpd-error.log")))
        finally:
            stop_lighttpd_spawned(d, proc, DEAD_CONF)


class PoolService(units.SocketActivatedService):
    """The pool of deploy/systemd/ustatus.socket + ustatus.service.in, socket-activated
    as systemd would start it, with the test's paths. systemd would run it as
    User=ustatus with SupplementaryGroups=www-data; here, as root, setpriv makes it
    nobody:nogroup with www-data; not as root, it stays our user. Its stderr is a file
    standing for the journal (JOURNAL_STREAM names it, as systemd does)."""

    def __init__(self, run_dir, conf=None):
        conf = conf or CONF
        subst = {"@sbindir@/ustatus-fcgi": h.BIN,
                 "@sysconfdir@/ustatus/ustatus.conf": conf,
                 "/run/ustatus": run_dir}
        super().__init__(os.path.join(s.DEPLOY, "systemd", "ustatus.service.in"),
                         os.path.join(s.DEPLOY, "systemd", "ustatus.socket"), run_dir,
                         subst, user="nobody" if s.AS_ROOT else None,
                         group="nogroup" if s.AS_ROOT else None,
                         groups=["www-data"] if s.AS_ROOT else [],
                         extra_args=["--workers", "2"],
                         log_path=os.path.join(run_dir, "journal.log"))
        self.socket = self.address
        open(self.log_path, "a").close()
        st = os.stat(self.log_path)
        self.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"

    def start(self, trigger=True):
        super().start(trigger)
        s.wait_until(lambda: len(h.child_pids(self.proc.pid)) == 2, 10, "the pool's workers")
        return self


class PoolChecks:
    def test_socket_owner_and_mode(self):
        # ustatus.socket: SocketGroup=www-data, SocketMode=0660.
        st = os.stat(self.pool.socket)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        if s.AS_ROOT:
            import grp
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "www-data")

    def test_socket_activated_and_ready(self):
        # The pool serves the socket systemd-socket-activate bound (fd 3), binds none of
        # its own, and said READY=1 once its workers served.
        self.assertIn("READY=1", self.pool.notify.lines())
        self.assertIn(f"MAINPID={self.pool.proc.pid}", self.pool.notify.lines())
        fd3 = os.readlink(f"/proc/{self.pool.proc.pid}/fd/3")
        self.assertTrue(fd3.startswith("socket:"), fd3)

    def test_log_lines_in_the_journal(self):
        # The README: the pool's lines go to its stderr, the journal under systemd
        # (journalctl -u ustatus), with the priority prefix journald reads.
        run_dir = s.make_shared_dir("ustatus-run-dead-")
        pool = PoolService(run_dir, DEAD_CONF).start()
        web = self.web_for(pool.socket).start()
        try:
            request_dead_redis(web.port)
            line = wait_line(pool.log_path)
            self.assertTrue(line.startswith("<3>"), line)
            self.assertIsNone(CANNOT_CONNECT.search(web.error_log() if hasattr(web, "error_log")
                                                    else ""))
        finally:
            web.stop()
            pool.stop()
            shutil.rmtree(run_dir, ignore_errors=True)


class NginxPool(Smoke, PoolChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.pool = PoolService(cls.run_dir).start()
        cls.web = s.Nginx(cls.pool.socket).start()
        cls.port = cls.web.port

    web_for = s.Nginx

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.pool.stop()
        shutil.rmtree(cls.run_dir, ignore_errors=True)

    def test_nginx_without_socket_permission_gets_502(self):
        # What SocketGroup=/SocketMode= are for: a socket nginx's workers may not open.
        # A fresh nginx, whose workers hold no kept-alive connection to the pool yet.
        if not s.AS_ROOT:
            self.skipTest("needs root: nginx's workers must run as another user")
        os.chmod(self.pool.socket, 0o600)
        web = s.Nginx(self.pool.socket).start()
        try:
            r = h.http(web.port, "POST", "/api/get_user_status", {"users": ["1"]},
                       {"X-API-Key": KEY})
            self.assertEqual(r.status, 502)
            os.chmod(self.pool.socket, 0o660)
            r = h.http(web.port, "POST", "/api/get_user_status", {"users": ["1"]},
                       {"X-API-Key": KEY})
            self.assertEqual(r.status, 200)
        finally:
            os.chmod(self.pool.socket, 0o660)
            web.stop()


class LighttpdPool(Smoke, PoolChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.pool = PoolService(cls.run_dir).start()
        cls.web = s.LighttpdPool(cls.pool.socket).start()
        cls.port = cls.web.port

    web_for = s.LighttpdPool

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


class SpawnFcgiUnit(s.SpawnFcgi):
    """servers.SpawnFcgi with the unit's Environment= too (USTATUS_LOG_FILE: spawn-fcgi
    points the processes' stderr at /dev/null, so the unit sends their lines to a file).
    The run directory stands for /var/log/ustatus as well; the processes (nobody when we
    are root) may write there."""

    UNIT = os.path.join(s.DEPLOY, "spawn-fcgi", "ustatus-spawn-fcgi.service")

    def unit_env(self):
        env = {}
        paths = s.deploy_paths(self.config_path, self.run_dir)
        for value in units.parse_unit(self.UNIT, paths).get("Environment", []):
            for assignment in shlex.split(value):
                k, _, v = assignment.partition("=")
                env[k] = v
        return env

    def start(self, count=None):
        os.chmod(self.run_dir, 0o1777)
        saved = {k: os.environ.get(k) for k in self.unit_env()}
        os.environ.update(self.unit_env())  # spawn-fcgi passes its environment on
        try:
            return super().start(count)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class NginxSpawnFcgi(Smoke, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_dir = s.make_shared_dir("ustatus-run-")
        cls.spawner = SpawnFcgiUnit(CONF, cls.run_dir).start()
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
        sp = SpawnFcgiUnit(conf2, run_dir).start()
        try:
            pids = s.processes_with(conf2)
            self.assertEqual(len(pids), 4)
        finally:
            t0 = time.monotonic()
            sp.stop()
        self.assertLess(time.monotonic() - t0, 2.0, "idle processes exit at once on SIGTERM")
        s.unlink_metrics(conf2)
        shutil.rmtree(run_dir, ignore_errors=True)

    def test_log_lines_in_log_file(self):
        # The README: under spawn-fcgi (stderr /dev/null) the unit sets log.file
        # (USTATUS_LOG_FILE=/var/log/ustatus/ustatus.log): timestamped lines there.
        env = SpawnFcgiUnit(CONF, self.run_dir).unit_env()
        self.assertEqual(env.get("USTATUS_LOG_FILE"), os.path.join(self.run_dir, "ustatus.log"))
        run_dir = s.make_shared_dir("ustatus-run-dead-")
        sp = SpawnFcgiUnit(DEAD_CONF, run_dir).start()
        web = s.Nginx(sp.socket_path).start()
        try:
            request_dead_redis(web.port)
            line = wait_line(os.path.join(run_dir, "ustatus.log"))
            self.assertRegex(line, TIMESTAMP)
            self.assertIsNone(CANNOT_CONNECT.search(web.error_log()))
        finally:
            web.stop()
            sp.stop()
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
