"""The command line (fcgi/main.c): --check-config, --version, --help, configuration errors
(exit 78 with one line naming the file, the line and the option, never a secret), usage
errors (exit 64), and a run as plain CGI serving the one request in its environment.

Also what main.c sets up for a process a web server started: the unsafe-setting warnings
of --check-config (SPEC §4, one line each, exit 0, no secret), the default configuration
path from configure's sysconfdir, and the log (SPEC §5): log.file under spawn-fcgi (whose
stderr is /dev/null) with timestamps and a reopen on SIGUSR1 after a rename, log.syslog
read from a /dev/log of the test's own (a private mount namespace), the journal's
priority prefixes when JOURNAL_STREAM names stderr, control characters escaped.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "main-key-1f5c"
LONG_KEY = "Zq7" + "k" * 37  # long enough not to be warned about
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:[+-]\d\d:\d\d|Z)"


def setUpModule():
    global REDIS, TMP, CONF
    TMP = h.make_tmpdir("ustatus-main-")
    REDIS = h.Redis().start()
    CONF = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "mn" }} }}
""")


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[TMP])

class ConfigErrors(unittest.TestCase):
    def test_error_names_option_and_line_exit_78(self):
        c = h.write_config(TMP, 'http_api {\n  key = "k"\n}\nuser_status {\n'
                                '  expire_interval = "12x"\n}\n', "bad.conf")
        r = h.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("expire_interval", r.stderr)
        self.assertIn(":5", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        c = h.write_config(TMP, 'http_api {\n  kee = "k"\n}\n', "bad2.conf")
        r = h.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("kee", r.stderr)
        self.assertIn(":2", r.stderr)
        # the same when started for real, not only with --check-config
        r = h.run_bin("-c", c)
        self.assertEqual(r.returncode, 78)
        r = h.run_bin("-c", os.path.join(TMP, "missing.conf"))
        self.assertEqual(r.returncode, 78)

    def test_long_password_refused_and_not_logged(self):
        secret = "p" * 299 + "Z"
        c = h.write_config(TMP, f'user_status {{ redis {{ password = "{secret}" }} }}\n',
                           "longpw.conf")
        r = h.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("longer than 255 bytes", r.stderr)
        self.assertNotIn("pZ", r.stderr)
        # a password in a redis:// URL with '/' and '?' in it: never quoted back
        r = h.run_bin("-c", CONF, "--check-config", env={
            "USTATUS_USER_STATUS_REDIS_ADDRESS": "redis://default:s3cr/et?PW@127.0.0.1:99999"})
        self.assertEqual(r.returncode, 78)
        self.assertNotIn("s3cr", r.stderr)
        self.assertNotIn("PW", r.stderr)

    def test_check_config_ok_and_version(self):
        r = h.run_bin("-c", CONF, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = h.run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("ustatus-fcgi "))
        r = h.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--config", r.stdout)

    def test_check_config_says_ok(self):
        r = h.run_bin("-c", CONF, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{CONF}: configuration OK\n")

    def test_malformed_json_file(self):
        c = h.write_config(TMP, '{"http_api": {"key": "k"},\n "x": }', "bad.json")
        r = h.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{c}:2", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_bad_address_names_the_option(self):
        c = h.write_config(TMP, 'user_status { redis { address = "not an address::" } }\n',
                           "badaddr.conf")
        r = h.run_bin("-c", c, "--check-config")
        self.assertEqual(r.returncode, 78, r.stdout)
        self.assertIn(f"{c}:1", r.stderr)
        self.assertIn("user_status.redis.address", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_usage_errors_exit_64(self):
        for args in (["--bogus"], ["extra-argument"], ["--workers", "2"],
                     ["--listen", "unix:/tmp/x.sock", "--workers", "0"]):
            r = h.run_bin("-c", CONF, *args)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertTrue(r.stderr.strip(), args)
            self.assertEqual(r.stdout, "", args)


class CgiRun(unittest.TestCase):
    """Without a FastCGI socket on fd 0 the program answers the request in its
    environment, then exits 0 (harness.cgi checks the exit status)."""

    def test_one_request_then_exit(self):
        r = h.cgi(CONF, path="/api/update_user_status", body={"users": ["c1"]},
                  headers={"X-API-Key": KEY})
        self.assertEqual((r.status, r.body), (200, b'{"result":{}}'), r.stderr)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(REDIS.cli("EXISTS", "mn.user_status.c1"), "1")

    def test_path_in_script_name_path_info_or_request_uri(self):
        # SPEC §1.1: whichever variable the web server puts the path in.
        body = {"users": ["c2"]}
        hd = {"X-API-Key": KEY}
        want = b'{"result":{"statuses":[{"user":"c2"}]}}'
        for env in ({"SCRIPT_NAME": "/api", "PATH_INFO": "/get_user_status"},
                    {"SCRIPT_NAME": "", "PATH_INFO": "/api/get_user_status"},
                    {"SCRIPT_NAME": "", "REQUEST_URI": "/api/get_user_status?x=1"}):
            r = h.cgi(CONF, body=body, headers=hd, env=env)
            self.assertEqual((r.status, r.body), (200, want), env)

    def test_environment_overrides_the_file(self):
        r = h.cgi(CONF, path="/api/get_user_status", body={"users": []},
                  headers={"X-API-Key": "from-env"}, env={"USTATUS_HTTP_API_KEY": "from-env"})
        self.assertEqual((r.status, r.body), (200, b'{"result":{"statuses":[]}}'))
        r = h.cgi(CONF, path="/api/get_user_status", body={"users": []},
                  headers={"X-API-Key": KEY}, env={"USTATUS_HTTP_API_KEY": "from-env"})
        self.assertEqual(r.status, 401)


# ---- --check-config warnings and the default path ----

class CheckConfigWarnings(unittest.TestCase):
    def check(self, text, mode=0o600, env=None):
        """--check-config of a file with `text` at `mode`: exit 0 and the OK line on
        stdout (whatever the warnings); the warning lines of stderr."""
        path = h.write_config(TMP, text, f"w{time.monotonic_ns()}.conf")
        os.chmod(path, mode)
        r = h.run_bin("-c", path, "--check-config", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{path}: configuration OK\n")
        lines = r.stderr.splitlines()
        for line in lines:
            self.assertTrue(line.startswith("warning: "), line)
        return path, lines

    def test_a_safe_file_has_none(self):
        _, lines = self.check(f'http_api {{ key = "{LONG_KEY}" }}\n')
        self.assertEqual(lines, [])

    def test_insecure(self):
        _, lines = self.check(f'http_api {{ key = "{LONG_KEY}" insecure = true }}\n')
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("http_api.insecure = true", lines[0])

    def test_empty_key(self):
        _, lines = self.check('http_api { key = "" }\n')
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("http_api.key is empty", lines[0])

    def test_one_character_key(self):
        _, lines = self.check('http_api { key = "Q" }\n')
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("http_api.key is shorter than 32 characters", lines[0])
        self.assertNotIn('"Q"', lines[0])

    def test_placeholder_copied_from_the_template(self):
        _, lines = self.check('http_api { key = "@API_KEY@" }\n')
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("template placeholder", lines[0])
        self.assertNotIn("@API_KEY@", lines[0])
        # from the environment too
        _, lines = self.check("", env={"USTATUS_HTTP_API_KEY": "@API_KEY@"})
        self.assertIn("template placeholder", "\n".join(lines))

    def test_world_readable_file_holding_the_key(self):
        path, lines = self.check(f'http_api {{ key = "{LONG_KEY}" }}\n', mode=0o644)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f"{path} holds secrets and every user can read it (mode 0644)", lines[0])
        self.assertNotIn(LONG_KEY, lines[0])
        _, lines = self.check(f'http_api {{ key = "{LONG_KEY}" }}\n', mode=0o640)
        self.assertEqual(lines, [], "group-readable is how the web server reads it")

    def test_insecure_skip_verify(self):
        _, lines = self.check(f'http_api {{ key = "{LONG_KEY}" }}\n'
                              'user_status { redis { tls { enabled = true '
                              'insecure_skip_verify = true } } }\n')
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("user_status.redis.tls.insecure_skip_verify = true", lines[0])

    def test_all_at_once_never_a_secret(self):
        secret = "s3cr3t-pw-" + "x" * 30
        _, lines = self.check(f'http_api {{ key = "Q" insecure = true }}\n'
                              f'user_status {{ redis {{ password = "{secret}" '
                              'tls { enabled = true insecure_skip_verify = true } } }\n',
                              mode=0o666)
        text = "\n".join(lines)
        self.assertEqual(len(lines), 4, lines)  # insecure, world-readable, -writable, tls
        self.assertNotIn(secret, text)

    def test_logged_at_start_up_too(self):
        path = h.write_config(TMP, 'http_api { key = "Q" }\n', "startup-warn.conf")
        os.chmod(path, 0o600)
        r = h.cgi(path, method="GET", path="/metrics")
        self.assertEqual(r.status, 200)
        self.assertRegex(r.stderr, r"ustatus\[\d+\]: warn: configuration: http_api.key is "
                                   r"shorter than 32 characters")


def configured_sysconfdir():
    """sysconfdir of the build the binary comes from (its Makefile), expanded."""
    with open(os.path.join(os.path.dirname(h.BIN), "Makefile")) as f:
        values = dict(m.groups() for m in re.finditer(r"^(\w+) = (.*)$", f.read(), re.M))
    v = values["sysconfdir"]
    for _ in range(5):
        v = re.sub(r"\$\{(\w+)\}|\$\((\w+)\)",
                   lambda m: values[m.group(1) or m.group(2)], v)
    return v


class DefaultConfigPath(unittest.TestCase):
    def test_from_sysconfdir(self):
        want = configured_sysconfdir() + "/ustatus/ustatus.conf"
        r = h.run_bin("--help")
        self.assertIn(f"(default {want})", r.stdout)
        if not os.path.exists(want):
            r = h.run_bin("--check-config")
            self.assertEqual(r.returncode, 78)
            self.assertIn(want, r.stderr)


# ---- logs ----

def dead_redis_conf(directory, log_extra, key=KEY):
    """A configuration whose Redis is not there: each request makes an error line."""
    port = h.free_port()
    path = h.write_config(directory, f'http_api {{ key = "{key}" }}\n'
                                     f'user_status {{ redis {{ address = "127.0.0.1:{port}" }} }}\n'
                                     f'log {{ {log_extra} }}\n')
    os.chmod(path, 0o644)
    return path, port


class SpawnFcgiLogFile(unittest.TestCase):
    """The process spawn-fcgi starts has /dev/null for stderr: log.file is where its
    lines go, timestamped, and a rename followed by SIGUSR1 (what logrotate does) puts
    the next lines in a new file."""

    def test_error_line_timestamped_and_reopened_on_sigusr1(self):
        d = s.make_shared_dir("ustatus-spawn-log-")
        os.chmod(d, 0o777)  # the process runs as nobody and recreates the file
        log = os.path.join(d, "ustatus.log")
        conf, port = dead_redis_conf(d, f'file = "{log}" level = "debug"')
        sock = os.path.join(d, "fcgi.sock")
        argv = [h.which("spawn-fcgi"), "-s", sock, "-M", "0666", "-F", "1",
                "-u", "nobody", "-g", "nogroup", "--", h.BIN, "-c", conf]
        h.on_exit(lambda: [os.kill(p, 9) for p in s.processes_with(conf)])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           env=h.sanitizer_env(d))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pid = s.wait_until(lambda: s.processes_with(conf), 10, "the spawned process")[0]
        try:
            self.assertEqual(os.readlink(f"/proc/{pid}/fd/2"), "/dev/null")
            params = s.api_params("/api/update_user_status", body=b'{"users":["sp1"]}',
                                  headers={"X-API-Key": KEY})
            r = s.fcgi_request(sock, params, b'{"users":["sp1"]}')
            self.assertEqual(r.json()["error"]["code"], 100)
            text = s.wait_until(lambda: f"127.0.0.1:{port}" in h.read_text(log) and
                                h.read_text(log), 10, "the error line")
            self.assertRegex(text, "(?m)^" + TIMESTAMP + rf" ustatus\[{pid}\]: error: redis "
                                   rf"127\.0\.0\.1:{port}: ")
            for line in text.splitlines():
                self.assertRegex(line, "^" + TIMESTAMP + rf" ustatus\[{pid}\]: ")

            os.rename(log, log + ".1")
            os.kill(pid, signal.SIGUSR1)
            time.sleep(1)  # past the Redis back-off: the next attempt logs (debug)
            r = s.fcgi_request(sock, params, b'{"users":["sp1"]}')
            self.assertEqual(r.json()["error"]["code"], 100)
            new = s.wait_until(lambda: h.read_text(log), 10, "lines in the new file")
            self.assertRegex(new, "^" + TIMESTAMP + rf" ustatus\[{pid}\]: debug: redis ")
            self.assertNotIn(new, h.read_text(log + ".1"))
            self.assertEqual(s.processes_with(conf), [pid], "SIGUSR1 reopens, never kills")
            self.assertEqual(os.stat(log).st_uid, 65534, "recreated by the process itself")
        finally:
            for p in s.processes_with(conf):
                os.kill(p, signal.SIGTERM)
            s.wait_until(lambda: not s.processes_with(conf), 10, "the process to exit")
            h.scan_logs(os.path.join(d, "sanitizer", "report.*"))

    def test_unopenable_file_stops_start_up(self):
        conf, _ = dead_redis_conf(TMP, 'file = "/nonexistent-dir/ustatus.log"')
        r = h.run_bin("-c", conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn("log.file /nonexistent-dir/ustatus.log: No such file or directory",
                      r.stderr)


# A /dev of the test's own in a private mount namespace: the devices ustatus may open,
# bound from the real /dev, and "log", the test's datagram socket.
PRIVATE_DEV = r"""
set -e
d="$1"; shift
for n in null zero full random urandom; do
    touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"
done
mkdir -p "$d/shm"; mount --bind /dev/shm "$d/shm"
mount --rbind "$d" /dev
exec "$@"
"""


class Syslog(unittest.TestCase):
    def test_lines_reach_syslog_with_their_severity(self):
        """As root (a mount namespace): the datagrams glibc's syslog(3) sends to
        /dev/log, read by the test. Facility daemon (3): error = <27>, warning = <28>."""
        d = h.make_tmpdir("ustatus-syslog-")
        dev = os.path.join(d, "dev")
        os.mkdir(dev)
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(os.path.join(dev, "log"))
        receiver.settimeout(10)
        conf, port = dead_redis_conf(d, "syslog = true", key="Q")
        env = h.clean_env({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                           "SCRIPT_NAME": "/api/update_user_status", "QUERY_STRING": "",
                           "CONTENT_LENGTH": "17", "HTTP_X_API_KEY": "Q",
                           "CONTENT_TYPE": "application/json"})
        try:
            r = subprocess.run([h.which("unshare"), "--mount", "--propagation", "private",
                                "sh", "-c", PRIVATE_DEV, "sh", dev, h.BIN, "-c", conf],
                               input=b'{"users":["sy1"]}', env=env, capture_output=True,
                               timeout=30)
            err = r.stderr.decode(errors="replace")
            h.assert_no_sanitizer_reports(err, "ustatus-fcgi under unshare")
            self.assertEqual(r.returncode, 0, err)
            self.assertIn(b'"code":100', r.stdout)
            self.assertEqual(err, "", "with log.syslog the lines leave stderr")
            got = []
            while not any("error: redis" in g for g in got):
                got.append(receiver.recv(4096).decode(errors="replace"))
        finally:
            receiver.close()
        text = "\n".join(got)
        self.assertRegex(text, r"<28>.* ustatus\[\d+\]: warn: configuration: http_api.key is "
                               r"shorter than 32 characters")
        self.assertRegex(text, rf"<27>.* ustatus\[\d+\]: error: redis 127\.0\.0\.1:{port}: ")


class HostileRedis:
    """A TCP server that answers every command with an error reply full of control
    characters (a hostile or broken Redis: SPEC §3.8)."""

    REPLY = b"-ERR boom\x1b[2J\x07\x01 end\r\n"

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        import threading
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                # one error per command (each RESP command starts with "*")
                c.sendall(self.REPLY * (data.count(b"\r\n*") + 1))

    def close(self):
        self.sock.close()


class Journal(unittest.TestCase):
    def test_priority_prefix_and_control_characters(self):
        """stderr is the journal when JOURNAL_STREAM names it (device:inode): each line
        starts with its priority. A control character in what is logged (here an error
        reply of a hostile Redis) comes out as \\xHH: one event, one line, no terminal
        escape."""
        d = h.make_tmpdir("ustatus-journal-")
        hostile = HostileRedis()
        conf = h.write_config(d, 'http_api { key = "Q" }\n'
                                 f'user_status {{ redis {{ address = "127.0.0.1:{hostile.port}" }} }}\n')
        os.chmod(conf, 0o600)
        stderr_path = os.path.join(d, "stderr")
        h.watch_log(stderr_path)
        try:
            with open(stderr_path, "wb") as f:
                st = os.fstat(f.fileno())
                env = h.clean_env({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                                   "SCRIPT_NAME": "/api/update_user_status", "QUERY_STRING": "",
                                   "CONTENT_LENGTH": "17", "HTTP_X_API_KEY": "Q",
                                   "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
                r = subprocess.run([h.BIN, "-c", conf], input=b'{"users":["jo1"]}', env=env,
                                   stdout=subprocess.PIPE, stderr=f, timeout=30)
        finally:
            hostile.close()
        self.assertEqual(r.returncode, 0)
        self.assertIn(b'"code":100', r.stdout)
        text = h.read_text(stderr_path)
        self.assertRegex(text, r"(?m)^<4>ustatus\[\d+\]: warn: configuration: http_api.key")
        self.assertRegex(text, r"(?m)^<3>ustatus\[\d+\]: error: .*boom\\x1b\[2J\\x07\\x01 end")
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x07", text)
        for line in text.splitlines():
            self.assertRegex(line, r"^<[3467]>ustatus\[")
        # the same stderr without JOURNAL_STREAM: no prefix
        env.pop("JOURNAL_STREAM")
        with open(stderr_path, "wb") as f:
            subprocess.run([h.BIN, "-c", conf], input=b'{"users":["jo1"]}', env=env,
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
        self.assertRegex(h.read_text(stderr_path), r"^ustatus\[\d+\]: ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
