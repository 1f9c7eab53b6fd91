/* Unit tests for the topology facade: which implementation a redis section gets
 * (cluster_address over sentinel_address over address), that creating one connects to
 * nothing, the errors of a section that cannot work, us_topology_affinity, and the split
 * of sentinel/cluster list elements into addresses. No server needed.
 *
 * The implementation picked is seen from outside, through the affinity: a user's shard
 * over address_count, sentinel_address_count or cluster_address_count shards, with the
 * key's slot in it on a Redis Cluster. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/hash.h"
#include "ustatus/redis_address.h"
#include "ustatus/topology.h"

static char *addrs[4], *sentinels[4], *seeds[4];

/* A section as config.c leaves it with nothing configured but what the test adds. */
static us_redis_config section(size_t n_addr, size_t n_sentinel, size_t n_cluster)
{
    static char *fixed_addrs[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3",
                                  "127.0.0.1:4"};
    static char *fixed_sentinels[] = {"127.0.0.1:26379,127.0.0.1:26380", "127.0.0.1:26381",
                                      "127.0.0.1:26382", "127.0.0.1:26383"};
    static char *fixed_seeds[] = {"127.0.0.1:30001, 127.0.0.1:30002", "127.0.0.1:30004",
                                  "127.0.0.1:30007", "127.0.0.1:30010"};
    for (size_t i = 0; i < 4; i++) {
        addrs[i] = fixed_addrs[i];
        sentinels[i] = fixed_sentinels[i];
        seeds[i] = fixed_seeds[i];
    }
    return (us_redis_config){
        .address = addrs,
        .address_count = n_addr,
        .prefix = "centrifugo",
        .user = "",
        .password = "",
        .connect_timeout_ms = 1000,
        .io_timeout_ms = 4000,
        .sentinel_address = sentinels,
        .sentinel_address_count = n_sentinel,
        .sentinel_master_name = "mymaster",
        .sentinel_user = "",
        .sentinel_password = "",
        .cluster_address = seeds,
        .cluster_address_count = n_cluster,
    };
}

static us_topology *create_ok(const us_redis_config *rc)
{
    char err[256] = "";
    us_topology *t = us_topology_create(rc, err, sizeof err);
    ck_assert_msg(t != NULL, "refused: %s", err);
    return t;
}

static const char *create_fails(const us_redis_config *rc)
{
    static char err[256];
    err[0] = '\0';
    us_topology *t = us_topology_create(rc, err, sizeof err);
    ck_assert_msg(t == NULL, "accepted");
    ck_assert_msg(err[0] != '\0', "refused without a reason");
    return err;
}

/* Whether t routes by user over n shards, and by slot (a cluster) or not, for many
 * users and keys. */
static void assert_routing(const us_topology *t, size_t n, bool by_slot)
{
    for (int i = 0; i < 200; i++) {
        char user[16], key[32];
        int ul = snprintf(user, sizeof user, "user%d", i);
        int kl = snprintf(key, sizeof key, "centrifugo.status.user%d", i * 7);
        uint64_t want = us_shard_index(user, (size_t)ul, n);
        if (by_slot)
            want = want << 14 | us_cluster_slot(key, (size_t)kl);
        ck_assert_uint_eq(us_topology_affinity(t, user, (size_t)ul, key, (size_t)kl), want);
    }
}

/* ---- which topology ---- */

START_TEST(test_precedence)
{
    /* 3 addresses, 2 sentinel shards, 1 cluster: each picks a different shard count */
    us_redis_config rc = section(3, 2, 1);
    us_topology *t = create_ok(&rc);
    assert_routing(t, 1, true); /* cluster_address wins over both */
    us_topology_free(t);

    rc = section(3, 2, 4);
    t = create_ok(&rc);
    assert_routing(t, 4, true); /* several clusters: shard, then slot */
    us_topology_free(t);

    rc = section(3, 2, 0);
    t = create_ok(&rc);
    assert_routing(t, 2, false); /* sentinel_address wins over address */
    us_topology_free(t);

    rc = section(3, 0, 0);
    t = create_ok(&rc);
    assert_routing(t, 3, false);
    us_topology_free(t);

    rc = section(1, 0, 0);
    t = create_ok(&rc);
    assert_routing(t, 1, false);
    us_topology_free(t);

    us_topology_free(NULL);
}
END_TEST

/* The precedence is also the order of validation: what is not used is not checked. */
START_TEST(test_precedence_ignores_the_rest)
{
    us_redis_config rc = section(1, 1, 1);
    rc.sentinel_master_name = NULL; /* would be an error for a Sentinel topology */
    char *bad[] = {"no-port-here:x"};
    rc.address = bad;
    us_topology *t = create_ok(&rc);
    assert_routing(t, 1, true);
    us_topology_free(t);
}
END_TEST

/* Creation connects to nothing: every topology kind pointed at a listening socket leaves
 * it without a connection to accept. */
START_TEST(test_create_connects_to_nothing)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    char here[64];
    snprintf(here, sizeof here, "127.0.0.1:%d", ntohs(sa.sin_port));

    for (int kind = 0; kind < 3; kind++) {
        us_redis_config rc = section(kind == 0, kind == 1, kind == 2);
        addrs[0] = sentinels[0] = seeds[0] = here;
        us_topology *t = create_ok(&rc);
        ck_assert_int_lt(accept(fd, NULL, NULL), 0);
        ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "kind %d: %s", kind,
                      strerror(errno));
        us_topology_free(t);
    }
    close(fd);
}
END_TEST

/* An unreachable address is no error at creation: the service starts, and /health says
 * what is down. */
START_TEST(test_create_unreachable)
{
    us_redis_config rc = section(1, 0, 0);
    char *nowhere[] = {"unix:///nonexistent/ustatus.sock", "203.0.113.1:6379"};
    rc.address = nowhere;
    rc.address_count = 2;
    us_topology *t = create_ok(&rc);
    us_redis_cmd none[1];
    ck_assert_int_eq(us_topology_exec(t, none, 0), 0); /* nothing to send, nothing tried */
    us_topology_free(t);
}
END_TEST

/* ---- sections that cannot work ---- */

START_TEST(test_errors)
{
    us_redis_config rc = section(0, 0, 0);
    ck_assert_str_eq(create_fails(&rc), "redis address: no address configured");

    rc = section(2, 0, 0);
    char *bad[] = {"127.0.0.1:6379", "127.0.0.1:99999"};
    rc.address = bad;
    ck_assert_ptr_nonnull(strstr(create_fails(&rc), "redis address 2: "));

    rc = section(0, 1, 0);
    rc.sentinel_master_name = "";
    ck_assert_ptr_nonnull(strstr(create_fails(&rc), "sentinel_master_name"));
    rc.sentinel_master_name = NULL;
    ck_assert_ptr_nonnull(strstr(create_fails(&rc), "sentinel_master_name"));

    rc = section(0, 2, 0);
    sentinels[1] = " , ,";
    ck_assert_str_eq(create_fails(&rc), "redis sentinel_address 2: no sentinel address");
    sentinels[1] = "127.0.0.1:26379, 127.0.0.1:0";
    ck_assert_ptr_nonnull(strstr(create_fails(&rc), "redis sentinel_address 2: "));

    rc = section(0, 0, 2);
    seeds[0] = "";
    ck_assert_str_eq(create_fails(&rc), "redis cluster_address 1: no seed address");
    seeds[0] = "127.0.0.1:30001,[::1";
    ck_assert_ptr_nonnull(strstr(create_fails(&rc), "redis cluster_address 1: "));
}
END_TEST

/* ---- affinity ---- */

START_TEST(test_affinity)
{
    us_redis_config rc = section(4, 0, 0);
    us_topology *t = create_ok(&rc);
    /* shards: the user alone decides; the key does not matter */
    uint64_t a = us_topology_affinity(t, "alice", 5, "k1", 2);
    ck_assert_uint_eq(us_topology_affinity(t, "alice", 5, "other key", 9), a);
    ck_assert_uint_lt(a, 4);
    us_topology_free(t);

    rc = section(0, 0, 1);
    t = create_ok(&rc);
    /* a cluster: the same user and key, the same affinity; another slot, another one */
    a = us_topology_affinity(t, "alice", 5, "centrifugo.status.alice", 23);
    ck_assert_uint_eq(us_topology_affinity(t, "alice", 5, "centrifugo.status.alice", 23), a);
    ck_assert_uint_eq(a, us_cluster_slot("centrifugo.status.alice", 23));
    ck_assert_uint_ne(us_topology_affinity(t, "alice", 5, "foo", 3),
                      us_topology_affinity(t, "alice", 5, "bar", 3));
    /* a hash tag puts keys in one slot: one affinity */
    ck_assert_uint_eq(us_topology_affinity(t, "a", 1, "x{tag}1", 7),
                      us_topology_affinity(t, "b", 1, "y{tag}2", 7));
    us_topology_free(t);
}
END_TEST

/* ---- list elements ---- */

START_TEST(test_split_addresses)
{
    size_t n = 0;
    char **v = us_redis_address_split(" 10.0.0.1:26379,10.0.0.2:26379 ,, redis://u:p@h:1/2 ,",
                                      &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0], "10.0.0.1:26379");
    ck_assert_str_eq(v[1], "10.0.0.2:26379");
    ck_assert_str_eq(v[2], "redis://u:p@h:1/2");
    us_redis_address_split_free(v, n);
    v = us_redis_address_split("", &n);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(v);
    us_redis_address_split_free(v, n);
    v = us_redis_address_split("[::1]:6379", &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0], "[::1]:6379");
    us_redis_address_split_free(v, n);
    us_redis_address_split_free(NULL, 0);
}
END_TEST

static Suite *topology_suite(void)
{
    Suite *s = suite_create("topology");
    TCase *tc = tcase_create("create");
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_precedence_ignores_the_rest);
    tcase_add_test(tc, test_create_connects_to_nothing);
    tcase_add_test(tc, test_create_unreachable);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("affinity");
    tcase_add_test(tc, test_affinity);
    suite_add_tcase(s, tc);

    tc = tcase_create("addresses");
    tcase_add_test(tc, test_split_addresses);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(topology_suite)
