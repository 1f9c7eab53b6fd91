"""Requests the integration tests make again and again, defined once: the server API
client (api(), ok(), statuses()), connection tokens, what a user's key holds in Redis,
and the bodies every JSON intake must refuse.
"""
import base64
import hashlib
import hmac
import json
import os
import time

import harness as h


def ok(r):
    """A server API answer that is a success: HTTP 200 and no error object."""
    return r.status == 200 and b'"error"' not in r.body


class Api:
    """The server API of the ustatus behind 127.0.0.1:port, authenticated by `key` in
    X-API-Key. api(method, body) POSTs <prefix>/<method>; `headers`, when given, replace
    the key header (Content-Type: application/json is always sent)."""

    def __init__(self, port, key, prefix="/api", timeout=30):
        self.port = port
        self.key = key
        self.prefix = prefix
        self.timeout = timeout

    def __call__(self, method, body, headers=None, query="", timeout=None, prefix=None):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update({"X-API-Key": self.key} if headers is None else headers)
        path = f"{self.prefix if prefix is None else prefix}/{method}"
        if query:
            path += "?" + query
        return h.http(self.port, "POST", path, body, hdrs, timeout=timeout or self.timeout)

    def json(self, method, body):
        """The decoded answer, which must come with HTTP 200."""
        r = self(method, body)
        assert r.status == 200, r
        return r.json()

    def result(self, method, body):
        """The result object of an answer that must be a success."""
        r = self(method, body)
        assert ok(r), r
        return r.json()["result"]

    def statuses(self, users):
        return self.result("get_user_status", {"users": users})["statuses"]

    def batch(self, commands, **fields):
        return self("batch", dict(fields, commands=commands))

    def legacy(self, lines):
        """The legacy form: POST <prefix> with one JSON request per line."""
        body = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
        return h.http(self.port, "POST", self.prefix, body,
                      {"X-API-Key": self.key, "Content-Type": "application/json"},
                      timeout=self.timeout)


# ---- Redis ----

def key_of(user, prefix="it"):
    """The Redis key of a user's status under redis.prefix = prefix (SPEC §2)."""
    return prefix.encode() + b".user_status." + user.encode()


def assert_ttl(test, redis, key, seconds):
    """key's expiry was just set to `seconds`: Redis rounds TTL to the nearest second, so
    half a second after the write it reads one less, and a loaded machine may take that
    long between the write and the check; two seconds of slack tell a fresh expiry from
    any other the tests use (they differ by minutes or more)."""
    ttl = int(redis.command("TTL", key))
    test.assertTrue(seconds - 2 <= ttl <= seconds, f"TTL of {key!r}: {ttl}, expected {seconds}")


def stored(redis, key):
    """The status at `key` as {field: str}, {} when there is no key: the v2 string
    "v2:<active>:<online>[:<state>]" (README, "Data in Redis"); fails on anything else."""
    raw = redis.command("GET", key)
    if raw is None:
        return {}
    assert raw.startswith(b"v2:"), raw
    parts = raw[3:].split(b":", 2)
    assert len(parts) in (2, 3) and all(p.isdigit() or p == b"" for p in parts[:2]), raw
    out = {f: v.decode() for f, v in zip(("active", "online"), parts) if v}
    if len(parts) == 3:
        out["state"] = parts[2].decode()
    return out


def script_calls(redis):
    """How many scripts the Redis server has run (EVAL and EVALSHA)."""
    n = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            n += int(line.split("calls=")[1].split(",")[0])
    return n


class Unique:
    """User IDs unused so far, so that 'no write' is simply 'no key'."""
    n = 0

    @classmethod
    def user(cls, tag):
        cls.n += 1
        return f"{tag}-{os.getpid()}-{cls.n}"


# ---- connection tokens ----

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(secret, claims):
    """A Centrifugo connection JWT (HS256) carrying `claims`."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def hs256_for(secret, user, ttl=600):
    return hs256(secret, {"sub": user, "exp": int(time.time()) + ttl})


# ---- one JSON intake (SPEC §1.2): what every endpoint that reads JSON must refuse ----

def bad_json_bodies(good):
    """(what, body) pairs made from the JSON object `good` (bytes, ending in '}' after a
    string member): each is refused by a strict JSON reader. `good` must hold a string
    value "<S>" where the control characters go, e.g. b'{"users":["<S>"]}'."""
    assert good.endswith(b"}") and b"<S>" in good, good
    plain = good.replace(b"<S>", b"s")
    member = lambda v: plain[:-1] + b',"x":' + v + b"}"  # noqa: E731
    return [
        ("NaN", member(b"NaN")),
        ("Infinity", member(b"Infinity")),
        ("-Infinity", member(b"-Infinity")),
        ("a raw 0x01 in a string", good.replace(b"<S>", b"a\x01b")),
        ("a raw newline in a string", good.replace(b"<S>", b"a\nb")),
        ("a raw tab in a string", good.replace(b"<S>", b"a\tb")),
        ("trailing garbage", plain + b" x"),
        ("a second value", plain + b" {}"),
    ]


def assert_bad_request(test, r, what):
    """HTTP 400 with {"error":{"code":107,"message":"bad request","details":"..."}}."""
    test.assertEqual(r.status, 400, (what, r))
    j = r.json()
    test.assertEqual(sorted(j), ["error"], (what, r))
    test.assertEqual(j["error"]["code"], 107, (what, r))
    test.assertEqual(j["error"]["message"], "bad request", (what, r))
    test.assertIsInstance(j["error"].get("details"), str, (what, r))
    test.assertTrue(j["error"]["details"], (what, r))
