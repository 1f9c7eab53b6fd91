"""Client tokens verified with keys from a JWKS document (SPEC §6,
client.token.jwks_public_endpoint), against a real redis-server and real lighttpd
processes each spawning one ustatus-fcgi, with JWKS servers of the test's own on loopback
(http.server in threads) whose answers the test changes while ustatus runs.

One timeline, because the rules are about time: every ustatus fetches its document at the
first token; for a minute after that, an unknown kid fetches nothing (so a rotated key is
still refused, and a JWKS server that came back is not asked yet); past the minute, the
rotated key is picked up and the servers that were down, answering garbage or answering
after 10 s are asked again, all without a restart. Every refused call is a 401 (error
101), answered within the fetch bound, with nothing written.

Keys and tokens are made with the openssl command line (test_client's helpers); JWKs are
written from the keys' DER SubjectPublicKeyInfo.
"""
import base64
import http.server
import json
import os
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
from apitest import Unique  # noqa: E402
from test_client import make_token, openssl  # noqa: E402

API_KEY = "jwks-it-api-key"
PREFIX = "jwksit"
OK = b'{"result":{}}'
UNAUTHORIZED = b'{"error":{"code":101,"message":"unauthorized"}}'

FETCH_TIMEOUT_S = 1.0   # US_JWKS_FETCH_TIMEOUT_MS
REFRESH_INTERVAL_S = 60  # US_JWKS_REFRESH_INTERVAL_S
# What a 401 caused by a failed fetch may take end to end: the fetch bound plus lighttpd,
# Redis-free request handling and a sanitizer build on a busy machine.
ANSWER_BOUND_S = FETCH_TIMEOUT_S + 1.5


# ---- keys as JWKs ----

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_items(b, i=0, end=None):
    """The (tag, content) items of a DER sequence's content from i to end."""
    end = len(b) if end is None else end
    out = []
    while i < end:
        tag, n = b[i], b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i:i + k], "big")
            i += k
        out.append((tag, b[i:i + n]))
        i += n
    return out


def public_components(priv):
    """The public numbers of a private key file: ("RSA", n, e) or ("EC", x, y)."""
    der = openssl("pkey", "-in", priv, "-pubout", "-outform", "DER")
    (_, spki), = der_items(der)
    _, bits = der_items(spki)[1]
    key = bits[1:]  # a BIT STRING's first byte counts its unused bits
    if key[0] == 0x04:  # an uncompressed EC point
        size = (len(key) - 1) // 2
        return ("EC", key[1:1 + size], key[1 + size:])
    (_, rsa), = der_items(key)
    (_, n), (_, e) = der_items(rsa)
    return ("RSA", n.lstrip(b"\0"), e)


def jwk(kid, priv, **extra):
    kind, a, b = public_components(priv)
    if kind == "RSA":
        k = {"kty": "RSA", "kid": kid, "use": "sig", "n": b64url(a), "e": b64url(b)}
    else:
        k = {"kty": "EC", "kid": kid, "crv": "P-256", "x": b64url(a), "y": b64url(b)}
    k.update(extra)
    return k


def jwks(*keys):
    return json.dumps({"keys": list(keys)}).encode()


# ---- a JWKS server ----

class JwksServer:
    """An HTTP(S) server on 127.0.0.1 answering every GET with what the test set:
    (status, body) after `delay` seconds. Counts the requests. Can be stopped and started
    again on the same port."""

    def __init__(self, port=None, tls=None):
        self.port = port or h.free_port()
        self.tls = tls  # (certfile, keyfile) or None
        self.lock = threading.Lock()
        self.status, self.body, self.delay = 200, jwks(), 0.0
        self.requests = 0
        self.httpd = None
        self.thread = None

    def answer(self, body, status=200, delay=0.0):
        with self.lock:
            self.status, self.body, self.delay = status, body, delay

    def count(self):
        with self.lock:
            return self.requests

    def url(self, path="/.well-known/jwks.json", userinfo=""):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{path}"

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                with owner.lock:
                    owner.requests += 1
                    status, body, delay = owner.status, owner.body, owner.delay
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the slow case)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


# ---- fixtures ----

def setUpModule():
    global REDIS, TMP, KEYS, SERVERS, WEBS
    TMP = h.make_tmpdir("ustatus-jwks-")
    KEYS = {}
    for name, args in (("rsa1", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ec1", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        priv = os.path.join(TMP, name + ".key")
        openssl("genpkey", *args, "-out", priv)
        KEYS[name] = priv
    cert, key = os.path.join(TMP, "tls.crt"), os.path.join(TMP, "tls.key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    REDIS = h.Redis().start()
    SERVERS = {
        "main": JwksServer().start(),
        "down": JwksServer(),  # not started: nobody listens on its port yet
        "garbage": JwksServer().start(),
        "slow": JwksServer().start(),
        "tls": JwksServer(tls=(cert, key)).start(),
    }
    good = jwks(jwk("rsa1", KEYS["rsa1"]), jwk("ec1", KEYS["ec1"]))
    SERVERS["main"].answer(jwks(jwk("rsa1", KEYS["rsa1"], alg="RS256"), jwk("ec1", KEYS["ec1"])))
    SERVERS["garbage"].answer(b"<html>502 Bad Gateway</html>")
    SERVERS["slow"].answer(good, delay=10)
    SERVERS["tls"].answer(good)
    WEBS = {}
    for name, server in SERVERS.items():
        # Credentials in the URL must never reach a log line.
        userinfo = "jwksuser:url-secret@" if name == "down" else ""
        WEBS[name] = web(config(name, server.url(userinfo=userinfo)))


def tearDownModule():
    h.tear_down_module(*WEBS.values(), *SERVERS.values(), REDIS, dirs=[TMP])


def config(name, url, token=None):
    tok = {"jwks_public_endpoint": url}
    tok.update(token or {})
    doc = {"http_api": {"key": API_KEY},
           "user_status": {"redis": {"address": [f"127.0.0.1:{REDIS.port}"], "prefix": PREFIX}},
           "client": {"token": tok, "min_update_interval": "0"}}
    return h.write_config(TMP, json.dumps(doc), name + ".json")


def web(conf):
    """lighttpd with one ustatus process serving /client (and /api)."""
    w = h.Lighttpd(conf, prefix="/api", procs=1)
    w.extra = f"""
fastcgi.server += (
  "/client" => (( "socket" => "{w.dir}/ustatus.sock-0", "check-local" => "disable" )),
)
"""
    return w.start()


def stored(user):
    return at.stored(REDIS, f"{PREFIX}.user_status.{user}")


def token(alg, kid, key, user, **header):
    head = {"alg": alg, "typ": "JWT", **header}
    if kid is not None:
        head["kid"] = kid
    return make_token(alg, {"sub": user, "exp": int(time.time()) + 600}, KEYS[key], header=head)


def call(web_name, tok):
    """POST /client/update_user_status with tok: (response, seconds taken)."""
    t0 = time.monotonic()
    r = h.http(WEBS[web_name].port, "POST", "/client/update_user_status", b"{}",
               {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    return r, time.monotonic() - t0


# ---- tests ----

class Jwks(unittest.TestCase):
    def accepted(self, web_name, alg, kid, key):
        user = Unique.user(f"{web_name}-{kid}")
        r, _ = call(web_name, token(alg, kid, key, user))
        self.assertEqual((r.status, r.body), (200, OK), (web_name, alg, kid))
        self.assertIn("active", stored(user))
        self.assertIn("online", stored(user))

    def refused(self, web_name, alg, kid, key, **header):
        user = Unique.user(f"{web_name}-refused")
        r, took = call(web_name, token(alg, kid, key, user, **header))
        self.assertEqual((r.status, r.body), (401, UNAUTHORIZED), (web_name, alg, kid))
        self.assertIn("invalid_token", r.headers.get("www-authenticate", ""))
        self.assertLess(took, ANSWER_BOUND_S, (web_name, kid))
        self.assertEqual(stored(user), {}, (web_name, kid))
        return took

    def workers(self, web_name):
        return h.child_pids(WEBS[web_name].proc.pid)

    def test_timeline(self):
        main = SERVERS["main"]
        self.assertEqual(main.count(), 0, "fetched before the first token")
        pids = {n: self.workers(n) for n in WEBS}

        # ---- within the first minute ----
        self.accepted("main", "RS256", "rsa1", "rsa1")   # the first token fetches
        t_fetch = time.monotonic()
        self.accepted("main", "ES256", "ec1", "ec1")
        self.assertEqual(main.count(), 1)
        self.refused("main", "RS256", "unknown", "rsa1")
        self.refused("main", "RS256", None, "rsa1")          # no kid
        self.refused("main", "RS384", "rsa1", "rsa1")        # the key says RS256
        self.refused("main", "ES256", "rsa1", "ec1")         # an RSA key for an EC alg
        self.refused("main", "RS256", "ec1", "rsa1")         # and the other way
        self.refused("main", "RS256", "rsa1", "rsa2")        # signed by another key
        self.refused("main", "HS256", "rsa1", "rsa1")        # no HMAC keys in a JWKS
        # The key rotates: rsa2 is published, rsa1 withdrawn. Unknown kids within the
        # minute fetch nothing, however many arrive.
        main.answer(jwks(jwk("ec1", KEYS["ec1"]), jwk("rsa2", KEYS["rsa2"])))
        for i in range(10):
            self.refused("main", "RS256", f"probe{i}", "rsa1")
        self.refused("main", "RS256", "rsa2", "rsa2")
        self.assertEqual(main.count(), 1, "an unknown kid fetched within the minute")
        self.accepted("main", "RS256", "rsa1", "rsa1")   # still in hand until refreshed

        # Down, garbage, answering after 10 s, or HTTPS with a certificate no system CA
        # vouches for: 401 within the bound, nothing written.
        for name in ("down", "garbage", "slow", "tls"):
            self.refused(name, "RS256", "rsa1", "rsa1")
            self.refused(name, "ES256", "ec1", "ec1")    # within the minute: no new fetch
        self.assertEqual(SERVERS["garbage"].count(), 1)
        self.assertEqual(SERVERS["slow"].count(), 1)
        self.assertLessEqual(SERVERS["tls"].count(), 1)
        t_failed = time.monotonic()

        # They come back. Within the minute nothing asks them yet.
        good = jwks(jwk("rsa1", KEYS["rsa1"]), jwk("ec1", KEYS["ec1"]))
        SERVERS["down"].answer(good)
        SERVERS["down"].start()
        SERVERS["garbage"].answer(good)
        SERVERS["slow"].answer(good)
        self.refused("down", "RS256", "rsa1", "rsa1")
        self.assertEqual(SERVERS["down"].count(), 0)

        # ---- past the minute ----
        wait = max(t_fetch, t_failed) + REFRESH_INTERVAL_S + 1 - time.monotonic()
        time.sleep(max(0.0, wait))

        # The rotated key is picked up without a restart; the withdrawn one is gone.
        self.accepted("main", "RS256", "rsa2", "rsa2")
        self.assertEqual(main.count(), 2)
        self.refused("main", "RS256", "rsa1", "rsa1")
        self.accepted("main", "ES256", "ec1", "ec1")
        # The servers that failed are asked again, and serve.
        for name in ("down", "garbage", "slow"):
            self.accepted(name, "RS256", "rsa1", "rsa1")
            self.accepted(name, "ES256", "ec1", "ec1")
            self.assertEqual(SERVERS[name].count(), 2 if name != "down" else 1, name)
        # HTTPS stays refused: the certificate is still not trusted.
        self.refused("tls", "RS256", "rsa1", "rsa1")
        # Same processes throughout: nothing was restarted.
        self.assertEqual({n: self.workers(n) for n in WEBS}, pids)

        # One warning per failed fetch, saying why, never the URL or its credentials.
        logs = {n: WEBS[n].error_log() for n in WEBS}
        self.assertIn("JWKS fetch from client.token.jwks_public_endpoint failed", logs["down"])
        self.assertIn("refused", logs["garbage"])
        self.assertIn("Timeout", logs["slow"])
        self.assertIn("JWKS fetch", logs["tls"])
        for n, text in logs.items():
            self.assertNotIn("url-secret", text, n)
            self.assertNotIn(f"127.0.0.1:{SERVERS[n].port}", text, n)


class Configuration(unittest.TestCase):
    def run_cgi(self, conf):
        env = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
               "SCRIPT_NAME": "/client/online", "CONTENT_LENGTH": "0"}
        return h.run_bin("-c", conf, env=env, timeout=30)

    def test_static_keys_beside_jwks_are_unused_and_said_so(self):
        """As Centrifugo: with a JWKS endpoint, tokens are verified with its keys alone; a
        configured HMAC key is reported at start as not used, and its tokens refused."""
        secret = "jwks-it-hmac-secret"
        # Nobody listens there: an HMAC token is refused before any fetch is tried.
        conf = config("with-hmac", "http://127.0.0.1:1/jwks", token={"hmac_secret_key": secret})
        user = Unique.user("hmac")
        r = h.cgi(conf, path="/client/update_user_status", body="{}",
                  headers={"Authorization": "Bearer " + at.hs256_for(secret, user)})
        self.assertEqual((r.status, r.body), (401, UNAUTHORIZED))
        self.assertIn("client.token.hmac_secret_key is not used", r.stderr)
        self.assertNotIn(secret, r.stderr)
        self.assertEqual(stored(user), {})

    def test_endpoint_must_be_http(self):
        for url in ("ftp://127.0.0.1/jwks", "file:///etc/passwd"):
            r = self.run_cgi(config("bad-url", url))
            self.assertEqual(r.returncode, 78, url)
            self.assertIn("client.token.jwks_public_endpoint", r.stderr)
            self.assertEqual(len([ln for ln in r.stderr.splitlines() if ln.strip()]), 1,
                             r.stderr)


if __name__ == "__main__":
    unittest.main()
