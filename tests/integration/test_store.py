"""The data model in Redis (SPEC §2), store.c's job: one string per user under
<prefix>.user_status.<user ID> with exactly those bytes, holding
"v2:<active>:<online>[:<state>]" (README, "Data in Redis"), the TTL extended on every
write, times merged with max so they never go backwards, `state` kept / removed, the
update script reloaded after SCRIPT FLUSH and run once per group of users, one MGET per
group of users read, the order of the commands of one request kept; hashes written by
0.1.0 read, merged and converted by the next write, deleted; any other value read as
unknown and replaced by the next write. Against a real redis-server, through a real
lighttpd spawning ustatus-fcgi.
"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
import harness as h  # noqa: E402

KEY = "store-key-c41d"
EXPIRE_S = 3600


def setUpModule():
    global REDIS, WEB, TMP, api
    TMP = h.make_tmpdir("ustatus-store-")
    REDIS = h.Redis().start()
    conf = h.write_config(TMP, f"""
http_api {{ key = "{KEY}" }}
user_status {{
  expire_interval = "1h"
  max_users_per_request = 2000
  redis {{ address = "127.0.0.1:{REDIS.port}" prefix = "it" io_timeout = "1s" }}
}}
""")
    WEB = h.Lighttpd(conf).start()
    api = at.Api(WEB.port, KEY)


def tearDownModule():
    h.tear_down_module(WEB, REDIS, dirs=[TMP])


key_of = at.key_of


def stored(key):
    """The v2 string at `key` as {field: str} ({} when there is no key)."""
    return at.stored(REDIS, key)


def pipeline(*commands):
    """Several commands on one connection, written at once: their replies, in order (an
    error reply as a RuntimeError object). Checks of many keys take milliseconds, not
    the second a TTL check could straddle."""
    out = b""
    for args in commands:
        out += b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", REDIS.port), timeout=5) as s:
        s.sendall(out)
        f = s.makefile("rb")
        replies = []
        for _ in commands:
            try:
                replies.append(h._read_resp(f))
            except RuntimeError as e:
                replies.append(e)
        return replies


def cmdstat(name):
    """How many times Redis ran the command `name` (INFO commandstats)."""
    for line in REDIS.cli("INFO", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{name}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def legacy_hash(user, ttl=100, **fields):
    """A status as 0.1.0 wrote it: a hash, and an EXPIRE."""
    args = [x for kv in fields.items() for x in kv]
    REDIS.command("HSET", key_of(user), *args)
    REDIS.command("EXPIRE", key_of(user), ttl)


class Store(unittest.TestCase):
    def setUp(self):
        REDIS.cli("FLUSHALL")

    def test_state(self):
        api("update_user_status", {"users": ["s1"], "state": "away"})
        st = lambda: api("get_user_status", {"users": ["s1"]}).json()["result"]["statuses"][0]
        self.assertEqual(st()["state"], "away")
        api("update_user_status", {"users": ["s1"]})  # absent: kept
        self.assertEqual(st()["state"], "away")
        api("update_user_status", {"users": ["s1"], "state": "dnd \"quoted\" ü"})
        self.assertEqual(st()["state"], "dnd \"quoted\" ü")
        api("update_user_status", {"users": ["s1"], "state": "a:b:c\n"})  # separators
        self.assertEqual(st()["state"], "a:b:c\n")
        self.assertEqual(stored(key_of("s1"))["state"], "a:b:c\n")
        api("update_user_status", {"users": ["s1"], "state": ""})  # "": removed
        self.assertNotIn("state", st())
        self.assertIn("active", st())
        self.assertNotIn("state", stored(key_of("s1")))

    def test_value_encoding(self):
        # The exact bytes README documents: "v2:<active>:<online>[:<state>]".
        t0 = int(time.time())
        api("update_user_status", {"users": ["e"]})
        raw = REDIS.command("GET", key_of("e"))
        self.assertRegex(raw, rb"^v2:\d{10}:$")
        self.assertGreaterEqual(int(raw[3:-1]), t0)
        api("update_user_online", {"users": ["e"]})
        self.assertRegex(REDIS.command("GET", key_of("e")), rb"^v2:\d{10}:\d{10}$")
        api("update_user_status", {"users": ["e"], "state": "x:y"})
        self.assertRegex(REDIS.command("GET", key_of("e")), rb"^v2:\d{10}:\d{10}:x:y$")
        self.assertEqual(REDIS.command("TYPE", key_of("e")), "string")
        # a stored value written by hand is read exactly so
        REDIS.command("SET", key_of("e"), b"v2::17:")
        self.assertEqual(api("get_user_status", {"users": ["e"]}).body,
                         b'{"result":{"statuses":[{"user":"e","online":17,"state":""}]}}')

    def test_odd_stored_timestamps(self):
        # Someone else wrote these fields: only a positive int64 in decimal is a time, and
        # it is sent as a valid JSON integer (no leading zeros) whatever its stored form.
        cases = [
            ("007", b"7"),
            ("0000000000000000001", b"1"),  # 19 characters
            ("9223372036854775807", b"9223372036854775807"),
            ("9223372036854775808", None),
            ("99999999999999999999", None),
            ("00000000000000000001", None),  # 20 characters
            ("0", None),
            ("000", None),
            ("", None),
            ("12a", None),
            ("-5", None),
            (" 5", None),
        ]
        for form in ("v2", "0.1.0 hash"):
            for value, sent in cases:
                with self.subTest(form=form, stored=value):
                    REDIS.command("DEL", key_of("ts"))
                    if form == "v2":
                        REDIS.command("SET", key_of("ts"), f"v2:{value}:{value}")
                    else:
                        REDIS.command("HSET", key_of("ts"), "active", value, "online", value)
                    r = api("get_user_status", {"users": ["ts"]})
                    if sent is None:
                        want = b'{"result":{"statuses":[{"user":"ts"}]}}'
                    else:
                        want = (b'{"result":{"statuses":[{"user":"ts","active":' + sent +
                                b',"online":' + sent + b'}]}}')
                    self.assertEqual(r.body, want)
                    # the update script reads it the same way: a time it keeps is one the
                    # reader shows; anything else is replaced by now
                    t0 = int(time.time())
                    api("update_user_status", {"users": ["ts"]})
                    st = stored(key_of("ts"))
                    if sent is None or int(sent) < t0:
                        self.assertGreaterEqual(int(st["active"]), t0)
                    else:
                        self.assertEqual(st["active"], value)
                    self.assertEqual("online" in st, sent is not None)

    def test_delete_removes_everything(self):
        api("update_user_status", {"users": ["d1", "d2"], "state": "x"})
        api("update_user_online", {"users": ["d1"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("d1")), 1)
        api("delete_user_status", {"users": ["d1", "d2"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("d1")), 0)
        self.assertEqual(REDIS.command("EXISTS", key_of("d2")), 0)
        r = api("get_user_status", {"users": ["d1"]})
        self.assertEqual(r.body, b'{"result":{"statuses":[{"user":"d1"}]}}')

    def test_ttl_extended_on_every_write(self):
        api("update_user_status", {"users": ["t"]})
        at.assert_ttl(self, REDIS, key_of("t"), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_online", {"users": ["t"]})
        at.assert_ttl(self, REDIS, key_of("t"), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_status", {"users": ["t"], "state": "x"})
        at.assert_ttl(self, REDIS, key_of("t"), EXPIRE_S)

    def test_max_merge_never_lowers(self):
        future = int(time.time()) + 100000
        REDIS.command("SET", key_of("m"), f"v2:{future}:{future}:st")
        api("update_user_status", {"users": ["m"]})
        api("update_user_online", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertEqual((s["active"], s["online"], s["state"]), (future, future, "st"))
        # the state of a write is applied even when its time is older
        api("update_user_status", {"users": ["m"], "state": "new"})
        self.assertEqual(stored(key_of("m")),
                         {"active": str(future), "online": str(future), "state": "new"})
        # an older stored value is raised
        REDIS.command("SET", key_of("m"), f"v2:1000:{future}")
        api("update_user_status", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertGreater(s["active"], future - 100001)
        at.assert_ttl(self, REDIS, key_of("m"), EXPIRE_S)

    def test_user_ids_round_trip_and_never_collide(self):
        users = ["with space", 'quo"te', "back\\slash", "юникод 😀", "a.b", "a", "a ",
                 "x" * 1024, "x" * 1023, "tab\there", "{tag}1", "\u2028sep", "new\nline"]
        r = api("update_user_status", {"users": users, "state": "here"})
        self.assertEqual(r.body, b'{"result":{}}')
        keys = sorted(REDIS.command("KEYS", "it.user_status.*"))
        self.assertEqual(keys, sorted(key_of(u) for u in users))
        r = api("get_user_status", {"users": users + ["x" * 1022]})
        st = r.json()["result"]["statuses"]
        self.assertEqual([s["user"] for s in st], users + ["x" * 1022])
        self.assertTrue(all("active" in s for s in st[:-1]))
        self.assertNotIn("active", st[-1])
        api("delete_user_status", {"users": ["a"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("a ")), 1)

    def test_noscript_reload(self):
        api("update_user_status", {"users": ["n"]})
        REDIS.cli("SCRIPT", "FLUSH")
        REDIS.cli("DEL", "it.user_status.n")
        r = api("update_user_status", {"users": ["n", "n2"]})
        self.assertEqual(r.body, b'{"result":{}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("n")), 1)
        at.assert_ttl(self, REDIS, key_of("n2"), EXPIRE_S)

    def test_one_script_call_per_group_of_users(self):
        # Redis runs the update script once per 100 users of a node, not once per user.
        def evalsha_calls():
            for line in REDIS.cli("INFO", "commandstats").splitlines():
                if line.startswith("cmdstat_evalsha:"):
                    return int(line.split("calls=")[1].split(",")[0])
            return 0
        api("update_user_status", {"users": ["warm"]})  # the script is loaded
        before = evalsha_calls()
        users = [f"g{i}" for i in range(250)]
        self.assertEqual(api("update_user_status", {"users": users, "state": "x"}).body,
                         b'{"result":{}}')
        self.assertEqual(evalsha_calls() - before, 3)
        ttls = pipeline(*[("TTL", key_of(u)) for u in users])
        self.assertEqual(len(ttls), 250)
        self.assertTrue(all(EXPIRE_S - 2 <= t <= EXPIRE_S for t in ttls), ttls)
        for u in users:
            self.assertEqual(stored(key_of(u))["state"], "x")

    def test_order_kept_inside_a_request(self):
        # Writes are grouped only where no get or delete stands between them.
        body = {"commands": [
            {"update_user_status": {"users": ["o1", "o2"]}},
            {"delete_user_status": {"users": ["o1"]}},
            {"get_user_status": {"users": ["o1", "o2"]}},
            {"update_user_online": {"users": ["o1"]}},
            {"update_user_status": {"users": ["o2"], "state": "s"}},
            {"get_user_status": {"users": ["o1", "o2"]}},
        ]}
        rep = api("batch", body).json()["replies"]
        first = rep[2]["get_user_status"]["statuses"]
        self.assertEqual(first[0], {"user": "o1"})
        self.assertIn("active", first[1])
        last = rep[5]["get_user_status"]["statuses"]
        self.assertIn("online", last[0])
        self.assertNotIn("active", last[0])
        self.assertEqual(last[1]["state"], "s")

    def test_reads_write_nothing(self):
        # get_user_status neither creates a key nor extends a TTL; deleting an unknown
        # user is no error and creates nothing.
        r = api("get_user_status", {"users": ["nobody"]})
        self.assertEqual(r.body, b'{"result":{"statuses":[{"user":"nobody"}]}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("nobody")), 0)
        api("update_user_status", {"users": ["r"]})
        REDIS.command("EXPIRE", key_of("r"), 100)
        self.assertIn("active", api.statuses(["r"])[0])
        self.assertLessEqual(REDIS.command("TTL", key_of("r")), 100)
        self.assertEqual(api("delete_user_status", {"users": ["nobody"]}).body, b'{"result":{}}')
        self.assertEqual(REDIS.command("EXISTS", key_of("nobody")), 0)
        self.assertEqual(REDIS.command("KEYS", "*"), [key_of("r")])

    def test_online_sets_online_only(self):
        api("update_user_online", {"users": ["on"]})
        self.assertEqual(sorted(stored(key_of("on"))), ["online"])
        at.assert_ttl(self, REDIS, key_of("on"), EXPIRE_S)
        online = stored(key_of("on"))["online"]
        # update_user_status sets active and leaves online as it was
        api("update_user_status", {"users": ["on"]})
        st = stored(key_of("on"))
        self.assertEqual(sorted(st), ["active", "online"])
        self.assertEqual(st["online"], online)

    def test_one_mget_per_group_of_users(self):
        # A bulk read is one MGET per 1000 users of a node: no per-user command. Users
        # nobody wrote cost one EXISTS per MGET more, and no per-user command either.
        users = [f"b{i}" for i in range(1500)]
        api("update_user_status", {"users": users[:1400]})
        before = {c: cmdstat(c) for c in ("mget", "get", "hmget", "exists")}
        st = api.statuses(users)
        self.assertEqual([s["user"] for s in st], users)
        self.assertTrue(all("active" in s for s in st[:1400]))
        self.assertTrue(all(s == {"user": u} for s, u in zip(st[1400:], users[1400:])))
        after = {c: cmdstat(c) for c in before}
        self.assertEqual({c: after[c] - before[c] for c in before},
                         {"mget": 2, "get": 0, "hmget": 0, "exists": 1})
        # one user: one GET; a delete of many: one DEL
        api.statuses(["b0"])
        self.assertEqual((cmdstat("get"), cmdstat("mget")), (after["get"] + 1, after["mget"]))
        dels = cmdstat("del")
        api("delete_user_status", {"users": users})
        self.assertEqual(cmdstat("del") - dels, 2)
        self.assertEqual(REDIS.command("KEYS", "it.user_status.b*"), [])

    def test_hash_of_0_1_0_read_merged_converted_deleted(self):
        # 0.1.0 kept a hash per user. get answers from it as 0.1.0 did; the next write
        # merges it (max of the times, state kept or replaced) into a v2 string with the
        # full TTL; delete deletes it.
        future = int(time.time()) + 100000
        legacy_hash("h1", active=1000, online=future, state="away:now")
        legacy_hash("h2", active=1234)
        legacy_hash("h3", active=55, online=66, state="s")
        r = api("get_user_status", {"users": ["h1", "h2", "h3", "none"]})
        self.assertEqual(r.body, (b'{"result":{"statuses":['
                                  b'{"user":"h1","active":1000,"online":%d,"state":"away:now"},'
                                  b'{"user":"h2","active":1234},'
                                  b'{"user":"h3","active":55,"online":66,"state":"s"},'
                                  b'{"user":"none"}]}}' % future))
        t0 = int(time.time())
        api("update_user_online", {"users": ["h1", "h2"]})
        self.assertEqual(REDIS.command("TYPE", key_of("h1")), "string")
        self.assertEqual(stored(key_of("h1")),
                         {"active": "1000", "online": str(future), "state": "away:now"})
        st2 = stored(key_of("h2"))
        self.assertEqual(st2["active"], "1234")
        self.assertGreaterEqual(int(st2["online"]), t0)
        self.assertEqual(sorted(st2), ["active", "online"])
        for u in ("h1", "h2"):
            at.assert_ttl(self, REDIS, key_of(u), EXPIRE_S)
        api("update_user_status", {"users": ["h1"], "state": ""})
        st1 = stored(key_of("h1"))
        self.assertGreaterEqual(int(st1["active"]), t0)
        self.assertNotIn("state", st1)
        api("delete_user_status", {"users": ["h3"]})
        self.assertEqual(REDIS.command("EXISTS", key_of("h3")), 0)
        self.assertEqual(api.statuses(["h3"]), [{"user": "h3"}])

    def test_hash_of_0_1_0_read_in_order_inside_a_batch(self):
        # A get of a 0.1.0 hash, then a write of the same user, then a get: the first get
        # answers the hash as it was, the second the converted, merged value.
        legacy_hash("bh", active=500, online=600, state="before")
        REDIS.command("SET", key_of("bg"), "junk")
        body = {"commands": [
            {"get_user_status": {"users": ["bh", "bg", "bn"]}},
            {"update_user_status": {"users": ["bh", "bg", "bn"], "state": "after"}},
            {"get_user_status": {"users": ["bh", "bg", "bn"]}},
            {"delete_user_status": {"users": ["bh"]}},
        ]}
        rep = api("batch", body).json()["replies"]
        self.assertEqual(rep[0]["get_user_status"]["statuses"], [
            {"user": "bh", "active": 500, "online": 600, "state": "before"},
            {"user": "bg"}, {"user": "bn"}])
        after = rep[2]["get_user_status"]["statuses"]
        self.assertEqual([(s["user"], s["state"]) for s in after],
                         [("bh", "after"), ("bg", "after"), ("bn", "after")])
        self.assertEqual(after[0]["online"], 600)
        self.assertGreater(after[0]["active"], 600)
        self.assertEqual(REDIS.command("EXISTS", key_of("bh")), 0)

    def test_hashes_of_0_1_0_among_many_users(self):
        # A bulk read where a few keys are still hashes, most are strings, some absent:
        # every status right, in order, duplicates repeated.
        users = [f"mix{i}" for i in range(300)]
        api("update_user_status", {"users": users[:200], "state": "new"})
        for i in range(0, 300, 37):
            REDIS.command("DEL", key_of(users[i]))
            legacy_hash(users[i], active=100 + i, state=f"old{i}")
        st = api.statuses(users + [users[37], users[1]])
        self.assertEqual(len(st), 302)
        for i, s in enumerate(st[:300]):
            if i % 37 == 0:
                self.assertEqual(s, {"user": users[i], "active": 100 + i, "state": f"old{i}"})
            elif i < 200:
                self.assertEqual((s["user"], s["state"]), (users[i], "new"))
            else:
                self.assertEqual(s, {"user": users[i]})
        self.assertEqual(st[300], st[37])
        self.assertEqual(st[301], st[1])
        # one update converts them all
        api("update_user_online", {"users": users})
        self.assertEqual({REDIS.command("TYPE", key_of(u)) for u in users}, {"string"})
        self.assertEqual(stored(key_of(users[74]))["state"], "old74")

    def test_other_values_read_as_unknown_and_replaced(self):
        # Values no version of ustatus wrote: no crash, no error, unknown; the next write
        # replaces them with a v2 string.
        values = [b"garbage", b"", b"v2", b"v2:", b"v2:12", b"v2:x:5", b"v2:5:y",
                  b"v3:1:2", b"v2:1:2x:s", b"\xff\x00v2:1:2", b"v2:1 :2"]
        others = [("RPUSH", "l"), ("SADD", "m"), ("ZADD", "1", "z")]
        users = [f"g{i}" for i in range(len(values) + len(others))]
        for u, v in zip(users, values):
            REDIS.command("SET", key_of(u), v)
        for u, cmd in zip(users[len(values):], others):
            REDIS.command(cmd[0], key_of(u), *cmd[1:])
        for batch in (users, users[:1], users[-1:]):
            r = api("get_user_status", {"users": batch})
            self.assertEqual(r.json(), {"result": {"statuses": [{"user": u} for u in batch]}})
        t0 = int(time.time())
        api("update_user_status", {"users": users, "state": "fresh"})
        for u in users:
            st = stored(key_of(u))
            self.assertGreaterEqual(int(st["active"]), t0)
            self.assertEqual((sorted(st), st["state"]), (["active", "state"], "fresh"))
            at.assert_ttl(self, REDIS, key_of(u), EXPIRE_S)


if __name__ == "__main__":
    unittest.main(verbosity=2)
