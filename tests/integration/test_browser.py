"""deploy/client/ustatus.js in real headless Chromium (Debian's chromium, driven by
playwright-core from tests/browser/): a page served by the real lighttpd on one port
loads the helper, which calls the client endpoints of ustatus-fcgi on another port of the
same lighttpd (so every call is cross-origin and goes through a real CORS preflight).
Synthetic pointer and keyboard input must produce debounced update_user_status calls,
the heartbeat must set `online`, and get_user_status must then show both.

The scenario runs in tests/browser/drive.js; this file sets up the servers, makes the
tokens and asserts on what the driver reports.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402

KEY = "browser-api-key"
SECRET = "browser-hmac-secret"
USER = "browser-user-7"
ACTIVITY_MS = 1000
HEARTBEAT_MS = 600
BROWSER_DIR = os.path.join(h.SRCDIR, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"


def hs256(claims):
    return at.hs256(SECRET, claims)


def node_modules():
    """A node_modules holding playwright-core at the version of the committed
    package-lock.json: tests/browser/node_modules when a developer ran `npm ci` there,
    else one installed by `npm ci` into a cache directory keyed by the lock file (the
    source tree may be read-only; the registry is asked once per lock file)."""
    local = os.path.join(BROWSER_DIR, "node_modules")
    if os.path.isdir(os.path.join(local, "playwright-core")):
        return local
    with open(os.path.join(BROWSER_DIR, "package-lock.json"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.join(tempfile.gettempdir(), f"ustatus-browser-npm-{digest}")
    if not os.path.isdir(os.path.join(cache, "node_modules", "playwright-core")):
        os.makedirs(cache, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(BROWSER_DIR, name), cache)
        r = subprocess.run([h.which("npm"), "ci", "--no-audit", "--no-fund"], cwd=cache,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"npm ci (tests/browser/package-lock.json) failed: "
                                 f"{r.stderr[-2000:]}")
    return os.path.join(cache, "node_modules")


def setUpModule():
    global REDIS, WEB, TMP, PAGE_PORT, NODE_PATH
    for prog in (CHROMIUM,):
        if not os.access(prog, os.X_OK):
            raise AssertionError(f"{prog} is required (apt-get install chromium)")
    h.which("node")
    NODE_PATH = node_modules()
    TMP = h.make_tmpdir("ustatus-browser-")
    REDIS = h.Redis().start()
    PAGE_PORT = h.free_port()
    conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{ redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "br" }} }}
client {{
  allowed_origins = {{"http://127.0.0.1:{PAGE_PORT}"}}
  token {{ hmac_secret_key = "{SECRET}" }}
}}
""")
    WEB = h.Lighttpd(conf, prefix="/api", procs=1)
    # The same ustatus process also serves /client; the page and the helper are static
    # files of the same lighttpd, served on a second port: another origin.
    WEB.extra = f"""
mimetype.assign = (".html" => "text/html; charset=utf-8", ".js" => "text/javascript; charset=utf-8")
$SERVER["socket"] == "127.0.0.1:{PAGE_PORT}" {{ }}
fastcgi.server += (
  "/client" => (( "socket" => "{WEB.dir}/ustatus.sock-0", "check-local" => "disable" )),
)
"""
    shutil.copy(os.path.join(h.SRCDIR, "deploy", "client", "ustatus.js"), WEB.dir)
    shutil.copy(os.path.join(h.SRCDIR, "tests", "integration", "ustatus_page.html"),
                os.path.join(WEB.dir, "index.html"))
    WEB.start()
    h.wait_port(PAGE_PORT)


def tearDownModule():
    h.tear_down_module(WEB, REDIS, dirs=[TMP])


def paths(calls):
    return [c["path"] for c in calls]


class Browser(unittest.TestCase):
    def test_helper_in_chromium(self):
        now = int(time.time())
        # The first token handed out has expired: the helper must get a fresh one (109).
        tokens = [hs256({"sub": USER, "exp": now - 10}), hs256({"sub": USER, "exp": now + 600})]
        query = (f"endpoint={h.quote(f'http://127.0.0.1:{WEB.port}/client')}"
                 f"&tokens={h.quote(json.dumps(tokens))}"
                 f"&activity={ACTIVITY_MS}&heartbeat={HEARTBEAT_MS}")
        cfg = {
            "chromium": CHROMIUM,
            "page": f"http://127.0.0.1:{PAGE_PORT}/index.html?{query}",
            "api": f"http://127.0.0.1:{WEB.port}/api",
            "apiKey": KEY,
            "user": USER,
            "activity": ACTIVITY_MS,
            "heartbeat": HEARTBEAT_MS,
        }
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        started = time.time()
        r = subprocess.run([h.which("node"), os.path.join(BROWSER_DIR, "drive.js")],
                           input=json.dumps(cfg), capture_output=True, text=True, timeout=120,
                           env=env, cwd=BROWSER_DIR)
        self.assertEqual(r.returncode, 0, f"driver failed: {r.stderr[-3000:]}\n"
                                          f"{WEB.error_log()[-2000:]}")
        out = json.loads(r.stdout)
        origin = f"http://127.0.0.1:{PAGE_PORT}"

        # Idle: the heartbeat only. The very first call was refused (expired token, 109)
        # and repeated with a fresh token; everything else succeeded cross-origin.
        idle = out["phases"]["idle"]
        self.assertNotIn("/client/update_user_status", paths(idle["calls"]), idle)
        self.assertGreaterEqual(paths(idle["calls"]).count("/client/online"), 3, idle)
        first = idle["calls"][0]
        self.assertEqual(first["status"], 401, idle)
        self.assertEqual(json.loads(first["body"])["error"]["code"], 109)
        for c in idle["calls"][1:]:
            self.assertEqual((c["status"], c["body"]), (200, '{"result":{}}'), c)
        for c in idle["calls"]:
            self.assertEqual(c["acao"], origin, c)
        self.assertEqual(out["tokenCalls"], 2)
        st = idle["status"]
        self.assertNotIn("active", st)
        self.assertGreaterEqual(st["online"], int(started))

        # The burst: dozens of input events, a handful of calls at most one per
        # activity interval (the first at once, then one trailing call).
        burst = out["phases"]["burst"]
        updates = [c for c in burst["calls"] if c["path"] == "/client/update_user_status"]
        span = out["burstEnd"] - out["burstStart"]
        self.assertGreaterEqual(out["events"], 40)
        self.assertGreaterEqual(len(updates), 2, burst)
        self.assertLessEqual(len(updates), int(span / (ACTIVITY_MS / 1000)) + 2, burst)
        for a, b in zip(updates, updates[1:]):
            self.assertGreaterEqual(b["t"] - a["t"], ACTIVITY_MS / 1000 - 0.05, updates)
        for c in updates:
            self.assertEqual((c["status"], c["acao"]), (200, origin), c)
        # The last input came at most one keystroke delay before burstEnd.
        last_input_s = int(out["burstEnd"] - 0.1)
        st = burst["status"]
        self.assertGreaterEqual(st["active"], last_input_s)
        self.assertGreaterEqual(st["online"], st["active"])

        # Hidden: silence. Visible again: online (and activity) at once.
        self.assertEqual(out["phases"]["hidden"]["calls"], [])
        self.assertIn("/client/online", paths(out["phases"]["visible"]["calls"]))
        # Stopped: silence, whatever the input.
        self.assertEqual(out["phases"]["stopped"]["calls"], [])
        self.assertEqual(out["errors"], [])

        # What get_user_status finally shows, through the server API as any backend sees it.
        final = out["final"]
        self.assertEqual(final["user"], USER)
        self.assertGreaterEqual(final["active"], last_input_s)
        self.assertGreaterEqual(final["online"], final["active"])
        self.assertEqual(at.Api(WEB.port, KEY).statuses([USER])[0], final)


if __name__ == "__main__":
    unittest.main()
