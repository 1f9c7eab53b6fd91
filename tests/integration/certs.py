"""Certificates and TLS servers for the Redis TLS tests (SPEC §3.7), made with the openssl
command line and the real redis-server / redis-sentinel (Debian's are built with TLS).

Certs() writes, in a temporary directory removed at exit:
  ca.crt / ca.key           the test CA
  server.crt / server.key   signed by it, for 127.0.0.1 and localhost (SAN IP and DNS),
                            usable as a client certificate too (replication, cluster bus)
  client.crt / client.key   signed by it: ustatus's client certificate (mutual TLS)
  other-ca.crt              an unrelated CA: trusting only it must fail verification
  expired.crt               like server.crt (same key), valid in 2020 only (openssl ca
                            with -startdate/-enddate: `req -x509` of OpenSSL 3.0 has no
                            start date option)
"""
import json
import os
import socket
import ssl
import subprocess
import time

import harness as h


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr}")


class Certs:
    def __init__(self):
        self.dir = h.make_tmpdir("ustatus-certs-")
        d = self.dir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ("ca", "other-ca"):
            _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt",
                     "-days", "30", "-subj", f"/CN=ustatus test {name}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("[server]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    "[client]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        for name, ext, cn in (("server", "server", "localhost"), ("client", "client", "ustatus")):
            _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={cn}", cwd=d)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "30", "-extfile", "ext.cnf", "-extensions", ext,
                     "-out", f"{name}.crt", cwd=d)
        os.makedirs(os.path.join(d, "newcerts"))
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(f"[ca]\ndefault_ca=test\n[test]\ndir={d}\ndatabase=$dir/index.txt\n"
                    "new_certs_dir=$dir/newcerts\nserial=$dir/serial\ndefault_md=sha256\n"
                    "policy=any\nunique_subject=no\n[any]\ncommonName=supplied\n")
        _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                 "-in", "server.csr", "-out", "expired.crt", "-startdate", "20200101000000Z",
                 "-enddate", "20200201000000Z", "-extfile", "ext.cnf", "-extensions", "server",
                 "-notext", cwd=d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def pem(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def tls_object(self, ca="ca.crt", client=True, **extra):
        """Centrifugo's TLS object (SPEC §3.7) as a dict, PEMs inline."""
        t = {"enabled": True, "server_ca_pem": self.pem(ca)}
        if client:
            t["cert_pem"] = self.pem("client.crt")
            t["key_pem"] = self.pem("client.key")
        t.update(extra)
        return t

    def client_args(self):
        """redis-cli's TLS options: our client certificate, no verification (the tests'
        own tool, not the subject)."""
        return ["--tls", "--insecure", "--cert", self.path("client.crt"),
                "--key", self.path("client.key")]

    def server_args(self, cert="server.crt", auth_clients="optional"):
        return ["--tls-cert-file", self.path(cert), "--tls-key-file", self.path("server.key"),
                "--tls-ca-cert-file", self.path("ca.crt"), "--tls-auth-clients", auth_clients]


def json_config(directory, redis, name, key, extra=None):
    """A JSON configuration (PEM text is easiest to carry in JSON) with this redis section."""
    conf = {"http_api": {"key": key}, "user_status": {"expire_interval": "1h", "redis": redis}}
    conf.update(extra or {})
    return h.write_config(directory, json.dumps(conf, indent=1), name)


class TlsRedis(h.Redis):
    """A TLS-only redis-server (--port 0, --tls-port) on 127.0.0.1."""

    def __init__(self, certs, port=None, args=(), cert="server.crt", auth_clients="optional"):
        super().__init__(port, args)
        self.certs = certs
        self.tls_args = certs.server_args(cert, auth_clients)

    def start(self):
        argv = [h.which("redis-server"), "--port", "0", "--tls-port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log")] + self.tls_args + self.args
        self.proc = h.start_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise AssertionError("redis-server (TLS) does not answer PING")
            time.sleep(0.05)
        return self

    def cli(self, *args):
        r = subprocess.run([h.which("redis-cli"), *self.certs.client_args(), "-h", "127.0.0.1",
                            "-p", str(self.port), *args], capture_output=True, text=True,
                           timeout=20)
        return r.stdout.strip()

    def command(self, *args):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.certs.path("client.crt"), self.certs.path("client.key"))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                out = b"*%d\r\n" % len(args)
                for a in args:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                s.sendall(out)
                return h._read_resp(s.makefile("rb"))


def tls_sentinel(certs, master_port, port=None, **kw):
    """A redis-sentinel listening on TLS only, talking TLS to the data nodes."""
    port = port or h.free_port()
    extra = (f"port 0\ntls-port {port}\ntls-cert-file {certs.path('server.crt')}\n"
             f"tls-key-file {certs.path('server.key')}\n"
             f"tls-ca-cert-file {certs.path('ca.crt')}\ntls-auth-clients optional\n"
             "tls-replication yes\n")
    s = h.Sentinel(master_port, port=port, extra=extra + kw.pop("extra", ""), **kw)
    s.cli = lambda *args: subprocess.run(
        [h.which("redis-cli"), *certs.client_args(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=20).stdout.strip()
    return s


def check_api(test, api, exists, prefix, tag):
    """A representative run of the server API (SPEC §1: update with and without state,
    online, get, delete, batch, legacy) through `api`, checking the answers and, through
    exists(key) -> 0/1, what Redis holds."""
    import apitest as at
    u1, u2, nobody = at.Unique.user(tag), at.Unique.user(tag), at.Unique.user(tag + "-none")
    k1, k2 = at.key_of(u1, prefix), at.key_of(u2, prefix)
    test.assertEqual(api("update_user_status", {"users": [u1, u2]}).body, b'{"result":{}}')
    test.assertEqual((exists(k1), exists(k2)), (1, 1))
    test.assertEqual(api("update_user_status", {"users": [u1], "state": "away"}).body,
                     b'{"result":{}}')
    test.assertEqual(api("update_user_online", {"users": [u2]}).body, b'{"result":{}}')
    st = api.statuses([u1, u2, nobody])
    test.assertEqual([s["user"] for s in st], [u1, u2, nobody])
    test.assertEqual(st[0].get("state"), "away")
    test.assertIsInstance(st[0].get("active"), int)
    test.assertNotIn("state", st[1])
    test.assertIsInstance(st[1].get("online"), int)
    test.assertEqual(st[2], {"user": nobody})
    r = api.batch([{"get_user_status": {"users": [u1]}}, {"delete_user_status": {"users": [u2]}}])
    test.assertEqual(r.status, 200, r)
    replies = r.json()["replies"]
    test.assertEqual(replies[0]["get_user_status"]["statuses"][0]["state"], "away")
    test.assertEqual(replies[1], {"delete_user_status": {}})
    test.assertEqual(exists(k2), 0)
    r = api.legacy([json.dumps({"id": 7, "method": "get_user_status",
                                "params": {"users": [u1]}})])
    line = json.loads(r.body.splitlines()[0])
    test.assertEqual(line["id"], 7)
    test.assertEqual(line["result"]["statuses"][0]["state"], "away")
    test.assertEqual(api("delete_user_status", {"users": [u1]}).body, b'{"result":{}}')
    test.assertEqual(exists(k1), 0)
    test.assertEqual(api.statuses([u1]), [{"user": u1}])
