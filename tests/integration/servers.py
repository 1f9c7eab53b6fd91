"""Fixtures for the process-pool and web-server tests (issue 4), beside harness.py:
a FastCGI client that talks to a socket directly (no web server, no retries), the ustatus
pool, Apache + mod_fcgid, nginx, spawn-fcgi and lighttpd connected to an external socket,
each started on loopback from the shipped deploy/ files with test paths substituted.

Everything started here goes through harness.start_process, so it is stopped at exit
whatever happens.
"""
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import time

import harness as h

AS_ROOT = os.geteuid() == 0
DEPLOY = os.path.join(h.SRCDIR, "deploy")


# ---- a FastCGI client ----

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN = 1, 3, 4, 5
FCGI_STDOUT, FCGI_STDERR = 6, 7


def _record(rtype, content, request_id=1):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        pad = (8 - len(chunk) % 8) % 8
        out += struct.pack("!BBHHBx", 1, rtype, request_id, len(chunk), pad) + chunk + b"\0" * pad
    return out


def _nv_len(n):
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def _params(params):
    data = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode() if isinstance(v, str) else v
        data += _nv_len(len(k)) + _nv_len(len(v)) + k + v
    return data


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the FastCGI server closed the connection mid-response")
        buf += chunk
    return buf


def parse_cgi_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").split("\r\n"):
        if not line:
            continue
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        else:
            headers[k.lower()] = v.strip()
    return h.Response(status, headers, body)


class FcgiConnection:
    """One connection to a FastCGI server; with keep=True the requests ask the server to
    keep it open (FCGI_KEEP_CONN), as nginx does with fastcgi_keep_conn on."""

    def __init__(self, address, timeout=30):
        fam = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise

    def request(self, params, body=b"", keep=False):
        out = _record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 1 if keep else 0))
        out += _record(FCGI_PARAMS, _params(params)) + _record(FCGI_PARAMS, b"")
        if body:
            out += _record(FCGI_STDIN, body)
        out += _record(FCGI_STDIN, b"")
        self.sock.sendall(out)
        stdout = b""
        while True:
            _version, rtype, _rid, clen, plen = struct.unpack("!BBHHBx", _recv_exact(self.sock, 8))
            content = _recv_exact(self.sock, clen + plen)[:clen]
            if rtype == FCGI_STDOUT:
                stdout += content
            elif rtype == FCGI_END_REQUEST:
                break
        return parse_cgi_response(stdout)

    def closed_by_peer(self, timeout=5):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()


def fcgi_request(address, params, body=b"", timeout=30):
    """One FastCGI request (responder role) to `address`: a unix socket path or a
    (host, port) pair. Returns a harness.Response; raises on any transport problem, so a
    caller that counts failures counts every request that did not get an answer."""
    conn = FcgiConnection(address, timeout)
    try:
        return conn.request(params, body)
    finally:
        conn.close()


def api_params(path, method="POST", body=b"", headers=None, query=""):
    """The CGI parameters a web server would send for this request."""
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method, "SCRIPT_NAME": path,
         "QUERY_STRING": query, "REQUEST_URI": path + ("?" + query if query else ""),
         "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": str(len(body)),
         "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1"}
    for k, v in (headers or {}).items():
        p["HTTP_" + k.upper().replace("-", "_")] = v
    return p


# ---- processes ----

def proc_state(pid):
    """The state letter of /proc/pid/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    return proc_state(pid) not in (None, "Z", "X")


def processes_with(text):
    """Live (not zombie) processes whose command line contains `text`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and alive(int(entry)):
            out.append(int(entry))
    return sorted(out)


def proc_user(pid):
    """(real uid, effective uid) of a process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                ids = line.split()[1:]
                return int(ids[0]), int(ids[1])
    raise AssertionError(f"no Uid line for {pid}")


def wait_until(cond, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_shared_dir(prefix):
    """A temporary directory the web servers' unprivileged users can read; removed when
    the test program exits (its logs stay readable until then)."""
    d = h.make_tmpdir(prefix)
    os.chmod(d, 0o755)
    return d


metrics_shm_path = h.metrics_shm_path
unlink_metrics = h.unlink_metrics


class Pool:
    """ustatus-fcgi --listen: the prefork pool, its stderr in a file."""

    def __init__(self, config_path, listen=None, workers=2, args=(), directory=None):
        self.dir = directory or make_shared_dir("ustatus-pool-")
        self.config_path = config_path
        self.listen = listen or f"unix:{self.dir}/ustatus.sock"
        self.workers_n = workers
        self.args = list(args)
        self.log_path = os.path.join(self.dir, "pool.log")
        self.proc = None

    @property
    def address(self):
        if self.listen.startswith("unix:"):
            return self.listen[5:]
        host, _, port = self.listen.rpartition(":")
        return (host, int(port))

    def argv(self):
        argv = [h.BIN, "-c", self.config_path, "--listen", self.listen]
        if self.workers_n:
            argv += ["--workers", str(self.workers_n)]
        return argv + self.args

    def start(self, wait_workers=True):
        h.watch_log(self.log_path)
        self.log = open(self.log_path, "ab")
        self.proc = h.start_process(self.argv(), stdout=subprocess.DEVNULL, stderr=self.log)
        wait_until(lambda: self._connectable() or self.proc.poll() is not None, 10,
                   "the pool's socket")
        if self.proc.poll() is not None:
            raise AssertionError(f"the pool exited with {self.proc.returncode}:\n{self.log_text()}")
        if wait_workers and self.workers_n:
            wait_until(lambda: len(self.workers()) == self.workers_n, 10,
                       f"{self.workers_n} workers")
        return self

    def _connectable(self):
        try:
            fam = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(self.address)
            return True
        except OSError:
            return False

    def workers(self):
        return h.child_pids(self.proc.pid)

    def request(self, path, body=b"", headers=None, method="POST", query="", timeout=30):
        if isinstance(body, (dict, list)):
            import json
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return fcgi_request(self.address, api_params(path, method, body, headers, query),
                            body, timeout)

    def log_text(self):
        return h.read_text(self.log_path)

    def wait_log(self, pattern, timeout=10):
        return wait_until(lambda: re.search(pattern, self.log_text()), timeout,
                          f"{pattern!r} in the pool's log")

    def stop(self):
        """Stops the pool (SIGTERM to its process group) if it still runs; the exit
        status stays in self.proc.returncode."""
        if self.proc:
            h.stop_process(self.proc)
        if getattr(self, "log", None):
            self.log.close()
        h.scan_logs(self.log_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def unit_exec_start(unit_path):
    """The ExecStart command of a shipped systemd unit, as an argument list."""
    with open(unit_path) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line[len("ExecStart="):])
    raise AssertionError(f"no ExecStart in {unit_path}")


def substitute(text, mapping):
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def deploy_paths(conf, run_dir, log_dir=None, bin_path=None):
    """The substitutions that turn a shipped deploy/ file into a test one."""
    return {"/usr/local/bin/ustatus-fcgi": bin_path or h.BIN,
            "/etc/ustatus/ustatus.conf": conf,
            "/run/ustatus": run_dir,
            "/var/log/ustatus": log_dir or run_dir}


class Apache(h.Server):
    """apache2 -DFOREGROUND with its own ServerRoot, running deploy/apache/ustatus.conf."""

    MODULES = ("mpm_event", "authz_core", "authz_host", "fcgid")

    def __init__(self, config_path, port=None):
        self.port = port or h.free_port()
        self.dir = make_shared_dir("ustatus-apache-")
        self.config_path = config_path
        self.proc = None

    def start(self):
        d = self.dir
        for sub in ("htdocs", "run", "fcgid"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if AS_ROOT:
            shutil.chown(os.path.join(d, "fcgid"), "www-data", "www-data")
        with open(os.path.join(DEPLOY, "apache", "ustatus.conf")) as f:
            site = f.read()
        site = substitute(site, deploy_paths(self.config_path, d))
        site = (site.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")
                    .replace("/var/www/html", f"{d}/htdocs")
                    .replace("${APACHE_LOG_DIR}", d))
        h.write_config(d, site, "ustatus-site.conf")
        modules = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so"
                            for m in self.MODULES)
        user = "User www-data\nGroup www-data\n" if AS_ROOT else ""
        main = f"""
ServerRoot "{d}"
ServerName 127.0.0.1
{modules}
{user}
PidFile {d}/run/apache2.pid
DefaultRuntimeDir {d}/run
Mutex file:{d}/run default
ErrorLog {d}/error.log
LogLevel warn
FcgidIPCDir {d}/fcgid
FcgidProcessTableFile {d}/run/fcgid_shm
DocumentRoot {d}/htdocs
Include {d}/ustatus-site.conf
"""
        conf = h.write_config(d, main, "apache2.conf")
        check = subprocess.run([h.which("apache2"), "-f", conf, "-t"], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise AssertionError(f"apache2 -t: {check.stdout}{check.stderr}")
        self.watch_logs()
        self.proc = h.start_process([h.which("apache2"), "-f", conf, "-DFOREGROUND"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(self.port, proc=self.proc)
        return self

    def log_paths(self):
        # mod_fcgid sends its processes' stderr to the virtual host's ErrorLog.
        return [os.path.join(self.dir, n) for n in ("error.log", "ustatus-error.log")]

    def error_log(self):
        return h.read_logs(self.dir, "error.log", "ustatus-error.log")

    def stop(self):
        # Apache's graceful stop is SIGWINCH; SIGTERM stops it and its children now.
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx(h.Server):
    """nginx -g 'daemon off;' with its own prefix, running deploy/nginx/ustatus.conf with
    the upstream socket at `socket_path`."""

    def __init__(self, socket_path, port=None):
        self.port = port or h.free_port()
        self.dir = make_shared_dir("ustatus-nginx-")
        self.socket_path = socket_path
        self.proc = None

    def start(self):
        d = self.dir
        for sub in ("logs", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(d, "fastcgi_params"))
        with open(os.path.join(DEPLOY, "nginx", "ustatus.conf")) as f:
            site = f.read()
        site = (site.replace("unix:/run/ustatus/ustatus-fcgi.sock", f"unix:{self.socket_path}")
                    .replace("127.0.0.1:8000", f"127.0.0.1:{self.port}"))
        h.write_config(d, site, "ustatus-site.conf")
        user = "user www-data;" if AS_ROOT else ""
        temps = "\n".join(f"  {k}_temp_path {d}/tmp/{k};"
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        main = f"""
{user}
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temps}
  include {d}/ustatus-site.conf;
}}
"""
        conf = h.write_config(d, main, "nginx.conf")
        argv = [h.which("nginx"), "-p", d, "-e", f"{d}/logs/error.log", "-c", conf]
        check = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"nginx -t: {check.stdout}{check.stderr}")
        self.watch_logs()
        self.proc = h.start_process(argv + ["-g", "daemon off;"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(self.port, proc=self.proc)
        return self

    def log_paths(self):
        # FastCGI stderr records ("FastCGI sent in stderr") land here.
        return [os.path.join(self.dir, "logs", "error.log")]

    def error_log(self):
        return h.read_logs(os.path.join(self.dir, "logs"), "error.log")

    def stop(self):
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LighttpdPool(h.Server):
    """lighttpd running deploy/lighttpd/lighttpd-pool.conf: connected to an external
    socket, spawning nothing."""

    def __init__(self, socket_path, port=None):
        self.port = port or h.free_port()
        self.dir = make_shared_dir("ustatus-lighttpd-pool-")
        self.socket_path = socket_path
        self.proc = None

    def start(self):
        d = self.dir
        with open(os.path.join(DEPLOY, "lighttpd", "lighttpd-pool.conf")) as f:
            conf = f.read()
        conf = (conf.replace("/run/ustatus/ustatus-fcgi.sock", self.socket_path)
                    .replace("/run/ustatus", d).replace("/var/log/ustatus", d)
                    .replace("/var/empty", d)
                    .replace("server.port = 8000", f"server.port = {self.port}"))
        if AS_ROOT:
            open(os.path.join(d, "lighttpd-error.log"), "a").close()
            shutil.chown(os.path.join(d, "lighttpd-error.log"), "www-data", "www-data")
        else:
            conf = re.sub(r"^server\.(user|group)name.*$", "", conf, flags=re.M)
        path = h.write_config(d, conf, "lighttpd.conf")
        self.watch_logs()
        self.proc = h.start_process([h.which("lighttpd"), "-D", "-f", path],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(self.port, proc=self.proc)
        return self

    def log_paths(self):
        return [os.path.join(self.dir, "lighttpd-error.log")]

    def stop(self):
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SpawnFcgi:
    """The ExecStart of deploy/spawn-fcgi/ustatus-spawn-fcgi.service, run in the
    foreground of a test: spawn-fcgi binds the socket, forks the ustatus processes and
    exits; the processes are found by the (unique) configuration path."""

    def __init__(self, config_path, run_dir, user="nobody", group="nogroup"):
        self.config_path = config_path
        self.run_dir = run_dir
        self.socket_path = os.path.join(run_dir, "ustatus-fcgi.sock")
        self.user, self.group = user, group
        self.pids = []

    def argv(self):
        argv = unit_exec_start(os.path.join(DEPLOY, "spawn-fcgi", "ustatus-spawn-fcgi.service"))
        argv = [substitute(a, deploy_paths(self.config_path, self.run_dir)) for a in argv]
        out, i = [], 0
        while i < len(argv):
            a = argv[i]
            if a in ("-u", "-g", "-U", "-G") and not AS_ROOT:
                i += 2  # the user changes need root; the rest of the line is tested
                continue
            if a == "-u":
                out += [a, self.user]
                i += 2
                continue
            if a == "-g":
                out += [a, self.group]
                i += 2
                continue
            out.append(a)
            i += 1
        out[0] = h.which("spawn-fcgi")
        return out

    def start(self, count=None):
        argv = self.argv()
        # spawn-fcgi daemonises its children: they are not in our process tree, so they
        # are stopped by their configuration path at exit if a test does not get to it.
        h.on_exit(self.stop)
        # spawn-fcgi points its children's stderr at /dev/null: the sanitizers write
        # their reports to files of the run directory instead (checked at stop).
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           env=h.sanitizer_env(self.run_dir))
        if r.returncode != 0:
            raise AssertionError(f"spawn-fcgi failed: {r.stdout}{r.stderr}")
        self.pids = wait_until(lambda: processes_with(self.config_path), 10,
                               "the processes spawn-fcgi started")
        return self

    def stop(self):
        for pid in processes_with(self.config_path):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        wait_until(lambda: not processes_with(self.config_path), 10,
                   "the spawn-fcgi processes to exit")
        h.scan_logs(os.path.join(self.run_dir, "sanitizer", "report.*"))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def http_from(port, method, path, source, body=None, headers=None, timeout=30):
    """An HTTP request to 127.0.0.1:port sent from the loopback address `source` (e.g.
    127.0.0.2): what a host that is not allowed to see /metrics looks like."""
    import http.client as httplib
    import json
    conn = httplib.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return h.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = {}
        if m.group(3):
            for part in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3)):
                labels[part[0]] = part[1]
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)
