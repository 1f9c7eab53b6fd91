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
_tmpdirs = []  # directories to remove at exit
_configs = set()  # configuration files written: their metrics segments go at exit


_cleanups = []  # functions to call at exit, for what is not a process of ours


def on_exit(fn):
    """Calls fn at exit, whatever happens (daemons that left our process tree)."""
    _cleanups.append(fn)


def _stop_all():
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception:  # noqa: BLE001 - cleanup goes on whatever one step did
            pass
    for p in list(_live):
        stop_process(p)
    for d in list(_tmpdirs):
        shutil.rmtree(d, ignore_errors=True)
    for path in list(_configs):
        unlink_metrics(path)


def make_tmpdir(prefix):
    """A temporary directory removed at exit, whatever happens."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def metrics_shm_path(config_path, uid=None):
    """Where ustatus keeps the metrics of config_path for `uid` (see metrics.h)."""
    key = os.path.realpath(config_path).encode()
    uid = os.geteuid() if uid is None else uid
    return "/dev/shm/ustatus-m1-%d-%016x" % (uid, fnv1a64(key))


def unlink_metrics(config_path, uids=(None, 33, 65534)):
    """Every process run with config_path shares one metrics segment; drop it."""
    for uid in uids:
        try:
            os.unlink(metrics_shm_path(config_path, uid))
        except (FileNotFoundError, PermissionError):
            pass


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


def wait_unix(path, timeout=10.0, proc=None):
    """Until a connection to the Unix socket `path` is accepted. The file appears at
    bind(), before listen(): a connect in between is refused, so existence is not enough.
    (Under socket activation this first connection is what starts the service.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode} while starting")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(0.5)
                c.connect(path)
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {path} after {timeout}s")


class Server:
    """A server a test starts (subclasses give start()): stop() ends its process group;
    a with-statement starts it, then stops it and removes its directory."""

    proc = None
    dir = None

    def log_paths(self):
        """The files a ustatus process started by this server writes its stderr to."""
        return ()

    def watch_logs(self):
        """Registers log_paths() for the module's sanitizer check (call from start())."""
        watch_log(*self.log_paths())

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None
        # The workers have exited (LeakSanitizer reports at exit): read the logs now,
        # before a caller removes the directory.
        scan_logs(*self.log_paths())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def redis_cli(port, *args):
    """redis-cli against 127.0.0.1:port; its output, stripped."""
    r = subprocess.run([which("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
                       capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


class Redis(Server):
    """A private redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, port=None, args=()):
        self.port = port or free_port()
        self.dir = make_tmpdir("ustatus-redis-")
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

    def cli(self, *args):
        return redis_cli(self.port, *args)

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


def read_text(path):
    """A file's text (undecodable bytes replaced); a file not written yet reads empty."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_logs(directory, *names):
    """The files' contents one after the other; a file not written yet reads empty."""
    return "".join(read_text(os.path.join(directory, name)) for name in names)


def write_config(directory, text, name="ustatus.conf"):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    _configs.add(path)
    return path


class Lighttpd(Server):
    """lighttpd on 127.0.0.1:port spawning ustatus-fcgi (bin-path) for /api."""

    def __init__(self, config_path, port=None, env=None, prefix="/api", procs=1, extra=""):
        self.port = port or free_port()
        self.dir = make_tmpdir("ustatus-lighttpd-")
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
        self.watch_logs()
        self.proc = start_process([which("lighttpd"), "-D", "-f", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def log_paths(self):
        return [os.path.join(self.dir, n) for n in ("error.log", "ustatus.log")]

    def error_log(self):
        """lighttpd's error log followed by what ustatus wrote to stderr."""
        return read_logs(self.dir, "error.log", "ustatus.log")


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
    e = clean_env({"GATEWAY_INTERFACE": "CGI/1.1",
                   "REQUEST_METHOD": method, "SCRIPT_NAME": path, "QUERY_STRING": query,
                   "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"})
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
    # A CGI run that answered must also exit cleanly: under the sanitizer build a leak or
    # undefined behaviour shows up here as a non-zero status, or as a report on stderr.
    assert_no_sanitizer_reports(resp.stderr, f"ustatus-fcgi (CGI {method} {path})")
    if r.returncode != 0:
        raise AssertionError(f"ustatus-fcgi exited {r.returncode} after answering: {resp.stderr}")
    return resp


def run_bin(*args, env=None, timeout=20):
    """ustatus-fcgi run with `args` in a clean environment (PATH, the sanitizer options,
    and `env`), as the command line is used: its CompletedProcess, text. Fails on any
    sanitizer report in its stderr."""
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                       env=clean_env(env), stdin=subprocess.DEVNULL)
    assert_no_sanitizer_reports(r.stderr, "ustatus-fcgi " + " ".join(args))
    return r


def clean_env(extra=None):
    """PATH and the sanitizer options of the test run (tests/run-all sets them), plus
    `extra`: what a ustatus-fcgi run by a test sees, whatever else the caller's
    environment holds (no USTATUS_* leaking in)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    e.update(extra or {})
    return e


def quote(s):
    return urllib.parse.quote(s, safe="")


# ---- topologies (issue 3): a relay that counts round trips, Sentinel, Cluster ----

class Proxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target_port that records, per client
    connection, every exchange: a burst of client bytes up to the next bytes the server
    sends back. A pipelined request is one exchange; a client that waits for each reply
    makes one exchange per command. Optionally holds each reply until `delay_s` after its
    exchange began, so that requests issued concurrently to several servers are told apart
    from requests issued one after the other.

    Runs as threads of the test process: nothing to stop but the listening socket."""

    class Exchange:
        def __init__(self, t):
            self.t_request = t       # first client byte of the exchange
            self.t_reply = None      # first reply byte forwarded to the client
            self.request = b""       # the first 256 KiB the client sent

    class Conn:
        def __init__(self, cid):
            self.id = cid
            self.exchanges = []
            self.awaiting_reply = False

    def __init__(self, target_port, port=None):
        import threading
        self.target_port = target_port
        self.port = port or free_port()
        self.delay_s = 0.0
        self.conns = []
        self.lock = threading.Lock()
        self._threading = threading
        self.sock = None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self._threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def reset(self):
        with self.lock:
            for c in self.conns:
                c.exchanges = []
                c.awaiting_reply = False

    def exchanges(self, containing=None):
        """[(conn id, Exchange)] recorded since reset(), optionally only those whose
        request bytes contain `containing`."""
        with self.lock:
            return [(c.id, e) for c in self.conns for e in c.exchanges
                    if containing is None or containing in e.request]

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = Proxy.Conn(len(self.conns))
                self.conns.append(conn)
            self._threading.Thread(target=self._pump, args=(conn, client, server, True),
                                   daemon=True).start()
            self._threading.Thread(target=self._pump, args=(conn, server, client, False),
                                   daemon=True).start()

    def _pump(self, conn, src, dst, from_client):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                now = time.monotonic()
                if from_client:
                    with self.lock:
                        if not conn.exchanges or not conn.awaiting_reply:
                            conn.exchanges.append(Proxy.Exchange(now))
                            conn.awaiting_reply = True
                        ex = conn.exchanges[-1]
                        if len(ex.request) < 262144:
                            ex.request += data[:262144 - len(ex.request)]
                else:
                    with self.lock:
                        ex = conn.exchanges[-1] if conn.exchanges else None
                    if ex is not None and self.delay_s > 0:
                        wait = ex.t_request + self.delay_s - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                    with self.lock:
                        if ex is not None and ex.t_reply is None:
                            ex.t_reply = time.monotonic()
                        conn.awaiting_reply = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class Sentinel(Server):
    """redis-sentinel on 127.0.0.1:port monitoring one master, with short timeouts so a
    failover takes a second or two rather than half a minute."""

    def __init__(self, master_port, master_name="mymaster", quorum=2, port=None,
                 down_after_ms=1000, failover_timeout_ms=4000, extra=""):
        self.port = port or free_port()
        self.dir = make_tmpdir("ustatus-sentinel-")
        self.master_port = master_port
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.extra = extra
        self.proc = None

    def start(self):
        conf = write_config(self.dir, f"""
port {self.port}
bind 127.0.0.1
dir {self.dir}
logfile {self.dir}/sentinel.log
sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} {self.quorum}
sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}
sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}
sentinel parallel-syncs {self.master_name} 1
{self.extra}
""", "sentinel.conf")
        self.proc = start_process([which("redis-sentinel"), conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def cli(self, *args):
        return redis_cli(self.port, *args)

    def master_addr(self):
        out = self.cli("SENTINEL", "get-master-addr-by-name", self.master_name).split()
        return (out[0], int(out[1])) if len(out) == 2 else None

    def log(self):
        return read_logs(self.dir, "sentinel.log")


class Cluster:
    """A Redis Cluster of `masters` masters with `replicas` replicas each, created with
    redis-cli --cluster create. With proxied=True every node announces the port of a
    Proxy in front of it, so CLUSTER SLOTS, MOVED and ASK send clients through the
    proxies and their round trips can be counted; the cluster bus stays direct."""

    def __init__(self, masters=3, replicas=1, proxied=False, node_timeout_ms=2000, args=()):
        self.args = list(args)
        self.n = masters * (1 + replicas)
        self.masters = masters
        self.replicas = replicas
        self.proxied = proxied
        self.node_timeout_ms = node_timeout_ms
        self.nodes = []      # Redis instances, in creation order
        self.proxies = {}    # real port -> Proxy

    def start(self):
        ports = []
        while len(ports) < self.n:
            p = free_port(20000, 45000)
            if p not in ports and all(abs(p - q) != 10000 for q in ports):
                ports.append(p)
        for port in ports:
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--cluster-require-full-coverage", "no",
                    "--repl-diskless-sync-delay", "0"] + self.args
            if self.proxied:
                proxy = Proxy(port).start()
                self.proxies[port] = proxy
                args += ["--cluster-announce-port", str(proxy.port),
                         "--cluster-announce-bus-port", str(port + 10000)]
            self.nodes.append(Redis(port, args).start())
        r = subprocess.run([which("redis-cli"), "--cluster", "create",
                            *[f"127.0.0.1:{p}" for p in ports],
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed: {r.stdout}{r.stderr}")
        self.wait_ok()
        return self

    def announced(self, node):
        """The port clients are sent to for this node."""
        return self.proxies[node.port].port if self.proxied else node.port

    def node_by_announced(self, port):
        for n in self.nodes:
            if self.announced(n) == port:
                return n
        raise KeyError(port)

    def wait_ok(self, timeout=30):
        """Until every node reports cluster_state:ok and agrees on the slot owners."""
        deadline = time.monotonic() + timeout
        while True:
            states = [n.cli("CLUSTER", "INFO") for n in self.nodes if n.proc]
            views = {self._slots_view(n) for n in self.nodes if n.proc}
            if all("cluster_state:ok" in s for s in states) and len(views) == 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ok after {timeout}s: {states}")
            time.sleep(0.1)

    @staticmethod
    def _slots_view(node):
        out = []
        for line in node.cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            if len(f) >= 8 and "master" in f[2] and "fail" not in f[2]:
                out.append((f[1].split("@")[0], tuple(sorted(f[8:]))))
        return tuple(sorted(out))

    def masters_now(self):
        """The Redis instances that are masters now, per the first live node."""
        node = next(n for n in self.nodes if n.proc)
        res = []
        for line in node.cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            if len(f) >= 8 and "master" in f[2] and "fail" not in f[2] and len(f) > 8:
                port = int(f[1].split("@")[0].rsplit(":", 1)[1])
                res.append(self.node_by_announced(port))
        return res

    def owner(self, slot):
        """The Redis instance serving `slot` now."""
        node = next(n for n in self.nodes if n.proc)
        for r in node.command("CLUSTER", "SLOTS"):
            if r[0] <= slot <= r[1]:
                return self.node_by_announced(r[2][1])
        raise KeyError(slot)

    def node_id(self, node):
        return node.cli("CLUSTER", "MYID")

    def stop(self):
        for n in self.nodes:
            n.stop()
        for p in self.proxies.values():
            p.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        for n in self.nodes:
            shutil.rmtree(n.dir, ignore_errors=True)


def fnv1a64(data):
    """64-bit FNV-1a, written from the FNV reference (offset basis and prime)."""
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def jump_hash(key, buckets):
    """Jump Consistent Hash (Lamping & Veach 2014), in the paper's double arithmetic
    (Python floats are IEEE doubles, like the C code's)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int(float(b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_index(user, shards):
    """The shard SPEC §3.2 assigns a user ID to."""
    return 0 if shards <= 1 else jump_hash(fnv1a64(user.encode()), shards)


def child_pids(pid):
    """PIDs of the live children of `pid` (e.g. the ustatus workers of a lighttpd)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


# ---- sanitizer reports: one check for every integration test module ----
#
# ustatus is built with -fsanitize=address,undefined in CI. A report goes to the stderr of
# the process, which is wherever the test sent it: a CGI run's captured stderr (checked by
# cgi() and run_bin()), or a log file (a web server's error log, the pool's log). Every
# fixture that starts ustatus registers those files with watch_log(); Server.stop() reads
# them once its processes have exited; tear_down_module() reads every one still there and
# fails the module on any report.

_watched_logs = []      # file paths or glob patterns
_reports_found = {}     # (path, line) -> None: every report read so far, in order

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_reports(text):
    """The AddressSanitizer / UBSan / LeakSanitizer report lines in a log, if any."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


def assert_no_sanitizer_reports(text, what):
    reports = sanitizer_reports(text)
    if reports:
        raise AssertionError(f"sanitizer reports from {what}:\n{text[-6000:]}")


def watch_log(*paths):
    """Registers files (glob patterns allowed) a ustatus process writes its stderr to, for
    tear_down_module()'s check."""
    for p in paths:
        if p not in _watched_logs:
            _watched_logs.append(p)


def sanitizer_env(directory, env=None):
    """`env` (default: this process's) with the sanitizers writing their reports to
    directory/sanitizer/report.<pid> (watched): for a ustatus whose stderr goes nowhere,
    such as spawn-fcgi's children (spawn-fcgi points their stderr at /dev/null). The
    directory is writable by anyone: the processes may run as another user."""
    e = dict(os.environ if env is None else env)
    logdir = os.path.join(directory, "sanitizer")
    os.makedirs(logdir, exist_ok=True)
    os.chmod(logdir, 0o1777)
    base = os.path.join(logdir, "report")
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        e[k] = ":".join(x for x in (e.get(k, ""), f"log_path={base}") if x)
    watch_log(base + ".*")
    return e


def scan_logs(*paths):
    """Reads the files (default: every watched one) and records their sanitizer reports;
    returns the new ones. A file not there (not written, or removed) reads empty."""
    import glob
    new = []
    for pattern in paths or list(_watched_logs):
        for path in sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") \
                else [pattern]:
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for line in sanitizer_reports(text):
                if (path, line) not in _reports_found:
                    _reports_found[(path, line)] = None
                    new.append(f"{path}: {line}")
    return new


def sanitizer_failures():
    """Every report recorded so far, after a last read of every watched log."""
    scan_logs()
    return [f"{path}: {line}" for path, line in _reports_found]


def tear_down_module(*things, dirs=()):
    """What every test module's tearDownModule does: stops `things` (fixtures with stop(),
    or processes) in order whatever fails, then everything else of ours still running
    (workers report leaks when they exit), then fails the module if any ustatus process
    wrote a sanitizer report to a watched log; finally removes `dirs`."""
    errors = []
    for t in things:
        try:
            if isinstance(t, subprocess.Popen):
                stop_process(t)
            elif t is not None:
                t.stop()
        except Exception as e:  # noqa: BLE001 - every fixture gets stopped
            errors.append(e)
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    for p in list(_live):
        stop_process(p)
    reports = sanitizer_failures()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    if reports:
        raise AssertionError("sanitizer reports:\n" + "\n".join(reports))
    if errors:
        raise errors[0]
