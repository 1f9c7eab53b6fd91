"""The command line (fcgi/main.c): --check-config, --version, --help, configuration errors
(exit 78 with one line naming the file, the line and the option, never a secret), usage
errors (exit 64), and a run as plain CGI serving the one request in its environment.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

KEY = "main-key-1f5c"


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
