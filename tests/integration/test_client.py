"""Client-side status updates (SPEC §6) against a real redis-server: the JWT-authenticated
client endpoints, CORS and the per-user minimum write interval (the Centrifugo RPC proxy:
test_rpc_proxy.py), through a real lighttpd spawning ustatus-fcgi (one process, so the minimum
interval is observable) and as plain CGI for configuration variants.

Every token is made here: RSA and EC keys by the openssl command line, which also signs
RS256/ES256 tokens (its DER ECDSA signatures are converted to the JWS r||s form), and
HS256 with Python's hmac. Every rejected call is checked to have written nothing.
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402
from apitest import Unique, b64url  # noqa: E402

API_KEY = "client-it-api-key"
PROXY_KEY = "client-it-proxy-key"
SECRET = "client-it-hmac-secret"
ORIGIN = "https://app.example"
PREFIX = "cl"

OK = b'{"result":{}}'
UNAUTHORIZED = b'{"error":{"code":101,"message":"unauthorized"}}'
EXPIRED = b'{"error":{"code":109,"message":"token expired"}}'


# ---- tokens ----

def openssl(*args, data=None):
    r = subprocess.run([h.which("openssl"), *args], input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr.decode()}")
    return r.stdout


def der_to_jose(der, size):
    """An ECDSA-Sig-Value SEQUENCE { INTEGER r, INTEGER s } to fixed-width r || s."""
    def read_len(b, i):
        n = b[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(b[i + 1:i + 1 + k], "big"), i + 1 + k
    assert der[0] == 0x30
    _, i = read_len(der, 1)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n, i = read_len(der, i + 1)
        out += int.from_bytes(der[i:i + n], "big").to_bytes(size, "big")
        i += n
    return out


def make_token(alg, claims, key=None, header=None, raw_claims=None, der=False):
    """A compact JWS. key: the HMAC secret (str/bytes) for HS*, a private key file for
    RS*/ES* (signed by `openssl dgst`)."""
    head = b64url(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(raw_claims if raw_claims is not None else json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    md = "sha" + alg[2:]
    if alg.startswith("HS"):
        k = key.encode() if isinstance(key, str) else key
        sig = hmac.new(k, signing_input, getattr(hashlib, md)).digest()
    else:
        sig = openssl("dgst", "-" + md, "-sign", key, data=signing_input)
        if alg.startswith("ES") and not der:
            sig = der_to_jose(sig, {"ES256": 32, "ES384": 48, "ES512": 66}[alg])
    return f"{head}.{body}.{b64url(sig)}"


def claims_for(user, **extra):
    c = {"sub": user, "exp": int(time.time()) + 600}
    c.update(extra)
    return c


# ---- servers ----

def setUpModule():
    global REDIS, WEB, TMP, KEYS, CONF, CONF_ZERO, WEB_ZERO, WEB_LONG
    TMP = h.make_tmpdir("ustatus-client-")
    KEYS = {}
    for name, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("rsa_other", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        priv = os.path.join(TMP, name + ".key")
        openssl("genpkey", *args, "-out", priv)
        pub = openssl("pkey", "-in", priv, "-pubout").decode()
        KEYS[name] = (priv, pub)
    REDIS = h.Redis().start()
    CONF = config("main.json")
    CONF_ZERO = config("zero.json", client={"min_update_interval": "0"})
    WEB = web(CONF)
    WEB_ZERO = web(CONF_ZERO)
    WEB_LONG = web(config("long.json", client={"min_update_interval": "1m"}))


def tearDownModule():
    h.tear_down_module(WEB, WEB_ZERO, WEB_LONG, REDIS, dirs=[TMP])


def config(name, client=None, token=None, user_status=None, proxy=None):
    """A JSON configuration (PEM keys are simplest to carry in JSON strings)."""
    tok = {"hmac_secret_key": SECRET, "rsa_public_key": KEYS["rsa"][1],
           "ecdsa_public_key": KEYS["ec"][1]}
    tok.update(token or {})
    cl = {"allowed_origins": [ORIGIN, "https://*.wild.example", "http://localhost:*",
                              "*.bare.example"], "token": tok}
    cl.update(client or {})
    us = {"state_regex": "^[a-z]+$",
          "redis": {"address": [f"127.0.0.1:{REDIS.port}"], "prefix": PREFIX}}
    us.update(user_status or {})
    doc = {"http_api": {"key": API_KEY}, "user_status": us, "client": cl,
           "centrifugo_proxy": proxy if proxy is not None else {"key": PROXY_KEY}}
    return h.write_config(TMP, json.dumps(doc), name)


def web(conf):
    """lighttpd with one ustatus process serving /api, /client and /centrifugo."""
    w = h.Lighttpd(conf, prefix="/api", procs=1)
    # bin-path spawns the process on <socket>-0; the other prefixes reach the same one.
    w.extra = f"""
fastcgi.server += (
  "/client" => (( "socket" => "{w.dir}/ustatus.sock-0", "check-local" => "disable" )),
  "/centrifugo" => (( "socket" => "{w.dir}/ustatus.sock-0", "check-local" => "disable" )),
)
"""
    return w.start()


def stored(user):
    """The user's hash in Redis as {field: str}, {} when there is no key."""
    return at.stored(REDIS, f"{PREFIX}.user_status.{user}")


def client_call(path, token=None, body=b"{}", headers=None, method="POST", port=None):
    hdrs = {"Content-Type": "application/json"}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    return h.http(port or WEB.port, method, path, body, hdrs)


def eval_calls():
    """How many scripts Redis has run (the store runs one per user write)."""
    return at.script_calls(REDIS)


def warm(port):
    """One write through the process on port, so that the script is loaded in Redis and a
    NOSCRIPT retry cannot inflate the counts that follow."""
    u = Unique.user("warm")
    r = client_call("/client/online", make_token("HS256", claims_for(u), SECRET), port=port)
    assert r.status == 200, r


# ---- tests ----

class ValidTokens(unittest.TestCase):
    def check_sets(self, alg, key, path="/client/update_user_status"):
        user = Unique.user(alg)
        before = int(time.time())
        r = client_call(path, make_token(alg, claims_for(user), key))
        after = int(time.time())
        self.assertEqual((r.status, r.body), (200, OK), alg)
        self.assertEqual(r.headers["content-type"], "application/json")
        st = stored(user)
        self.assertTrue(before <= int(st["online"]) <= after, st)
        if path.endswith("update_user_status"):
            self.assertEqual(st["active"], st["online"])
        else:
            self.assertNotIn("active", st)
        ttl = int(REDIS.cli("TTL", f"{PREFIX}.user_status.{user}"))
        self.assertGreater(ttl, 0)
        return user

    def test_hs(self):
        for alg in ("HS256", "HS384", "HS512"):
            self.check_sets(alg, SECRET)

    def test_rs(self):
        for alg in ("RS256", "RS384", "RS512"):
            self.check_sets(alg, KEYS["rsa"][0])

    def test_es256(self):
        for _ in range(3):  # ECDSA signatures vary: r or s with a leading zero byte
            self.check_sets("ES256", KEYS["ec"][0])

    def test_online_only(self):
        self.check_sets("HS256", SECRET, "/client/online")
        self.check_sets("ES256", KEYS["ec"][0], "/client/online")

    def test_get_user_status_shows_it(self):
        user = self.check_sets("RS256", KEYS["rsa"][0])
        r = h.http(WEB.port, "POST", "/api/get_user_status", {"users": [user]},
                   {"X-API-Key": API_KEY})
        st = r.json()["result"]["statuses"][0]
        self.assertEqual(st["active"], int(stored(user)["active"]))
        self.assertEqual(st["online"], st["active"])

    def test_body_forms(self):
        user = Unique.user("body")
        tok = make_token("HS256", claims_for(user), SECRET)
        for body in (b"", b"  \n", b"{}", b'{"unknown":[1,2]}'):
            r = client_call("/client/update_user_status", tok, body)
            self.assertEqual((r.status, r.body), (200, OK), body)
        self.assertIn("active", stored(user))

    def test_state(self):
        user = Unique.user("state")
        tok = make_token("HS256", claims_for(user), SECRET)
        r = client_call("/client/update_user_status", tok, {"state": "away"})
        self.assertEqual((r.status, r.body), (200, OK))
        self.assertEqual(stored(user)["state"], "away")
        # Within the same second too: a different state is never skipped.
        r = client_call("/client/update_user_status", tok, {"state": "busy"})
        self.assertEqual(stored(user)["state"], "busy")
        r = client_call("/client/update_user_status", tok, {})
        self.assertEqual(stored(user)["state"], "busy")
        r = client_call("/client/update_user_status", tok, {"state": ""})
        self.assertEqual((r.status, r.body), (200, OK))
        self.assertNotIn("state", stored(user))
        # Rejected by state_regex or too long: 200 with 107; a wrong type: 400.
        for state in ("Away!", "a" * 257):
            r = client_call("/client/update_user_status", tok, {"state": state})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["error"]["code"], 107)
        r = client_call("/client/update_user_status", tok, {"state": 5})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], 107)
        for body in (b"[]", b"{", b'{"state":"x"} y', b'"x"'):
            r = client_call("/client/update_user_status", tok, body)
            self.assertEqual(r.status, 400, body)
        self.assertNotIn("state", stored(user))

    def test_user_id_claim_audience_issuer(self):
        conf = config("claims.json", token={"user_id_claim": "uid", "audience": "chat",
                                            "issuer": "https://auth.example"})
        user = Unique.user("claim")
        good = {"sub": "not-this-one", "uid": user, "aud": ["x", "chat"],
                "iss": "https://auth.example", "exp": int(time.time()) + 60}
        r = h.cgi(conf, path="/client/update_user_status", body="{}",
                  headers={"Authorization": "Bearer " + make_token("HS256", good, SECRET)})
        self.assertEqual((r.status, r.body), (200, OK), r.stderr)
        self.assertIn("active", stored(user))
        self.assertEqual(stored("not-this-one"), {})
        for bad in ({"aud": "chat2"}, {"aud": []}, {"iss": "https://auth.example.evil"},
                    {"iss": None}):
            c = dict(good, uid=Unique.user("claim-bad"))
            c.update(bad)
            c = {k: v for k, v in c.items() if v is not None}
            r = h.cgi(conf, path="/client/update_user_status", body="{}",
                      headers={"Authorization": "Bearer " + make_token("HS256", c, SECRET)})
            self.assertEqual((r.status, r.body), (401, UNAUTHORIZED), bad)
            self.assertEqual(stored(c["uid"]), {})


    def test_audience_issuer_regex(self):
        """POSIX extended, matched against the whole aud (any element of an array) and
        the whole iss; a missing claim never matches."""
        conf = config("regex.json", token={"audience_regex": "chat-(eu|us)",
                                           "issuer_regex": "https://[a-z]+\\.auth\\.example"})
        good = {"aud": ["x", "chat-us"], "iss": "https://tenant.auth.example"}
        user = Unique.user("regex")
        r = h.cgi(conf, path="/client/update_user_status", body="{}",
                  headers={"Authorization": "Bearer " + make_token(
                      "HS256", claims_for(user, **good), SECRET)})
        self.assertEqual((r.status, r.body), (200, OK), r.stderr)
        self.assertIn("active", stored(user))
        for bad in ({"aud": "chat-eu2"}, {"aud": "my-chat-eu"}, {"aud": ["x"]}, {"aud": None},
                    {"iss": "https://tenant.auth.example.evil"},
                    {"iss": "https://a.b.auth.example"}, {"iss": None}):
            u = Unique.user("regex-bad")
            c = claims_for(u, **good)
            c.update(bad)
            c = {k: v for k, v in c.items() if v is not None}
            r = h.cgi(conf, path="/client/update_user_status", body="{}",
                      headers={"Authorization": "Bearer " + make_token("HS256", c, SECRET)})
            self.assertEqual((r.status, r.body), (401, UNAUTHORIZED), bad)
            self.assertEqual(stored(u), {})


class RejectedTokens(unittest.TestCase):
    def assert_rejected(self, user, token, body=UNAUTHORIZED, path="/client/update_user_status",
                        port=None, headers=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        r = client_call(path, None, b'{"state":"away"}', hdrs, port=port)
        self.assertEqual((r.status, r.body), (401, body), token)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertTrue(r.headers["www-authenticate"].startswith("Bearer"))
        self.assertEqual(stored(user), {}, "a rejected call wrote")

    def test_wrong_signature(self):
        u = Unique.user("sig")
        self.assert_rejected(u, make_token("HS256", claims_for(u), SECRET + "x"))
        self.assert_rejected(u, make_token("RS256", claims_for(u), KEYS["rsa_other"][0]))
        good = make_token("ES256", claims_for(u), KEYS["ec"][0])
        head, body, sig = good.split(".")
        other = make_token("ES256", claims_for("someone-else"), KEYS["ec"][0])
        self.assert_rejected(u, f"{head}.{other.split('.')[1]}.{sig}")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        self.assert_rejected(u, f"{head}.{body}.{flipped}")
        # OpenSSL's DER signature is not the JWS form of ES256.
        self.assert_rejected(u, make_token("ES256", claims_for(u), KEYS["ec"][0], der=True))

    def test_alg_none(self):
        u = Unique.user("none")
        head = b64url(b'{"alg":"none","typ":"JWT"}')
        body = b64url(json.dumps(claims_for(u)).encode())
        self.assert_rejected(u, f"{head}.{body}.")
        self.assert_rejected(u, f"{head}.{body}")
        # "none" with a genuine HMAC: the header alone must decide.
        self.assert_rejected(u, make_token("HS256", claims_for(u), SECRET,
                                           header={"alg": "none"}))
        self.assert_rejected(u, make_token("HS256", claims_for(u), SECRET,
                                           header={"alg": "NONE"}))

    def test_algorithm_confusion(self):
        """The classic attack signs HS256 with the server's RSA *public* key (which is no
        secret) as the HMAC key, hoping the verifier uses 'its key' for whatever alg the
        header names. It is meaningful against a server that trusts only RSA tokens: the
        attacker has everything needed. It must fail there, and also where an HMAC secret
        exists next to the RSA key."""
        rsa_only = config("rsa-only.json", token={"hmac_secret_key": "", "ecdsa_public_key": ""})
        u = Unique.user("confusion")
        for pem in (KEYS["rsa"][1], KEYS["rsa"][1].encode().rstrip(b"\n")):
            forged = make_token("HS256", claims_for(u), pem)
            r = h.cgi(rsa_only, path="/client/update_user_status", body="{}",
                      headers={"Authorization": f"Bearer {forged}"})
            self.assertEqual((r.status, r.body), (401, UNAUTHORIZED), r.stderr)
            self.assert_rejected(u, forged)  # rsa + ec + hmac configured
        # The same server accepts a real RS256 token, so the key itself is fine.
        ok_user = Unique.user("confusion-ok")
        r = h.cgi(rsa_only, path="/client/update_user_status", body="{}",
                  headers={"Authorization": "Bearer "
                           + make_token("RS256", claims_for(ok_user), KEYS["rsa"][0])})
        self.assertEqual((r.status, r.body), (200, OK), r.stderr)
        # And the other way round: an RS256 header on a server without an RSA key.
        hs_only = config("hs-only.json", token={"rsa_public_key": "", "ecdsa_public_key": ""})
        r = h.cgi(hs_only, path="/client/update_user_status", body="{}",
                  headers={"Authorization": "Bearer "
                           + make_token("RS256", claims_for(u), KEYS["rsa"][0])})
        self.assertEqual((r.status, r.body), (401, UNAUTHORIZED))
        self.assertEqual(stored(u), {})

    def test_expired_and_not_yet_valid(self):
        u = Unique.user("exp")
        now = int(time.time())
        self.assert_rejected(u, make_token("HS256", {"sub": u, "exp": now - 1}, SECRET), EXPIRED)
        self.assert_rejected(u, make_token("RS256", {"sub": u, "exp": now - 3600},
                                           KEYS["rsa"][0]), EXPIRED)
        # Centrifugo answers a token whose nbf is still ahead with 109 as well: the client
        # refreshes it, which is what fixes clock skew between the issuer and us.
        self.assert_rejected(u, make_token("HS256", {"sub": u, "nbf": now + 120}, SECRET),
                             EXPIRED)
        self.assert_rejected(u, make_token("HS256", {"sub": u, "exp": str(now + 60)}, SECRET))
        # An expired token with a bad signature is a bad token, not an expired one.
        self.assert_rejected(u, make_token("HS256", {"sub": u, "exp": now - 1}, "wrong"))

    def test_malformed(self):
        u = Unique.user("malformed")
        good = make_token("HS256", claims_for(u), SECRET)
        head, body, sig = good.split(".")
        cases = [
            "", "a", "a.b", f"{head}.{body}.{sig}.x", f"{head}=.{body}.{sig}",
            f"{head}.{body}=.{sig}", f"{head}.{body}.{sig}==", f"{head}.{body}+.{sig}",
            f"{head}.{body}.{sig[:-1]}*", f"{head}.{b64url(b'not json')}.{sig}",
            f"{b64url(b'[1]')}.{body}.{sig}",
        ]
        for t in cases:
            self.assert_rejected(u, t)
        # Validly signed, but the JSON is not one strict object.
        for raw in (b'{"sub":"%s"} trailing' % u.encode(), b'{"sub":"%s",}' % u.encode(),
                    b"[]", b'{"sub":"\xff"}'):
            self.assert_rejected(u, make_token("HS256", None, SECRET, raw_claims=raw))

    def test_authorization_header_forms(self):
        u = Unique.user("auth")
        good = make_token("HS256", claims_for(u), SECRET)
        for value in (None, f"Basic {good}", f"Bearer {good} extra", "Bearer", f"apikey {API_KEY}",
                      f"Bearer{good}"):
            hdrs = {} if value is None else {"Authorization": value}
            r = client_call("/client/online", None, b"{}", hdrs)
            self.assertEqual((r.status, r.body), (401, UNAUTHORIZED), value)
        # The server API key is no client credential.
        r = client_call("/client/online", None, b"{}", {"X-API-Key": API_KEY})
        self.assertEqual(r.status, 401)
        self.assertEqual(stored(u), {})
        r = client_call("/client/online", None, b"{}", {"Authorization": f"bearer  {good} "})
        self.assertEqual((r.status, r.body), (200, OK))

    def test_anonymous(self):
        self.assert_rejected("", make_token("HS256", {"sub": "", "exp": int(time.time()) + 60},
                                            SECRET))
        self.assert_rejected("", make_token("HS256", {"exp": int(time.time()) + 60}, SECRET))
        self.assert_rejected("", make_token("HS256", {"sub": "x" * 1025}, SECRET))
        self.assertEqual(stored("x" * 1025), {})


class Cors(unittest.TestCase):
    def token(self, user):
        return make_token("HS256", claims_for(user), SECRET)

    def test_allowed_origin(self):
        for origin in (ORIGIN, "https://team.wild.example"):
            r = client_call("/client/online", self.token(Unique.user("cors")),
                            headers={"Origin": origin})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["access-control-allow-origin"], origin)
            self.assertEqual(r.headers["vary"], "Origin")
        # Errors carry it too, so the page can read why (e.g. 109: refresh the token).
        r = client_call("/client/online", "bad", headers={"Origin": ORIGIN})
        self.assertEqual((r.status, r.headers["access-control-allow-origin"]), (401, ORIGIN))

    def test_patterns(self):
        """A star matches within one part of the origin: any run of characters without
        '/' or ':'. A pattern without a scheme matches any scheme."""
        for origin in ("https://a.b.wild.example", "http://localhost:3000",
                       "http://localhost:8080", "https://x.bare.example", "http://x.bare.example",
                       "https://App.Example"):
            r = client_call("/client/online", self.token(Unique.user("cors")),
                            headers={"Origin": origin})
            self.assertEqual((r.status, r.headers.get("access-control-allow-origin")),
                             (200, origin))

    def test_other_origins(self):
        for origin in (None, "https://evil.example", ORIGIN + ".evil", "http://app.example",
                       "https://wild.example", "null",
                       # A star never reaches across '/' or ':'.
                       "https://evil.example/x.wild.example", "https://evil:1.wild.example",
                       "https://a.wild.example:8443", "http://localhost:3000/x",
                       "http://localhost:1:2", "http://localhost",
                       "https://evil.example/.bare.example", "https://x.bare.example:444",
                       "https//x.bare.example"):
            hdrs = {"Origin": origin} if origin else {}
            r = client_call("/client/online", self.token(Unique.user("cors")), headers=hdrs)
            self.assertEqual(r.status, 200, origin)
            self.assertEqual([k for k in r.headers if k.startswith("access-control-")], [],
                             origin)

    def test_preflight(self):
        for path in ("/client/update_user_status", "/client/online"):
            r = h.http(WEB.port, "OPTIONS", path, headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"})
            self.assertEqual(r.status, 204, path)
            self.assertEqual(r.body, b"")
            self.assertEqual(r.headers["access-control-allow-origin"], ORIGIN)
            self.assertEqual(r.headers["access-control-allow-methods"], "POST")
            self.assertEqual(r.headers["access-control-allow-headers"],
                             "Authorization, Content-Type")
            self.assertIn("access-control-max-age", r.headers)
            self.assertEqual(r.headers["vary"], "Origin")

    def test_any_origin(self):
        conf = config("any-origin.json", client={"allowed_origins": ["*"]})
        tok = self.token(Unique.user("cors-any"))
        for origin in ("https://anything.example", "null", "http://localhost:1/x"):
            r = h.cgi(conf, path="/client/online", body="{}",
                      headers={"Authorization": f"Bearer {tok}", "Origin": origin})
            self.assertEqual((r.status, r.headers.get("access-control-allow-origin")),
                             (200, origin))
        # A star inside a pattern is not "any".
        conf = config("star-inside.json", client={"allowed_origins": ["https://*"]})
        for origin, allowed in (("https://a.example", True), ("https://a.example:1", False),
                                ("http://a.example", False)):
            r = h.cgi(conf, path="/client/online", body="{}",
                      headers={"Authorization": f"Bearer {tok}", "Origin": origin})
            self.assertEqual("access-control-allow-origin" in r.headers, allowed, origin)

    def test_preflight_refused(self):
        for hdrs in ({"Origin": "https://evil.example"}, {}):
            r = h.http(WEB.port, "OPTIONS", "/client/online", headers=dict(
                hdrs, **{"Access-Control-Request-Method": "POST"}))
            self.assertEqual((r.status, r.body), (403, b""), hdrs)
            self.assertEqual([k for k in r.headers if k.startswith("access-control-")], [])
        r = h.http(WEB.port, "OPTIONS", "/client/nothing", headers={"Origin": ORIGIN})
        self.assertEqual(r.status, 404)


class Endpoints(unittest.TestCase):
    def test_methods_paths_limits(self):
        tok = make_token("HS256", claims_for(Unique.user("ep")), SECRET)
        for m in ("GET", "PUT", "DELETE"):
            r = client_call("/client/online", tok, b"", method=m)
            self.assertEqual((r.status, r.headers.get("allow")), (405, "POST, OPTIONS"), m)
        for path in ("/client", "/client/", "/client/update_user_statuses", "/client/x/online"):
            r = client_call(path, tok)
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.json()["error"]["code"], 104)
        r = client_call("/client/update_user_status", tok,
                        json.dumps({"state": "a", "pad": "x" * 5000}))
        self.assertEqual(r.status, 413)
        # Not ours: /clientele is the server API's (which wants its key).
        r = client_call("/clientele/online", tok)
        self.assertNotEqual(r.body, UNAUTHORIZED)

    def test_disable_for_client(self):
        conf = config("disabled.json", user_status={"disable_for_client": True})
        u = Unique.user("disabled")
        tok = make_token("HS256", claims_for(u), SECRET)
        for path in ("/client/update_user_status", "/client/online"):
            r = h.cgi(conf, path=path, body="{}", headers={"Authorization": f"Bearer {tok}"})
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.body, b'{"error":{"code":104,"message":"not found"}}')
        rpc = {"client": "c1", "transport": "websocket", "protocol": "json", "encoding": "json",
               "user": u, "method": "update_user_status", "data": {}}
        r = h.cgi(conf, path="/centrifugo/rpc", body=rpc, headers={"X-API-Key": PROXY_KEY})
        self.assertEqual((r.status, r.json()["error"]["code"]), (200, 404))
        self.assertEqual(stored(u), {})

    def test_user_status_disabled(self):
        conf = config("us-disabled.json", user_status={"enabled": False})
        u = Unique.user("usdisabled")
        tok = make_token("HS256", claims_for(u), SECRET)
        r = h.cgi(conf, path="/client/update_user_status", body="{}",
                  headers={"Authorization": f"Bearer {tok}"})
        self.assertEqual((r.status, r.json()["error"]["code"]), (200, 108))
        self.assertEqual(stored(u), {})

    def test_configuration_errors(self):
        """Exit 78 with one line naming the option, and never any key material."""
        cases = [
            ("overlap.json", {"client": {"handler_prefix": "/api"}}, "client.handler_prefix"),
            ("badpem.json", {"token": {"rsa_public_key": KEYS["ec"][1]}},
             "client.token.rsa_public_key"),
            ("badec.json", {"token": {"ecdsa_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                                          "-----END PUBLIC KEY-----\n"}},
             "client.token.ecdsa_public_key"),
            # Both forms of one check: Centrifugo refuses them too.
            ("aud-both.json", {"token": {"audience": "chat", "audience_regex": "chat.*"}},
             "client.token.audience_regex"),
            ("iss-both.json", {"token": {"issuer": "a", "issuer_regex": "a|b"}},
             "client.token.issuer_regex"),
            ("bad-regex.json", {"token": {"audience_regex": "chat-(eu"}},
             "client.token.audience_regex"),
        ]
        for name, kw, option in cases:
            conf = config(name, **kw)
            env = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                   "SCRIPT_NAME": "/client/online", "CONTENT_LENGTH": "0"}
            r = h.run_bin("-c", conf, env=env, timeout=30)
            self.assertEqual(r.returncode, 78, name)
            err = r.stderr
            self.assertIn(option, err)
            self.assertNotIn("BEGIN", err)
            self.assertNotIn(KEYS["ec"][1].splitlines()[1][:20], err)


class JsonIntake(unittest.TestCase):
    """The client endpoints read their body with the same strict JSON reader as the server
    API (SPEC §1.2): NaN, Infinity, a raw control character in a string and anything after
    the value are a bad request (400 / 107) and nothing is written."""

    def test_refused_and_nothing_written(self):
        for path in ("/client/update_user_status", "/client/online"):
            for good in (b'{"state":"<S>"}', b'{"unknown":"<S>"}'):
                for what, body in at.bad_json_bodies(good):
                    with self.subTest(path=path, body=body):
                        user = Unique.user("intake")
                        tok = make_token("HS256", claims_for(user), SECRET)
                        r = client_call(path, tok, body, port=WEB_ZERO.port)
                        self.assertEqual(stored(user), {}, f"{path}: {what} wrote")
                        at.assert_bad_request(self, r, f"{path} {good!r}: {what}")


class MinimumInterval(unittest.TestCase):
    def test_burst_is_bounded_and_active_exact(self):
        user = Unique.user("burst")
        tok = make_token("HS256", claims_for(user), SECRET)
        warm(WEB.port)
        before = eval_calls()
        t0 = time.time()
        for i in range(100):
            path = "/client/update_user_status" if i % 4 else "/client/online"
            if i == 99:
                t_last = time.time()
            r = client_call(path, tok)
            self.assertEqual((r.status, r.body), (200, OK))
        t1 = time.time()
        writes = eval_calls() - before
        seconds = int(t1) - int(t0) + 1  # wall-clock seconds the burst touched
        # At most one write per touched second for the active+online pair and one for an
        # /online arriving first in a second: never one per call.
        self.assertGreaterEqual(writes, 1)
        self.assertLessEqual(writes, 2 * seconds, (writes, seconds))
        self.assertLess(writes, 20)
        # `active` is the second of the last call, not of the first write.
        active = int(stored(user)["active"])
        self.assertGreaterEqual(active, int(t_last))
        self.assertLessEqual(active, int(t1))
        self.assertEqual(int(stored(user)["online"]), active)

        # The first call of a new second is always written.
        time.sleep(1.05 - (time.time() % 1.0))
        t2 = time.time()
        r = client_call("/client/update_user_status", tok)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(int(stored(user)["active"]), int(t2))
        self.assertGreater(int(stored(user)["active"]), active)

    def test_longer_interval_skips_across_seconds(self):
        # Over one second the interval is the operator's: no write again within it, even
        # in a new second (SPEC §6), and the stored time is that of the write.
        user = Unique.user("long")
        tok = make_token("HS256", claims_for(user), SECRET)
        warm(WEB_LONG.port)
        before = eval_calls()
        r = client_call("/client/update_user_status", tok, port=WEB_LONG.port)
        self.assertEqual(r.status, 200)
        first = int(stored(user)["active"])
        time.sleep(1.05 - (time.time() % 1.0))
        r = client_call("/client/update_user_status", tok, port=WEB_LONG.port)
        self.assertEqual((r.status, r.body), (200, OK))
        self.assertEqual(eval_calls() - before, 1)
        self.assertEqual(int(stored(user)["active"]), first)
        # a changed state is a different write: it goes through
        r = client_call("/client/update_user_status", tok, body=b'{"state":"away"}',
                        port=WEB_LONG.port)
        self.assertEqual(r.status, 200)
        self.assertEqual(stored(user)["state"], "away")

    def test_per_user(self):
        users = [Unique.user("peruser") for _ in range(5)]
        toks = [make_token("HS256", claims_for(u), SECRET) for u in users]
        for _ in range(3):
            for t in toks:
                self.assertEqual(client_call("/client/update_user_status", t).status, 200)
        for u in users:
            self.assertIn("active", stored(u))

    def test_off_when_zero(self):
        user = Unique.user("zero")
        tok = make_token("HS256", claims_for(user), SECRET)
        warm(WEB_ZERO.port)
        before = eval_calls()
        for _ in range(30):
            r = client_call("/client/update_user_status", tok, port=WEB_ZERO.port)
            self.assertEqual((r.status, r.body), (200, OK))
        self.assertEqual(eval_calls() - before, 30)



if __name__ == "__main__":
    unittest.main()
