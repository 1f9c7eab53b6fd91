"""The shipped systemd units (deploy/systemd/ustatus.socket and ustatus.service.in, or the
installed copies), run the way systemd would run them, on a machine where systemd is not
PID 1: systemd-socket-activate binds the socket of the .socket unit and execs the
service's ExecStart with LISTEN_FDS=1 / LISTEN_PID; setpriv stands for User=, Group=
and SupplementaryGroups=; a datagram socket of ours is NOTIFY_SOCKET and records what
the service reports (READY=1, RELOADING=1, STOPPING=1); ExecReload lines run as systemd
runs them, $MAINPID substituted.

Used by test_deploy.py and test_webservers.py (the tree's units) and by
deploy/debian/check-deb (the units of the installed package)."""
import grp
import os
import pwd
import shlex
import socket
import subprocess
import threading
import time

import harness as h


def parse_unit(path, subst=None):
    """{key: [values...]} of a unit file (every section; a key given twice keeps both
    values in order, an empty assignment clears the list as systemd does). `subst`
    maps strings of the file to others first (paths of the test)."""
    with open(path) as f:
        text = f.read()
    for old, new in (subst or {}).items():
        text = text.replace(old, new)
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if value == "":
            out[key] = []
        else:
            out.setdefault(key, []).append(value)
    return out


def exec_argv(value):
    """An Exec*= value as an argument list (the prefixes '-', '@', '+' are not used by
    the shipped units, and are refused here so that nobody adds one unnoticed)."""
    if value[:1] in "-@+!:":
        raise AssertionError(f"unexpected Exec prefix in {value!r}")
    return shlex.split(value)


class NotifyListener:
    """A NOTIFY_SOCKET: every datagram received, in order."""

    def __init__(self, path):
        self.path = path
        self.messages = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)  # the service runs as another user
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode(errors="replace"))

    def lines(self):
        """Every KEY=VALUE line received so far, in order."""
        with self.lock:
            return [line for m in self.messages for line in m.split("\n") if line]

    def wait_for(self, line, count=1, timeout=20):
        """Until `line` (e.g. READY=1) was received `count` times."""
        return wait(lambda: self.lines().count(line) >= count, timeout,
                     f"{line} x{count} on NOTIFY_SOCKET")

    def close(self):
        self.running = False
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SocketActivatedService:
    """ustatus.service started by ustatus.socket, as systemd would.

    service, socket: unit file paths; subst: replacements applied to both files (the
    binary, the configuration, /run/ustatus → a test directory); user/group/groups: who
    it runs as when we are root (None: the unit's User=, Group=, SupplementaryGroups=);
    env: the environment a drop-in's Environment= would add; extra_args: appended to
    ExecStart (e.g. --workers 2 on a small machine)."""

    def __init__(self, service, socket_unit, run_dir, subst=None, user=None, group=None,
                 groups=None, env=None, extra_args=(), log_path=None):
        self.svc = parse_unit(service, subst)
        self.sock_unit = parse_unit(socket_unit, subst)
        self.run_dir = run_dir
        self.subst = subst or {}
        self.user = user or self.svc.get("User", [None])[0]
        self.group = group or self.svc.get("Group", [None])[0]
        if groups is None:
            groups = " ".join(self.svc.get("SupplementaryGroups", [])).split()
        self.groups = groups
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.listen = self.sock_unit["ListenStream"][-1]
        self.log_path = log_path or os.path.join(run_dir, "service.log")
        self.notify = None
        self.proc = None

    @property
    def address(self):
        if self.listen.startswith("/"):
            return self.listen
        host, _, port = self.listen.rpartition(":")
        return (host, int(port))

    def argv(self):
        argv = [h.which("systemd-socket-activate"), "-l", self.listen]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "NOTIFY_SOCKET": self.notify.path}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for value in self.svc.get("Environment", []):
            for assignment in shlex.split(value):
                k, _, v = assignment.partition("=")
                env[k] = v
        env.update(self.env)
        for k, v in env.items():
            argv += ["-E", f"{k}={v}"]
        if os.geteuid() == 0 and self.user:
            # setpriv execs in place: LISTEN_PID (our child's pid) stays right.
            argv += [h.which("setpriv"), f"--reuid={self.user}",
                     f"--regid={self.group or self.user}"]
            argv += [f"--groups={','.join(self.groups)}"] if self.groups else ["--clear-groups"]
            argv += ["--"]
        return argv + exec_argv(self.svc["ExecStart"][0]) + self.extra_args

    def _apply_socket_settings(self):
        """SocketUser=, SocketGroup=, SocketMode= of the .socket unit, as systemd applies
        them to the file it created."""
        if not isinstance(self.address, str):
            return
        mode = self.sock_unit.get("SocketMode", ["0666"])[0]
        os.chmod(self.address, int(mode, 8))
        if os.geteuid() == 0:
            uid = pwd.getpwnam(self.sock_unit.get("SocketUser", ["root"])[0]).pw_uid
            gid = grp.getgrnam(self.sock_unit.get("SocketGroup", ["root"])[0]).gr_gid
            os.chown(self.address, uid, gid)

    def start(self, trigger=True):
        """Binds the socket and waits for the first connection (socket activation);
        with trigger, makes that connection and waits for READY=1."""
        if isinstance(self.address, str):
            os.makedirs(os.path.dirname(self.address), exist_ok=True)
        self.notify = NotifyListener(os.path.join(self.run_dir, f"notify-{os.getpid()}.sock"))
        h.watch_log(self.log_path)
        self.log = open(self.log_path, "ab")
        self.proc = h.start_process(self.argv(), stdout=subprocess.DEVNULL, stderr=self.log,
                                    stdin=subprocess.DEVNULL)
        try:
            if isinstance(self.address, str):
                wait(lambda: os.path.exists(self.address) or self.proc.poll() is not None, 10,
                     "the socket of the .socket unit")
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-socket-activate exited: {self.log_text()}")
            # before the first connection: systemd applies them when it creates the file
            self._apply_socket_settings()
            if trigger:
                self.trigger()
                self.notify.wait_for("READY=1")
        except BaseException:
            self.stop()  # a failed start leaves nothing running (setUpClass has no teardown)
            raise
        return self

    def trigger(self):
        """The first connection, which makes systemd start the service (retried until
        systemd-socket-activate listens: its file exists from bind(), before listen())."""
        if isinstance(self.address, str):
            h.wait_unix(self.address, proc=self.proc)
        else:
            h.wait_port(self.address[1], self.address[0], proc=self.proc)

    def request(self, path, body=b"", headers=None, method="POST"):
        import servers as s
        if isinstance(body, (dict, list)):
            import json
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return s.fcgi_request(self.address, s.api_params(path, method, body, headers), body)

    def reload(self):
        """The ExecReload= lines in order, as systemd runs them (as the service's user,
        $MAINPID substituted), stopping at the first that fails: (ok, output)."""
        out = ""
        for value in self.svc.get("ExecReload", []):
            argv = [a.replace("$MAINPID", str(self.proc.pid)) for a in exec_argv(value)]
            if os.geteuid() == 0 and self.user:
                argv = [h.which("setpriv"), f"--reuid={self.user}",
                        f"--regid={self.group or self.user}"] + \
                       ([f"--groups={','.join(self.groups)}"] if self.groups else
                        ["--clear-groups"]) + ["--"] + argv
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               env=h.clean_env(self.env))
            out += r.stdout + r.stderr
            h.assert_no_sanitizer_reports(r.stderr, " ".join(argv))
            if r.returncode != 0:
                return False, r.returncode, out
        return True, 0, out

    def log_text(self):
        return h.read_text(self.log_path)

    def stop(self, timeout=20):
        """What systemctl stop does with KillMode=mixed: SIGTERM to the main process
        only; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                h.stop_process(self.proc)
        h.stop_process(self.proc)  # the process group, if anything is left
        rc = self.proc.returncode
        self.log.close()
        h.scan_logs(self.log_path)
        if self.notify:
            self.notify.close()
        return rc
