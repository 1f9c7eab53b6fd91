"""Shared fixtures for the integration tests: real servers started on loopback ports of
their own, stopped whatever happens (atexit and signal handlers as a second line).

Nothing here mocks anything: redis-server, lighttpd and ustatus-fcgi are the real
programs. A missing program is a test failure, never a skip.
"""
import atexit
import http.client as httplib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

SRCDIR = os.environ.get("USTATUS_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("USTATUS_BIN") or os.path.join(SRCDIR, "ustatus-fcgi")

_live = []  # processes to stop at exit, whatever happens


def _stop_all():
    for p in list(_live):
        stop_process(p)


atexit.register(_stop_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: (_stop_all(), os._exit(128 + s)))


def which(prog, extra=("/usr/sbin", "/usr/bin", "/sbin")):
    path = shutil.which(prog)
    if path:
        return path
    for d in extra:
        p = os.path.join(d, prog)
        if os.access(p, os.X_OK):
            return p
    raise AssertionError(f"required program {prog!r} is not installed")


def free_port(low=20000, high=50000):
    """A TCP port free on 127.0.0.1 (below 55536 so a Cluster bus port fits)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if low <= port < high:
            return port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_process(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _live.append(p)
    return p


def stop_process(p, sig=signal.SIGTERM, timeout=10):
    if p in _live:
        _live.remove(p)
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


class Redis:
    """A private redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, port=None, args=()):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ustatus-redis-")
        self.args = list(args)
        self.proc = None

    def start(self):
        argv = [which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log")] + self.args
        self.proc = start_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise AssertionError("redis-server does not answer PING")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None

    def cli(self, *args):
        r = subprocess.run([which("redis-cli"), "-h", "127.0.0.1", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=20)
        return r.stdout.strip()

    def command(self, *args):
        """A command with a raw reply (bytes), via a minimal RESP client."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _read_resp(f)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_resp(f):
    line = f.readline()
    if not line:
        raise AssertionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_resp(f) for _ in range(n)]
    raise AssertionError(f"bad RESP line {line!r}")


def write_config(directory, text, name="ustatus.conf"):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Lighttpd:
    """lighttpd on 127.0.0.1:port spawning ustatus-fcgi (bin-path) for /api."""

    def __init__(self, config_path, port=None, env=None, prefix="/api", procs=1, extra=""):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ustatus-lighttpd-")
        self.config_path = config_path
        self.env = env or {}
        self.prefix = prefix
        self.procs = procs
        self.extra = extra
        self.proc = None

    def conf_text(self):
        env = ", ".join(f'"{k}" => "{v}"' for k, v in self.env.items())
        return f"""
server.modules = ("mod_fastcgi")
server.document-root = "{self.dir}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{self.dir}/error.log"
server.breakagelog = "{self.dir}/ustatus.log"
server.max-request-size = 4096
fastcgi.server = (
  "{self.prefix}" => ((
    "bin-path" => "{BIN} -c {self.config_path}",
    "socket" => "{self.dir}/ustatus.sock",
    "check-local" => "disable",
    "max-procs" => {self.procs},
    "bin-environment" => ({env}),
  )),
)
{self.extra}
"""

    def start(self):
        conf = write_config(self.dir, self.conf_text(), "lighttpd.conf")
        self.proc = start_process([which("lighttpd"), "-D", "-f", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def error_log(self):
        """lighttpd's error log followed by what ustatus wrote to stderr."""
        text = ""
        for name in ("error.log", "ustatus.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


def http(port, method, path, body=None, headers=None, timeout=30):
    conn = httplib.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def cgi(config_path, method="POST", path="/api/get_user_status", body=b"", headers=None,
        query="", env=None, timeout=30):
    """Runs ustatus-fcgi as a plain CGI program for one request."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_INTERFACE": "CGI/1.1",
         "REQUEST_METHOD": method, "SCRIPT_NAME": path, "QUERY_STRING": query,
         "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
    for k, v in (headers or {}).items():
        e["HTTP_" + k.upper().replace("-", "_")] = v
    e.update(env or {})
    r = subprocess.run([BIN, "-c", config_path], input=body, env=e, capture_output=True,
                       timeout=timeout)
    head, _, payload = r.stdout.partition(b"\r\n\r\n")
    hdrs = {}
    status = None
    for line in head.decode().split("\r\n"):
        if not line:
            continue
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        else:
            hdrs[k.lower()] = v.strip()
    if status is None:
        raise AssertionError(f"no Status in CGI output {r.stdout[:200]!r} stderr {r.stderr!r}")
    resp = Response(status, hdrs, payload)
    resp.stderr = r.stderr.decode(errors="replace")
    return resp


def quote(s):
    return urllib.parse.quote(s, safe="")
