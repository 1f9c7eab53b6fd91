"""End to end through the shipped lighttpd configuration (deploy/lighttpd/lighttpd.conf)
with the shipped ustatus.conf, driven by the real curl with the seed's three examples.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

KEY = "seed-key-8d1e2f"
AS_ROOT = os.geteuid() == 0


def setUpModule():
    global REDIS, TMP, PORT, LIGHTTPD, CONF
    REDIS = h.Redis().start()
    TMP = h.make_tmpdir("ustatus-deploy-")
    PORT = h.free_port()
    with open(os.path.join(h.SRCDIR, "deploy", "ustatus.conf")) as f:
        conf = f.read().replace("@API_KEY@", KEY).replace("@REDIS_PORT@", str(REDIS.port))
    CONF = h.write_config(TMP, conf)
    with open(os.path.join(h.SRCDIR, "deploy", "lighttpd", "lighttpd.conf")) as f:
        web = f.read()
    web = (web.replace("/usr/local/sbin/ustatus-fcgi", h.BIN)
              .replace("/etc/ustatus/ustatus.conf", CONF)
              .replace("/run/ustatus", TMP)
              .replace("/var/log/ustatus", TMP)
              .replace("/var/empty", TMP)
              .replace("server.port = 8000", f"server.port = {PORT}"))
    if AS_ROOT:
        # The shipped file drops to www-data: let that user in, nothing more.
        os.chmod(TMP, 0o755)
        shutil.chown(CONF, "root", "www-data")
        os.chmod(CONF, 0o640)
        open(os.path.join(TMP, "lighttpd-error.log"), "a").close()
        shutil.chown(os.path.join(TMP, "lighttpd-error.log"), "www-data", "www-data")
        os.chmod(TMP, 0o777 | 0o1000)  # the socket is created by www-data
    else:
        web = re.sub(r"^server\.(user|group)name.*$", "", web, flags=re.M)
    path = h.write_config(TMP, web, "lighttpd.conf")
    # lighttpd's error log, and the spawned processes' stderr (server.breakagelog)
    h.watch_log(os.path.join(TMP, "lighttpd-error.log"), os.path.join(TMP, "lighttpd-ustatus.log"))
    LIGHTTPD = h.start_process([h.which("lighttpd"), "-D", "-f", path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.wait_port(PORT, proc=LIGHTTPD)


def tearDownModule():
    h.tear_down_module(LIGHTTPD, REDIS, dirs=[TMP])


def curl(method_name, users='["42"]'):
    # The seed's example, byte for byte but for the key and the port.
    r = subprocess.run([
        h.which("curl"), "--silent", "--show-error",
        "--header", "Content-Type: application/json",
        "--header", f"X-API-Key: {KEY}",
        "--request", "POST",
        "--data", '{"users": %s}' % users,
        f"http://localhost:{PORT}/api/{method_name}",
        "--write-out", "\n%{http_code}",
    ], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


class SeedExamples(unittest.TestCase):
    def test_three_seed_examples(self):
        code, body = curl("update_user_status")
        self.assertEqual((code, body), (200, '{"result":{}}'))
        now = int(time.time())
        code, body = curl("get_user_status")
        self.assertEqual(code, 200)
        j = json.loads(body)
        self.assertEqual(list(j), ["result"])
        self.assertEqual(list(j["result"]), ["statuses"])
        st = j["result"]["statuses"]
        self.assertEqual(len(st), 1)
        self.assertEqual(sorted(st[0]), ["active", "user"])
        self.assertEqual(st[0]["user"], "42")
        self.assertIsInstance(st[0]["active"], int)
        self.assertLessEqual(abs(st[0]["active"] - now), 2)
        code, body = curl("delete_user_status")
        self.assertEqual((code, body), (200, '{"result":{}}'))
        code, body = curl("get_user_status")
        self.assertEqual((code, body), (200, '{"result":{"statuses":[{"user":"42"}]}}'))
        # the default redis prefix of the shipped configuration
        self.assertEqual(REDIS.cli("EXISTS", "centrifugo.user_status.42"), "0")
        curl("update_user_status")
        self.assertEqual(REDIS.cli("EXISTS", "centrifugo.user_status.42"), "1")
        ttl = int(REDIS.cli("TTL", "centrifugo.user_status.42"))
        self.assertTrue(720 * 3600 - 2 <= ttl <= 720 * 3600, ttl)  # rounded by Redis: see apitest.assert_ttl

    def test_not_root(self):
        curl("get_user_status")  # make sure a worker is up
        out = subprocess.run(["ps", "-eo", "user:20,args"], capture_output=True, text=True).stdout
        workers = [l for l in out.splitlines() if h.BIN in l and CONF in l]
        self.assertTrue(workers, out)
        for line in workers:
            user = line.split()[0]
            if AS_ROOT:
                self.assertEqual(user, "www-data", line)
            self.assertNotEqual(user, "root", line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
