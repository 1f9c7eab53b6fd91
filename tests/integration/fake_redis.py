"""A fake Redis for the tests of SPEC §3.8 ("a Redis is not trusted blindly"): a small
threaded RESP server on loopback that answers from a script, and otherwise relays every
command to a real redis-server, so that one ustatus worker can meet a hostile Redis and
then, on the same address, a correct one.

    fake = FakeRedis(upstream_port=real.port).start()
    fake.mode = "huge_array"     # every command is answered with *50000000
    ...
    fake.mode = "proxy"          # back to relaying to the real Redis

Modes (what the answer to each command of a connection is):
  proxy        the real Redis's reply
  huge_array   an array header of 50 million elements, then silence
  huge_bulk    a bulk header of a gigabyte, then 64 KiB chunks of it as fast as they go
  nested       array headers nested eight deep, each of 50 million elements
  drip         the real reply, one byte every drip_interval (0.5 s): valid, and every
               byte in time for a timeout that restarts on each read
  extra        the real reply and a second one nobody asked for, in one write
  wrong_type   a reply of another type than the command has (a bulk for an integer,
               an integer for an array)
  custom       handler(args) -> bytes, for anything else (CLUSTER SLOTS of a test)
Nothing here is a mock of ustatus: it plays the server, the part a hostile or broken
Redis would play.
"""
import socket
import threading
import time

import harness as h


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class _Stream:
    """Buffered reads of RESP from a socket: commands (arrays of bulks) and raw replies."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def command(self):
        """The next command as a list of bytes arguments."""
        head = self.line()
        if not head.startswith(b"*"):
            return head.split()  # inline command
        args = []
        for _ in range(int(head[1:])):
            n = int(self.line()[1:])
            args.append(self.exact(n + 2)[:-2])
        return args

    def raw_reply(self):
        """The next reply, as the bytes it came as."""
        line = self.line()
        out = line + b"\r\n"
        kind = line[:1]
        if kind == b"$" and int(line[1:]) >= 0:
            out += self.exact(int(line[1:]) + 2)
        elif kind == b"*" and int(line[1:]) > 0:
            for _ in range(int(line[1:])):
                out += self.raw_reply()
        return out


class FakeRedis:
    def __init__(self, upstream_port=None, handler=None, port=None):
        self.upstream_port = upstream_port
        self.handler = handler
        self.mode = "proxy"
        self.drip_interval = 0.5
        self.accepted = 0
        self.commands = []       # every command received, as lists of bytes
        self._lock = threading.Lock()
        self._conns = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self._stopped = False

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        h.on_exit(self.stop)
        return self

    def stop(self):
        self._stopped = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        upstream = None
        try:
            conn.settimeout(30)
            client = _Stream(conn)
            while True:
                args = client.command()
                with self._lock:
                    self.commands.append(args)
                mode = self.mode
                if mode == "custom":
                    conn.sendall(self.handler(args))
                    continue
                if mode == "huge_array":
                    conn.sendall(b"*50000000\r\n")
                    continue
                if mode == "nested":
                    conn.sendall(b"*50000000\r\n" * 8)
                    continue
                if mode == "huge_bulk":
                    conn.sendall(b"$1000000000\r\n")
                    chunk = b"x" * 65536
                    for _ in range(1000000000 // len(chunk)):
                        conn.sendall(chunk)  # ends when the client hangs up
                    continue
                if mode == "wrong_type":
                    name = args[0].upper() if args else b""
                    conn.sendall(b":1\r\n" if name in (b"GET", b"MGET", b"HMGET")
                                 else b"$2\r\nOK\r\n")
                    continue
                # proxy, drip, extra: the real reply first
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port),
                                                        timeout=10)
                    up = _Stream(upstream)
                upstream.sendall(encode(*args))
                reply = up.raw_reply()
                if mode == "drip":
                    for i in range(len(reply)):
                        time.sleep(self.drip_interval)
                        conn.sendall(reply[i:i + 1])
                elif mode == "extra":
                    conn.sendall(reply + b"+OK\r\n")
                else:
                    conn.sendall(reply)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            for s in (conn, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
