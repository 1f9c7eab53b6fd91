#!/usr/bin/env python3
"""Soak with faults (issue 12): mixed traffic through real deployments while, in turn, the
things that go wrong in production go wrong, then an account of what was lost.

Usage: soak.py SECONDS     (tests/soak/run builds the binary and calls this)

Three phases share SECONDS:
  pool      nginx + the ustatus pool, one Redis with AOF (appendfsync always):
            Redis killed -9 and restarted, Redis stopped (SIGSTOP) longer than io_timeout,
            a worker killed -9, the pool reloaded (SIGHUP)
  sentinel  lighttpd spawning ustatus (redis.wait_replicas = 1), a master and a replica
            under 3 sentinels: SENTINEL FAILOVER
  cluster   lighttpd spawning ustatus, a 3-master Redis Cluster: 100 slots moved with
            their keys under traffic

Traffic: THREADS clients, each owning its own users (so every client knows exactly what
its users must hold), sending update (with a state, clearing it, without one), online,
get, delete and batch, for 1 to 10 000 users per request. After each phase:
  - every write answered {"result":{}} is readable: a final get of every user, after
    the phase, must show at least what acknowledged writes put there, and so must every
    get during the run — except while a Sentinel failover is under way, when a process
    that has not moved to the new master yet may read from the old one (such stale
    reads are counted and printed; a write lost shows in the final read-back);
  - no reply is malformed, and every failure is the documented error 100 — except the
    requests a worker was serving when it was killed -9, which the web server answers
    502 itself: those are counted and may not exceed the requests in flight then;
  - the RSS of every process that lived through the phase grows by at most 10 % from
    the end of its warm-up to the end;
  - no file descriptor leak: at the end of the phase, every such process holds no more
    descriptors than after its warm-up (one more is allowed where a fault moved it to a
    new node).
Exit status 0 when every check holds; the figures are printed either way.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402
import servers as s  # noqa: E402

KEY = "soak-key-7c2e9a41d5b0f3e8a6c4d2b1e9f07a35"
AUTH = {"X-API-Key": KEY, "Content-Type": "application/json"}
THREADS = 4
IO_TIMEOUT_S = 1.0
# a long soak repeats its faults every CYCLE_S seconds (SOAK_CYCLE_S: more often, to hunt)
CYCLE_S = float(os.environ.get("SOAK_CYCLE_S", "45"))
WARM_SHARE = 0.35  # of the first cycle: the faults of a cycle happen before 0.3
ERROR_100 = {"code": 100, "message": "internal server error"}


def log(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


# ---- what each user must hold ----

class Expect:
    """What acknowledged writes put in a user's status. `None` fields are unknown (a
    request failed after it may have reached Redis): anything is accepted there."""
    __slots__ = ("active", "online", "state", "deleted", "known", "acked_at", "history")

    def __init__(self, acked_at=0.0):
        self.acked_at = acked_at  # monotonic time of the last acknowledged change
        self.active = 0        # at least this (Unix seconds), 0 = nothing required
        self.online = 0
        self.state = None      # str, "" = no state, None = unknown
        self.deleted = True    # no status at all (never written, or deleted)
        self.known = True      # False after a failed request: only monotonic checks
        self.history = []      # the last few requests that touched the user, for reports

    def note(self, what):
        self.history = (self.history + [f"{time.monotonic():.2f} {what}"])[-6:]

    def wrote(self, fields, state, t0):
        self.acked_at = time.monotonic()
        if self.deleted:
            self.deleted = False
            self.state = "" if self.known else None
        if "active" in fields:
            self.active = max(self.active, t0)
        if "online" in fields:
            self.online = max(self.online, t0)
        if state is not None:
            self.state = state

    def failed(self, delete=False):
        # The command may or may not have happened. A write: keep the lower bounds
        # (timestamps never go back), forget the state and whether the status exists. A
        # delete: the status may be gone, so nothing is required any more.
        self.known = False
        self.state = None
        if self.deleted or delete:
            self.deleted = False
            self.active = self.online = 0

    def check(self, st):
        """A problem with status st (a get_user_status element), or None."""
        if self.known and self.deleted:
            if set(st) != {"user"}:
                return f"deleted, but holds {st}"
            return None
        if self.deleted:
            return None
        for f in ("active", "online"):
            need = getattr(self, f)
            if need and st.get(f, 0) < need:
                return f"{f} {st.get(f)} below the acknowledged {need}"
        if self.state is not None and st.get("state", "") != self.state:
            return f"state {st.get('state')!r}, acknowledged {self.state!r}"
        return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.ok = 0
        self.error100 = 0
        self.lost_in_flight = 0   # 502/504 from the web server: a killed worker's request
        self.problems = []        # malformed replies, wrong codes, lost writes
        self.users = 0
        # While a Sentinel failover is under way, a ustatus process that has not moved
        # to the new master yet may still read from the old one: a read during such a
        # window may show less than was acknowledged (a stale read, counted). Nothing
        # excuses a lost write: the final read-back of every user, after the phase, is
        # strict.
        self.stale_windows = []   # (start, end) monotonic
        self.t0 = time.monotonic()
        self.errors_by_second = {}
        self.stale_in_window = 0

    def in_stale_window(self, t):
        return any(a <= t <= b for a, b in self.stale_windows)

    def problem(self, what):
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(what)
            else:
                self.problems[-1] = f"... and more ({what})"


# ---- traffic ----

class Client(threading.Thread):
    def __init__(self, idx, port, stats, stop, users_n):
        super().__init__(daemon=True)
        self.idx = idx
        self.port = port
        self.stats = stats
        self.stop_ev = stop
        self.rng = random.Random(idx * 7919 + int(time.time()))
        self.users = [f"soak-{idx}-{i}" for i in range(users_n)]
        self.expect = {u: Expect() for u in self.users}

    def pick_users(self):
        r = self.rng.random()
        n = (self.rng.randint(1, 3) if r < 0.5 else self.rng.randint(4, 100) if r < 0.9
             else self.rng.randint(101, 1000) if r < 0.99 else 10000)
        n = min(n, len(self.users))
        return self.rng.sample(self.users, n)

    def call(self, path, body):
        with self.stats.lock:
            self.stats.requests += 1
        try:
            r = h.http(self.port, "POST", path, json.dumps(body), AUTH, timeout=30)
        except OSError as e:
            self.stats.problem(f"{path}: no answer: {e}")
            return None
        if r.status in (502, 504):
            with self.stats.lock:
                self.stats.lost_in_flight += 1
            return None
        try:
            doc = json.loads(r.body)
        except ValueError:
            self.stats.problem(f"{path}: HTTP {r.status}, not JSON: {r.body[:120]!r}")
            return None
        if r.status != 200 or not isinstance(doc, dict):
            self.stats.problem(f"{path}: HTTP {r.status}: {r.body[:120]!r}")
            return None
        return doc

    def settle(self, doc, what):
        """'ok', 'error100' or 'bad' for one command's reply object."""
        if doc is None:
            return "lost"
        if "error" in doc:
            err = doc["error"]
            if {k: err.get(k) for k in ("code", "message")} == ERROR_100:
                with self.stats.lock:
                    self.stats.error100 += 1
                    sec = int(time.monotonic() - self.stats.t0)
                    self.stats.errors_by_second[sec] = self.stats.errors_by_second.get(sec, 0) + 1
                return "error100"
            self.stats.problem(f"{what}: unexpected error {err}")
            return "bad"
        return "ok"

    def one_write(self, method, users, state=None):
        body = {"users": users}
        if state is not None:
            body["state"] = state
        t0 = int(time.time())
        doc = self.call(f"/api/{method}", body)
        self.account(method, users, state, t0, doc and self.result_of(doc, method))

    @staticmethod
    def result_of(doc, method):
        if "error" in doc:
            return doc
        return {"result": doc.get("result")}

    def account(self, method, users, state, t0, reply):
        outcome = self.settle(reply, method)
        if outcome == "ok" and reply.get("result") != ({} if method != "get_user_status"
                                                       else reply.get("result")):
            self.stats.problem(f"{method}: result {reply!r}")
            outcome = "bad"
        for u in users:
            e = self.expect[u]
            e.note(f"{method} {state!r} t0={t0}: {outcome}")
            if outcome != "ok":
                e.failed(delete=method == "delete_user_status")
            elif method == "delete_user_status":
                self.expect[u] = Expect(time.monotonic())
                self.expect[u].history = e.history
            elif method == "update_user_status":
                e.wrote(("active",), state, t0)
            elif method == "update_user_online":
                e.wrote(("online",), None, t0)
        if outcome == "ok":
            with self.stats.lock:
                self.stats.ok += 1
                self.stats.users += len(users)

    def get(self, users, final=False):
        doc = self.call("/api/get_user_status", {"users": users})
        self.check_get(users, doc, final=final)

    def check_get(self, users, doc, what="get_user_status", final=False):
        outcome = self.settle(doc, what)
        if outcome != "ok":
            return
        sts = (doc.get("result") or doc).get("statuses")
        if not isinstance(sts, list) or len(sts) != len(users):
            self.stats.problem(f"{what}: {len(users)} users asked, answer {str(doc)[:160]}")
            return
        for u, st in zip(users, sts):
            if st.get("user") != u:
                self.stats.problem(f"{what}: order: {st.get('user')!r} for {u!r}")
                return
            e = self.expect[u]
            why = e.check(st)
            if why and not final and self.stats.in_stale_window(time.monotonic()):
                with self.stats.lock:
                    self.stats.stale_in_window += 1
            elif why:
                self.stats.problem(f"{'final read-back' if final else what} {u}: {why}; "
                                   f"history: {' | '.join(e.history)}")
        with self.stats.lock:
            self.stats.ok += 1
            self.stats.users += len(users)

    def batch(self):
        # Disjoint groups, so the order of the commands inside Redis cannot matter.
        users = self.pick_users()
        k = max(1, len(users) // 4)
        groups = [users[i:i + k] for i in range(0, len(users), k)][:4]
        methods = ["update_user_status", "update_user_online", "delete_user_status",
                   "get_user_status"]
        self.rng.shuffle(methods)
        cmds = [{m: {"users": g}} for m, g in zip(methods, groups)]
        t0 = int(time.time())
        doc = self.call("/api/batch", {"commands": cmds})
        replies = doc.get("replies") if doc else None
        if doc is not None and (not isinstance(replies, list) or len(replies) != len(cmds)):
            self.stats.problem(f"batch: answer {str(doc)[:160]}")
            replies = None
        for i, (m, g) in enumerate(zip(methods, groups)):
            rep = replies[i] if replies else None
            if m == "get_user_status":
                if rep is not None and "error" not in rep:
                    self.check_get(g, {"result": rep.get(m)}, "batch get")
                else:
                    self.settle(rep, "batch get")
                continue
            if rep is not None and "error" not in rep:
                rep = {"result": rep.get(m)}
            self.account(m, g, None, t0, rep)

    def run(self):
        while not self.stop_ev.is_set():
            r = self.rng.random()
            users = self.pick_users()
            if r < 0.25:
                self.one_write("update_user_status", users)
            elif r < 0.40:
                self.one_write("update_user_status", users, self.rng.choice(["away", "busy", ""]))
            elif r < 0.55:
                self.one_write("update_user_online", users)
            elif r < 0.80:
                self.get(users)
            elif r < 0.90:
                self.one_write("delete_user_status", users[:max(1, len(users) // 10)])
            else:
                self.batch()

    def verify_all(self):
        for i in range(0, len(self.users), 1000):
            self.get(self.users[i:i + 1000], final=True)


# ---- processes: RSS and descriptors ----

def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def unix_socket_paths():
    """inode -> path of every unix socket on the machine (/proc/net/unix)."""
    paths = {}
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8:
                    paths[parts[6]] = parts[7]
    except OSError:
        pass
    return paths


def proc_fds(pid, fcgi_socket):
    """Descriptors of pid, less the FastCGI connections it has accepted (a web server may
    keep those open as long as it likes; they are not ours to count as leaks)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    paths = unix_socket_paths()
    n = 0
    for fd in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and fcgi_socket:
            if paths.get(target[8:-1], "").startswith(fcgi_socket) and fd != "0":
                continue
        n += 1
    return n


class Watch:
    """Samples RSS and descriptors of the ustatus processes pids_fn() names (they appear
    and go): the first sample of a process after warm_after, and the last one before the
    watch is frozen."""

    def __init__(self, pids_fn, fcgi_socket):
        self.pids_fn = pids_fn
        self.fcgi_socket = fcgi_socket
        self.first = {}   # pid -> (rss, fds) after warm-up
        self.last = {}
        self.warm_after = None   # monotonic time; None: set by run_traffic
        self.frozen = False

    def warm_again(self, seconds):
        """A fault replaced processes: new ones are measured after their own warm-up."""
        self.warm_after = time.monotonic() + seconds

    def sample(self, warm):
        if self.frozen:
            return
        warm = warm and time.monotonic() >= (self.warm_after or 0)
        for pid in self.pids_fn():
            rss, fds = proc_rss_kib(pid), proc_fds(pid, self.fcgi_socket)
            if rss is None or fds is None:
                continue
            if warm and pid not in self.first:
                self.first[pid] = (rss, fds)
            self.last[pid] = (rss, fds)

    def report(self, stats, name, fd_slack):
        alive = set(self.pids_fn())
        lived = [p for p in self.first if p in self.last and (self.frozen or p in alive)]
        worst_rss, worst_fd = 0.0, 0
        for pid in lived:
            (r0, f0), (r1, f1) = self.first[pid], self.last[pid]
            growth = (r1 - r0) / r0 if r0 else 0.0
            worst_rss = max(worst_rss, growth)
            worst_fd = max(worst_fd, f1 - f0)
            if growth > 0.10:
                stats.problem(f"{name}: pid {pid} RSS {r0} -> {r1} KiB (+{growth:.0%})")
            if f1 - f0 > fd_slack:
                stats.problem(f"{name}: pid {pid} descriptors {f0} -> {f1}")
        if not lived:
            stats.problem(f"{name}: no ustatus process lived through the phase")
        return len(lived), worst_rss, worst_fd


def ustatus_pids(root_pid):
    out = []
    for pid in h.child_pids(root_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ustatus-fcgi" in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def prime(port, rounds=8):
    """The largest requests the traffic makes, a few times, before anything is measured:
    a process's memory grows to its largest request once, and that is not a leak."""
    users = [f"soak-prime-{i}" for i in range(10000)]
    k = len(users) // 4
    batch = {"commands": [{m: {"users": users[i * k:(i + 1) * k]}} for i, m in enumerate(
        ["update_user_status", "update_user_online", "get_user_status", "delete_user_status"])]}
    for _ in range(rounds):
        for path, body in (("update_user_status", {"users": users, "state": "busy"}),
                           ("update_user_online", {"users": users}),
                           ("get_user_status", {"users": users}),
                           ("batch", batch),
                           ("delete_user_status", {"users": users})):
            try:
                h.http(port, "POST", f"/api/{path}", json.dumps(body), AUTH, timeout=30)
            except OSError:
                pass


# ---- phases ----

def config(tmp, redis_block, name):
    return h.write_config(tmp, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  redis {{
{redis_block}
    prefix = "soak"
    connect_timeout = "300ms"
    io_timeout = "{int(IO_TIMEOUT_S * 1000)}ms"
  }}
}}
log {{ level = "warn" }}
""", name)


def run_traffic(name, port, seconds, faults, watch, users_per_client, fd_slack,
                stale_windows=None):
    """Traffic for `seconds` while faults run: [(at, label, fn, repeat)]. A fault with
    repeat=False runs once, at `at` × the phase; one with repeat=True runs at `at` × the
    cycle in every cycle of CYCLE_S seconds (the phase is one cycle when shorter), so a
    long soak goes through each fault again and again. RSS and descriptors are measured
    from the warm-up (WARM_SHARE of the first cycle, after its faults) to the end."""
    prime(port)
    stats = Stats()
    if stale_windows is not None:
        stats.stale_windows = stale_windows
    stop = threading.Event()
    clients = [Client(i, port, stats, stop, users_per_client) for i in range(THREADS)]
    t_start = time.monotonic()
    for c in clients:
        c.start()
    cycle = min(seconds, CYCLE_S)
    warm_at = t_start + max(2.0, cycle * WARM_SHARE)
    if watch.warm_after is None:
        watch.warm_after = warm_at
    pending = []
    for at, label, fn, repeat in faults:
        if not repeat:
            pending.append((at * seconds, label, fn))
            continue
        k = 0
        while k * cycle + at * cycle < seconds * 0.95 or k == 0:
            pending.append((k * cycle + at * cycle, label, fn))
            k += 1
    pending.sort(key=lambda f: f[0])
    done = []
    while time.monotonic() - t_start < seconds or pending:
        now = time.monotonic()
        watch.sample(warm=now >= warm_at)
        if pending and now - t_start >= pending[0][0]:
            _, label, fn = pending.pop(0)
            log(f"{name}: {label} at {now - t_start:.1f}s")
            fn()
            done.append(label)
        time.sleep(0.2)
    stop.set()
    for c in clients:
        c.join(timeout=60)
    # After the last fault the deployment must be whole again: every user is read back.
    for c in clients:
        c.verify_all()
    watch.sample(warm=True)
    lived, rss, fds = watch.report(stats, name, fd_slack)
    for f in pending:
        stats.problem(f"{name}: fault {f[1]} never ran")
    return stats, {"faults": done, "processes": lived, "rss_growth": rss, "fd_growth": fds}


def phase_pool(tmp, seconds):
    redis_dir = h.make_tmpdir("ustatus-soak-redis-")
    args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", redis_dir]
    redis = h.Redis(args=args).start()
    conf = config(tmp, f'    address = "127.0.0.1:{redis.port}"', "pool.conf")
    # nginx's workers run as www-data: the socket is theirs to open.
    owner = ["--socket-owner", "root:www-data", "--socket-mode", "0660"] if s.AS_ROOT else []
    pool = s.Pool(conf, workers=2, args=owner).start()
    nginx = s.Nginx(pool.address).start()
    in_flight_kills = []

    def restart_redis():
        nonlocal redis
        port = redis.port
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait()
        time.sleep(0.3)
        redis = h.Redis(port, args).start()

    def stop_redis():
        redis.proc.send_signal(signal.SIGSTOP)
        time.sleep(IO_TIMEOUT_S + 0.5)
        redis.proc.send_signal(signal.SIGCONT)

    watch = Watch(pool.workers, pool.address)
    warm = max(2.0, min(seconds, CYCLE_S) * 0.15)

    def kill_worker():
        w = pool.workers()
        os.kill(w[0], signal.SIGKILL)
        in_flight_kills.append(w[0])
        s.wait_until(lambda: len(pool.workers()) == 2, 10, "a new worker")
        prime(nginx.port, rounds=3)
        watch.warm_again(warm)

    def reload_pool():
        # RSS and descriptors are measured on the workers that lived through the Redis
        # faults, up to here: the reload replaces them all.
        watch.sample(warm=True)
        watch.frozen = True
        old = set(pool.workers())
        pool.proc.send_signal(signal.SIGHUP)
        # the replaced workers drain their kept connections (30 s at most, worker.c)
        s.wait_until(lambda: not (set(pool.workers()) & old) and len(pool.workers()) == 2,
                     40, "the reload")

    try:
        stats, info = run_traffic("pool", nginx.port, seconds, [
            (0.02, "a worker killed -9", kill_worker, False),
            (0.05, "Redis killed -9 and restarted (AOF, appendfsync always)", restart_redis,
             True),
            (0.20, f"Redis stopped for {IO_TIMEOUT_S + 0.5:.1f} s (SIGSTOP)", stop_redis, True),
            (0.90, "the pool reloaded (SIGHUP)", reload_pool, False),
        ], watch, 3000, 0)
        # Every request in flight on a killed worker may be lost, and no other.
        if stats.lost_in_flight > THREADS * len(in_flight_kills):
            stats.problem(f"pool: {stats.lost_in_flight} requests lost, "
                          f"{len(in_flight_kills)} workers killed")
        return stats, info
    finally:
        nginx.stop()
        pool.stop()
        redis.stop()


def phase_sentinel(tmp, seconds):
    # Replication is asynchronous: a master acknowledges a write before its replicas have
    # it, and after a SENTINEL FAILOVER the old master accepts writes until the sentinels
    # demote it, which its resync then wipes. ustatus's redis.wait_replicas = 1 makes it
    # acknowledge a write only once the replica holds it (WAIT, in the same pipeline),
    # and resend it to the new master when the sentinels name one. As many as there are
    # replicas (README): with two replicas and WAIT 1, the one that confirmed may not be
    # the one promoted, or may still follow the old master for a moment (a soak saw
    # those losses). The price, here: writes fail (error 100) after each failover until
    # the sentinels have made the old master a replica of the new one.
    # min-replicas-to-write as Redis's documentation recommends: a master that lost its
    # replica refuses writes at once.
    repl = ["--repl-diskless-sync-delay", "0", "--min-replicas-to-write", "1",
            "--min-replicas-max-lag", "10"]
    master = h.Redis(args=repl).start()
    replicas = [h.Redis(args=["--replicaof", "127.0.0.1", str(master.port)] + repl).start()]
    sentinels = [h.Sentinel(master.port).start() for _ in range(3)]
    for r in replicas:
        s.wait_until(lambda: "master_link_status:up" in r.cli("INFO", "replication"), 20,
                     "the replicas")
    group = ",".join(f"127.0.0.1:{x.port}" for x in sentinels)
    conf = config(tmp, f'    sentinel_address = "{group}"\n    sentinel_master_name = "mymaster"\n'
                       f'    wait_replicas = {os.environ.get("SOAK_WAIT_REPLICAS", "1")}\n'
                       f'    wait_timeout = "300ms"', "sentinel.conf")
    web = h.Lighttpd(conf, procs=2).start()

    windows = []
    nodes = {n.port: n for n in [master] + replicas}

    def failover():
        old = sentinels[0].master_addr()
        # Reads until every ustatus process has moved to the new master may come from the
        # old one, and be stale; writes may not be lost (the final read-back is strict).
        windows.append([time.monotonic() - 0.5, float("inf")])
        # Refused while the sentinels still settle the previous one (INPROG, or
        # NOGOODSLAVE until they see the demoted master as a healthy replica), and
        # aborted when the promotion is not confirmed within failover-timeout on a busy
        # machine: asked again.
        def switched():
            if sentinels[0].cli("SENTINEL", "FAILOVER", "mymaster") != "OK":
                return False
            try:
                s.wait_until(lambda: sentinels[0].master_addr() not in (None, old), 15,
                             "the failover")
                return True
            except AssertionError:
                log("sentinel: the failover did not happen; asking again")
                return False
        s.wait_until(switched, 60, "a SENTINEL FAILOVER that happens")
        try:
            s.wait_until(lambda: nodes[old[1]].cli("ROLE").startswith("slave"), 30,
                         "the old master to become a replica")
        except AssertionError:
            # The sentinels' business, not ustatus's: logged, and the soak goes on (no
            # process of ours may use a master the sentinels no longer name).
            log("sentinel: the old master is not a replica 30 s after the failover")
        windows[-1][1] = time.monotonic() + 3.0

    watch = Watch(lambda: ustatus_pids(web.proc.pid), os.path.join(web.dir, "ustatus.sock"))
    try:
        return run_traffic("sentinel", web.port, seconds,
                           [(0.15, "Sentinel failover", failover, True)], watch, 3000, 1,
                           stale_windows=windows)
    finally:
        web.stop()
        for x in sentinels:
            x.stop()
        for r in replicas:
            r.stop()
        master.stop()


def phase_cluster(tmp, seconds):
    cluster = h.Cluster(masters=3, replicas=0).start()
    seeds = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    conf = config(tmp, f'    cluster_address = "{seeds}"', "cluster.conf")
    web = h.Lighttpd(conf, procs=2).start()

    moves = []

    def move_slots():
        # Around the masters, so a long soak moves slots back and forth.
        k = len(moves)
        moves.append(k)
        src, dst = cluster.nodes[k % 3], cluster.nodes[(k + 1) % 3]
        r = subprocess.run([h.which("redis-cli"), "--cluster", "reshard",
                            f"127.0.0.1:{src.port}", "--cluster-from", cluster.node_id(src),
                            "--cluster-to", cluster.node_id(dst), "--cluster-slots", "100",
                            "--cluster-yes"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"reshard: {r.stdout[-500:]}{r.stderr[-500:]}")
        cluster.wait_ok()

    watch = Watch(lambda: ustatus_pids(web.proc.pid), os.path.join(web.dir, "ustatus.sock"))
    try:
        return run_traffic("cluster", web.port, seconds,
                           [(0.15, "100 slots moved with their keys", move_slots, True)], watch,
                           3000, 0)
    finally:
        web.stop()
        cluster.stop()


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    tmp = h.make_tmpdir("ustatus-soak-")
    phases = [("pool", phase_pool, 0.4), ("sentinel", phase_sentinel, 0.3),
              ("cluster", phase_cluster, 0.3)]
    only = os.environ.get("SOAK_PHASES")  # e.g. "pool,cluster": for working on one phase
    if only:
        phases = [p for p in phases if p[0] in only.split(",")]
    failed = False
    for name, fn, share in phases:
        t0 = time.monotonic()
        stats, info = fn(tmp, seconds * share)
        took = time.monotonic() - t0
        print(f"{name}: {stats.requests} requests, {stats.ok} answered, {stats.users} users; "
              f"error 100: {stats.error100}; lost with a killed worker: {stats.lost_in_flight}; "
              f"stale reads during a failover: {stats.stale_in_window}; "
              f"faults: {'; '.join(info['faults'])}; processes watched: {info['processes']}, "
              f"worst RSS growth {info['rss_growth']:+.1%}, worst descriptor growth "
              f"{info['fd_growth']:+d}; {took:.0f} s")
        if stats.errors_by_second:
            print("  error 100 by second of the phase: " + ", ".join(
                f"{k}s:{v}" for k, v in sorted(stats.errors_by_second.items())))
        for p in stats.problems:
            print(f"  problem: {p}")
        failed |= bool(stats.problems)
    h.tear_down_module(dirs=[tmp])
    print("soak: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
