"""The data model in Redis (SPEC §2), store.c's job: one hash per user under
<prefix>.user_status.<user ID> with exactly those bytes, the TTL extended on every write,
times merged with max so they never go backwards, `state` kept / removed, the update
script reloaded after SCRIPT FLUSH and run once per group of users, and the order of the
commands of one request kept. Against a real redis-server, through a real lighttpd
spawning ustatus-fcgi.
"""
import os
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
        api("update_user_status", {"users": ["s1"], "state": ""})  # "": removed
        self.assertNotIn("state", st())
        self.assertIn("active", st())
        self.assertEqual(REDIS.command("HEXISTS", key_of("s1"), "state"), 0)

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
        for stored, sent in cases:
            with self.subTest(stored=stored):
                REDIS.command("DEL", key_of("ts"))
                REDIS.command("HSET", key_of("ts"), "active", stored, "online", stored)
                r = api("get_user_status", {"users": ["ts"]})
                if sent is None:
                    want = b'{"result":{"statuses":[{"user":"ts"}]}}'
                else:
                    want = (b'{"result":{"statuses":[{"user":"ts","active":' + sent +
                            b',"online":' + sent + b'}]}}')
                self.assertEqual(r.body, want)

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
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_online", {"users": ["t"]})
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)
        REDIS.command("EXPIRE", key_of("t"), 10)
        api("update_user_status", {"users": ["t"], "state": "x"})
        self.assertEqual(REDIS.command("TTL", key_of("t")), EXPIRE_S)

    def test_max_merge_never_lowers(self):
        future = int(time.time()) + 100000
        REDIS.command("HSET", key_of("m"), "active", future, "online", future)
        api("update_user_status", {"users": ["m"]})
        api("update_user_online", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertEqual((s["active"], s["online"]), (future, future))
        # an older stored value is raised
        REDIS.command("HSET", key_of("m"), "active", 1000)
        api("update_user_status", {"users": ["m"]})
        s = api("get_user_status", {"users": ["m"]}).json()["result"]["statuses"][0]
        self.assertGreater(s["active"], future - 100001)
        self.assertEqual(REDIS.command("TTL", key_of("m")), EXPIRE_S)

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
        self.assertEqual(REDIS.command("TTL", key_of("n2")), EXPIRE_S)

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
        for u in users:
            self.assertEqual(REDIS.command("TTL", key_of(u)), EXPIRE_S)
            self.assertEqual(REDIS.command("HGET", key_of(u), "state"), b"x")

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
        self.assertEqual(sorted(at.stored(REDIS, key_of("on"))), ["online"])
        self.assertEqual(REDIS.command("TTL", key_of("on")), EXPIRE_S)
        online = at.stored(REDIS, key_of("on"))["online"]
        # update_user_status sets active and leaves online as it was
        api("update_user_status", {"users": ["on"]})
        st = at.stored(REDIS, key_of("on"))
        self.assertEqual(sorted(st), ["active", "online"])
        self.assertEqual(st["online"], online)


if __name__ == "__main__":
    unittest.main(verbosity=2)
