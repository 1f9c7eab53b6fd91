"""What ships besides the program (issue 11): the license and the Debian copyright, the
install layout of `make install` (the daemon in sbin, the man page, the examples with the
installed paths, the systemd units), the systemd units run as systemd would (socket
activation, the notify protocol, a reload that fails visibly on a bad file, the hardening
score), the man page, and the logrotate file against a running pool.

The Debian package itself is built, linted, installed, used and purged by
deploy/debian/build-deb and deploy/debian/check-deb (run by .ci/run).
"""
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
import units  # noqa: E402

SRC = h.SRCDIR
BUILD = os.environ.get("USTATUS_BUILDDIR") or os.path.dirname(h.BIN)
DEPLOY = os.path.join(SRC, "deploy")
KEY = "deploy-key-0123456789abcdef0123456789"
AS_ROOT = os.geteuid() == 0


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def make_vars(*names):
    """The values of the build's Makefile variables (as make expands them)."""
    prog = "print:\n\t@echo " + " ".join(f"'$({n})'" for n in names) + "\n"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-s", "-C", BUILD, "-f", "Makefile", "-f", "-", "print"],
                       input=prog, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    values = r.stdout.strip().split(" ")
    assert len(values) == len(names), r.stdout
    return dict(zip(names, values))


def run_make(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-s", "-C", BUILD, *args], capture_output=True, text=True,
                       env=env, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"make {' '.join(args)}: {r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def setUpModule():
    global REDIS, TMP
    REDIS = h.Redis().start()
    TMP = h.make_tmpdir("ustatus-deploy-")
    os.chmod(TMP, 0o755)


def tearDownModule():
    h.tear_down_module(REDIS, dirs=[REDIS.dir, TMP])


class Legal(unittest.TestCase):
    def test_license_is_mit(self):
        text = read(SRC, "LICENSE")
        self.assertTrue(text.startswith("MIT License\n"), text[:40])
        self.assertIn("Copyright (c) 2026 the ustatus authors\n", text)
        self.assertIn('THE SOFTWARE IS PROVIDED "AS IS"', text)

    def test_debian_copyright_is_dep5_with_the_same_license(self):
        text = read(DEPLOY, "debian", "copyright")
        self.assertTrue(text.startswith(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"))
        self.assertRegex(text, r"(?m)^Files: \*\nCopyright: 2026 the ustatus authors\n"
                               r"License: Expat$")
        # The stand-alone License paragraph holds the text of LICENSE, in DEP-5 form.
        body = text.split("\nLicense: Expat\n", 2)[2]
        dep5 = "\n".join("" if l == " ." else l[1:] for l in body.rstrip("\n").split("\n"))
        lic = read(SRC, "LICENSE")
        self.assertIn(dep5.strip(), lic)
        self.assertTrue(lic.strip().endswith(dep5.strip()))

    def test_versions_and_urls_agree(self):
        ac = read(SRC, "configure.ac")
        m = re.search(r"AC_INIT\(\[ustatus\], \[([^]]+)\], \[([^]]+)\], \[ustatus\],\s*\[([^]]+)\]\)",
                      ac)
        self.assertIsNotNone(m, "AC_INIT with a version, a bug-report URL and a home page")
        version, bugs, home = m.groups()
        changelog = read(DEPLOY, "debian", "changelog")
        self.assertTrue(changelog.startswith(f"ustatus ({version}) "), changelog[:40])
        control = read(DEPLOY, "debian", "control")
        self.assertIn(f"\nHomepage: {home}\n", control)
        self.assertTrue(bugs.startswith(home + "/"), (bugs, home))
        r = h.run_bin("--version")
        self.assertIn(version, r.stdout + r.stderr)


class InstallLayout(unittest.TestCase):
    """make install DESTDIR=... of the build under test, then make uninstall."""

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(TMP, "destdir")
        cls.v = make_vars("prefix", "sbindir", "bindir", "sysconfdir", "docdir", "mandir",
                          "systemdsystemunitdir")
        run_make("install", f"DESTDIR={cls.dest}")

    def path(self, d, *rest):
        return os.path.join(self.dest + self.v[d], *rest)

    def test_program_is_a_daemon_in_sbin(self):
        self.assertTrue(os.access(self.path("sbindir", "ustatus-fcgi"), os.X_OK))
        self.assertFalse(os.path.exists(self.path("bindir", "ustatus-fcgi")))

    def test_default_configuration_follows_sysconfdir(self):
        r = h.run_bin("--help")
        self.assertIn(f"(default {self.v['sysconfdir']}/ustatus/ustatus.conf)", r.stdout)

    def test_man_page(self):
        page = self.path("mandir", "man8", "ustatus-fcgi.8")
        text = read(page)
        self.assertTrue(text.startswith(".\\\""), text[:20])
        self.assertIn(f"{self.v['sysconfdir']}/ustatus/ustatus.conf", text)
        self.assertNotRegex(text, r"@[a-z_A-Z]+@")
        # It renders without a warning from groff or man. Rendered as a build for /usr/local
        # would install it: a long --prefix (make distcheck's) makes unbreakable paths that
        # groff warns it cannot fit in 80 columns, which says nothing about the page.
        plain = os.path.join(TMP, "ustatus-fcgi.8")
        with open(plain, "w") as f:
            f.write(text.replace(self.v["prefix"], "/usr/local"))
        r = subprocess.run([h.which("man"), "--warnings", "-l", "-Tutf8", plain],
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8",
                                "MANWIDTH": "80"})
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # Every long option of --help is documented.
        for opt in sorted(set(re.findall(r"--([a-z][a-z-]+)", h.run_bin("--help").stdout))):
            self.assertIn("\\-\\-" + opt.replace("-", "\\-"), text, opt)

    def test_docs_and_examples_with_the_installed_paths(self):
        for name in ("README.md", "BENCHMARKS.md", "LICENSE"):
            self.assertTrue(os.path.isfile(self.path("docdir", name)), name)
        ex = self.path("docdir", "examples")
        for rel in ("ustatus.conf", "ustatus.json", "apache/ustatus.conf",
                    "lighttpd/lighttpd.conf", "lighttpd/lighttpd-pool.conf", "nginx/ustatus.conf",
                    "spawn-fcgi/ustatus-spawn-fcgi.service", "logrotate/ustatus",
                    "client/ustatus.js"):
            self.assertTrue(os.path.isfile(os.path.join(ex, rel)), rel)
        sbin, etc = self.v["sbindir"], self.v["sysconfdir"]
        cmd = f"{sbin}/ustatus-fcgi -c {etc}/ustatus/ustatus.conf"
        self.assertIn(f'"bin-path" => "{cmd}"', read(ex, "lighttpd", "lighttpd.conf"))
        self.assertIn(f'FcgidWrapper "{cmd}" virtual', read(ex, "apache", "ustatus.conf"))
        self.assertIn(f"-- {cmd}\n", read(ex, "spawn-fcgi", "ustatus-spawn-fcgi.service"))
        conf = read(ex, "ustatus.conf")
        self.assertIn('"127.0.0.1:6379"', conf)
        self.assertIn("@API_KEY@", conf)  # the placeholder --check-config warns about

    def test_systemd_units(self):
        self.assertNotEqual(self.v["systemdsystemunitdir"], "",
                            "configure found systemd's pkg-config file (deploy/packages.sh)")
        svc = read(self.path("systemdsystemunitdir", "ustatus.service"))
        self.assertIn(f"\nExecStart={self.v['sbindir']}/ustatus-fcgi -c "
                      f"{self.v['sysconfdir']}/ustatus/ustatus.conf ", svc)
        self.assertIn("\nDocumentation=man:ustatus-fcgi(8)\n", svc)
        self.assertNotIn("/usr/local/bin", svc)
        self.assertNotRegex(svc, r"@[a-z_A-Z]+@")
        sock = read(self.path("systemdsystemunitdir", "ustatus.socket"))
        self.assertIn("\nListenStream=/run/ustatus/ustatus-fcgi.sock\n", sock)

    def test_uninstall_leaves_nothing(self):
        dest = os.path.join(TMP, "destdir2")
        run_make("install", f"DESTDIR={dest}")
        run_make("uninstall", f"DESTDIR={dest}")
        left = [os.path.join(d, f) for d, _, files in os.walk(dest) for f in files]
        self.assertEqual(left, [])


def unit_subst(run_dir, conf):
    return {"@sbindir@/ustatus-fcgi": h.BIN, "@sysconfdir@/ustatus/ustatus.conf": conf,
            "/run/ustatus": os.path.join(run_dir, "run")}


SERVICE_IN = os.path.join(DEPLOY, "systemd", "ustatus.service.in")
SOCKET = os.path.join(DEPLOY, "systemd", "ustatus.socket")


class SystemdUnits(unittest.TestCase):
    def write_unit(self, d, subst):
        os.makedirs(d, exist_ok=True)
        text = read(SERVICE_IN)
        for k, v in subst.items():
            text = text.replace(k, v)
        path = os.path.join(d, "ustatus.service")
        with open(path, "w") as f:
            f.write(text)
        shutil.copy(SOCKET, d)
        return path

    def test_hardening_exposure_at_most_3(self):
        d = os.path.join(TMP, "analyze")
        path = self.write_unit(d, {"@sbindir@": "/usr/sbin", "@sysconfdir@": "/etc"})
        r = subprocess.run([h.which("systemd-analyze"), "--offline=true", "security", path],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for ustatus\.service: (\d+\.\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 3.0, r.stdout)

    def test_units_verify_and_name_the_man_page(self):
        d = os.path.join(TMP, "verify")
        path = self.write_unit(d, {"@sbindir@/ustatus-fcgi": h.BIN, "@sysconfdir@": "/etc"})
        man = os.path.join(TMP, "man", "man8")
        os.makedirs(man, exist_ok=True)
        shutil.copy(os.path.join(BUILD, "ustatus-fcgi.8"), man)
        r = subprocess.run([h.which("systemd-analyze"), "verify", path,
                            os.path.join(d, "ustatus.socket")],
                           capture_output=True, text=True, timeout=120, cwd=d,
                           env={"PATH": os.environ["PATH"],
                                "MANPATH": os.path.join(TMP, "man")})
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_socket_activation_notify_reload_stop(self):
        run_dir = os.path.join(TMP, "svc")
        os.makedirs(run_dir, mode=0o755)
        conf = h.write_config(run_dir, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "deploy" }} }}
""")
        os.chmod(conf, 0o644)
        svc = units.SocketActivatedService(
            SERVICE_IN, SOCKET, run_dir, unit_subst(run_dir, conf),
            user="nobody" if AS_ROOT else None, group="nogroup" if AS_ROOT else None,
            groups=[] if not AS_ROOT else None, extra_args=["--workers", "2"])
        try:
            svc.start(trigger=False)
            # Nothing runs before the first connection: the socket waits for it.
            self.assertEqual(svc.notify.lines(), [])
            self.assertEqual(svc.sock_unit["SocketMode"], ["0660"])
            self.assertEqual(os.stat(svc.address).st_mode & 0o777, 0o660)
            svc.trigger()
            svc.notify.wait_for("READY=1")
            r = svc.request("/api/update_user_status", {"users": ["u1"]}, {"X-API-Key": KEY})
            self.assertEqual((r.status, r.body), (200, b'{"result":{}}'))
            self.assertTrue(at.stored(REDIS, at.key_of("u1", "deploy")).get("active"))
            # systemctl reload with a good file: RELOADING=1, then READY=1 again.
            ok, rc, out = svc.reload()
            self.assertTrue(ok, out)
            svc.notify.wait_for("READY=1", count=2)
            lines = svc.notify.lines()
            self.assertLess(lines.index("RELOADING=1"), len(lines) - 1 - lines[::-1].index("READY=1"))
            # ... with a bad file: ExecReload fails (status 78, the line naming the
            # option); no SIGHUP is sent, the workers keep serving.
            good = read(conf)
            with open(conf, "a") as f:
                f.write('user_status { expire_interval = "12x" }\n')
            ok, rc, out = svc.reload()
            self.assertEqual((ok, rc), (False, 78), out)
            self.assertIn("expire_interval", out)
            with open(conf, "w") as f:
                f.write(good)
            self.assertEqual(svc.notify.lines().count("RELOADING=1"), 1)
            r = svc.request("/api/get_user_status", {"users": ["u1"]}, {"X-API-Key": KEY})
            self.assertEqual(r.status, 200)
            self.assertIn(b'"active"', r.body)
        finally:
            rc = svc.stop()
        self.assertEqual(rc, 0, svc.log_text())
        self.assertIn("STOPPING=1", svc.notify.lines())


class Logrotate(unittest.TestCase):
    """deploy/logrotate/ustatus run by the real logrotate (paths substituted; the
    systemctl of postrotate does nothing where systemd is not PID 1, so the test sends
    the signal it would send)."""

    def logrotate(self, log_dir, user, group):
        text = read(DEPLOY, "logrotate", "ustatus").replace("/var/log/ustatus", log_dir)
        text = text.replace("create 0640 ustatus adm", f"create 0640 {user} {group}")
        conf = h.write_config(log_dir, text, "logrotate.conf")
        os.chmod(conf, 0o644)
        r = subprocess.run([h.which("logrotate"), "-f", "-s",
                            os.path.join(TMP, f"logrotate.state.{os.path.basename(log_dir)}"),
                            conf], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_pool_log_file_rotated_and_reopened(self):
        run_dir = os.path.join(TMP, "rot")
        log_dir = os.path.join(run_dir, "log")
        os.makedirs(log_dir)
        os.chmod(run_dir, 0o755)
        user, group = ("nobody", "nogroup") if AS_ROOT else (None, None)
        owner = (user, group) if AS_ROOT else (pwd.getpwuid(os.geteuid()).pw_name,
                                               grp.getgrgid(os.getegid()).gr_name)
        if AS_ROOT:
            shutil.chown(log_dir, user, group)
        conf = h.write_config(run_dir, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" }} }}
""")
        os.chmod(conf, 0o644)
        log = os.path.join(log_dir, "ustatus.log")
        svc = units.SocketActivatedService(
            SERVICE_IN, SOCKET, run_dir, unit_subst(run_dir, conf), user=user, group=group,
            groups=[] if not AS_ROOT else None, extra_args=["--workers", "1"],
            env={"USTATUS_LOG_FILE": log})
        h.watch_log(log + "*")
        try:
            svc.start()
            h_wait = units.wait
            h_wait(lambda: "worker" in h.read_logs(log_dir, "ustatus.log"), 10, "log.file lines")
            before = os.stat(log).st_ino
            self.logrotate(log_dir, *owner)
            rotated = os.path.join(log_dir, "ustatus.log.1")
            self.assertIn("worker", read(rotated))
            self.assertNotEqual(os.stat(log).st_ino, before)  # created anew
            self.assertEqual(os.stat(log).st_mode & 0o777, 0o640)
            # postrotate: systemctl kill --kill-whom=main --signal=USR1 ustatus.service
            os.kill(svc.proc.pid, signal.SIGUSR1)
            ok, rc, out = svc.reload()  # something to log
            self.assertTrue(ok, out)
            h_wait(lambda: "reload" in h.read_logs(log_dir, "ustatus.log"), 10,
                   "the reload's lines in the new file")
            self.assertNotIn("reload", read(rotated))
        finally:
            svc.stop()

    def test_lighttpd_logs_copied_and_truncated(self):
        log_dir = os.path.join(TMP, "lighttpd-logs")
        os.makedirs(log_dir)
        path = os.path.join(log_dir, "lighttpd-ustatus.log")
        with open(path, "w") as f:
            f.write("ustatus[1]: error: something\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # what lighttpd holds for its children
        try:
            ino = os.stat(path).st_ino
            self.logrotate(log_dir, "root", "root")
            self.assertEqual(os.stat(path).st_ino, ino)
            self.assertEqual(os.stat(path).st_size, 0)
            self.assertIn("something", read(path + ".1"))
            os.write(fd, b"ustatus[1]: error: after\n")
            self.assertEqual(read(path), "ustatus[1]: error: after\n")
        finally:
            os.close(fd)


if __name__ == "__main__":
    unittest.main(verbosity=2)
