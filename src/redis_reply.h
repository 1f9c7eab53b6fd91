/* Redis replies without I/O (as hiredis keeps read.c apart from net.c): how a reply is
 * laid out in memory, how it is freed, and the pure parsers of the replies the
 * topologies read (Redis Cluster's CLUSTER SLOTS and redirections, Sentinel's master
 * address and +switch-master messages). Nothing here touches a socket, so all of it is
 * unit-tested and fuzzable from RESP bytes alone. */
#ifndef USTATUS_REDIS_REPLY_H
#define USTATUS_REDIS_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

/* ---- reply objects ---- */

/* The longest array any command of ours can be answered with: a CLUSTER SLOTS reply has
 * at most 16384 ranges, the others a few elements. A longer array header is a protocol
 * error before anything is allocated for it (SPEC §3.8): twelve bytes from a Redis must
 * not make a worker commit hundreds of megabytes. */
#define US_REPLY_MAX_ELEMENTS 65536

/* ---- what a reply may be (SPEC §3.8) ----
 * A Redis is not trusted blindly: every reply is read against the bounds of the command
 * it answers, and anything outside them is a protocol error before it is allocated (the
 * connection is then closed). The bounds come from the command itself
 * (us_reply_limits_for), so that no caller has to know them. */

/* A bulk, status or error string longer than this is refused, unless the command needs
 * more: a stored value is far smaller (a state is at most 256 bytes, a timestamp 20
 * digits, a user ID at most 1024 bytes), and no reply of a cluster or sentinel names
 * anything near it. */
#define US_REPLY_MAX_BULK (64 * 1024)

/* The memory one exchange with a node may fill with replies (the sum of the sizes of
 * their objects): ample for a get of 10000 users with their states, and no more. */
#define US_REPLY_MAX_EXCHANGE_BYTES (16 * 1024 * 1024)

/* Bits of us_reply_limits.types: 1 << REDIS_REPLY_x. An error reply is always accepted
 * (Redis may refuse any command). */
#define US_REPLY_T(t) (1u << (t))

typedef struct us_reply_limits {
    unsigned types;            /* accepted types of the reply itself (US_REPLY_T bits) */
    unsigned max_depth;        /* arrays nest at most this deep: 0 none, 1 flat, ... */
    size_t max_elements;       /* of the reply's own array */
    size_t max_nested;         /* of any array inside it */
    size_t max_bulk;           /* bytes of any one string */
    size_t max_bytes;          /* the memory of the whole reply */
} us_reply_limits;

/* The bounds of the reply to the RESP-encoded command cmd (len bytes, as
 * redisFormatCommand writes it): HMGET and MGET a flat array of one string or nil per
 * field or key; EVAL, EVALSHA, DEL, EXISTS, EXPIRE, WAIT an integer; AUTH, SELECT, CLIENT,
 * ASKING, PING a status; ROLE, CLUSTER SLOTS, SENTINEL and SUBSCRIBE what they return;
 * anything else (or bytes that are not a command) a small reply of any type. Pure;
 * returns out. */
const us_reply_limits *us_reply_limits_for(const char *cmd, size_t len, us_reply_limits *out);

/* The bounds of a message pushed on a subscription (["message", channel, payload]). */
extern const us_reply_limits us_reply_limits_push;

/* What a reader checks its next reply against (redis_conn.c points the reader's privdata
 * at one before each reply): limits, the bytes used so far, and why the reply was
 * refused ("" while it is not). */
typedef struct us_reply_guard {
    const us_reply_limits *limits;
    size_t bytes;
    char why[96];
} us_reply_guard;

/* Makes `rd` build its replies the way every node connection does (redis_conn.c calls
 * this on each new connection's reader, before the first reply): one allocation per
 * reply object with its bytes or element vector behind it, and every nil the same shared
 * object. The fields mean what they mean in hiredis (strings NUL-terminated, an empty
 * array has no vector), so code that reads replies is unchanged; only freeing differs:
 * such a reply is freed with us_reply_free, never with freeReplyObject.
 * When rd->privdata points at a us_reply_guard, each object is checked against its
 * limits before it is allocated; without one, only US_REPLY_MAX_ELEMENTS holds. A refused
 * object fails the reader (hiredis reports "out of memory"; the guard's why says what
 * was refused). */
void us_reply_reader_use(redisReader *rd);

/* A new hiredis reader that builds replies as a node connection does (above): for tests
 * and fuzzers that parse RESP bytes exactly as a connection would. NULL only when
 * hiredis is out of memory. Free with redisReaderFree; replies it hands out are the
 * caller's, freed with us_reply_free. */
redisReader *us_reply_reader_create(void);

/* Frees a reply built by such a reader, its elements included (the shared nil is never
 * freed). Replies are handed out as const (us_redis_cmd.reply, us_redis_node_command):
 * readers borrow them, and passing one to freeReplyObject(void *) is a compile error.
 * NULL is allowed. */
void us_reply_free(const redisReply *r);

/* ---- Redis Cluster replies ---- */

#define US_CLUSTER_SLOTS 16384

typedef struct us_slot_range {
    unsigned start, end;       /* inclusive, start <= end < 16384 */
    char host[256];
    int port;
} us_slot_range;

/* Reads a CLUSTER SLOTS reply into the master of each slot range. An empty or nil
 * endpoint means "the host this reply came from" (asked_host); a range whose endpoint is
 * "?" (unknown to the node itself) is left out and counted in *skipped. Fails on anything
 * malformed: a range out of bounds or backwards, a bad port, two ranges overlapping, or no
 * usable range at all. Returns the number of ranges with a new array in *out (caller
 * frees with free()), or -1 with *out NULL and a reason in err. r is only read. */
int us_cluster_slots_parse(const redisReply *r, const char *asked_host, us_slot_range **out,
                           size_t *skipped, char *err, size_t err_len);

typedef struct us_redirect {
    bool ask;                  /* ASK (one command) rather than MOVED (the slot moved) */
    unsigned slot;
    char host[256];            /* "" when the node left it out: the replying node's host */
    int port;
} us_redirect;

/* Parses "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host may be
 * empty, or an IPv6 address without brackets), reading exactly len bytes of s. Returns
 * 0 with *out filled, or -1 when the error is anything else or malformed. */
int us_cluster_parse_redirect(const char *s, size_t len, us_redirect *out);

/* ---- Sentinel replies ---- */

/* Reads a SENTINEL get-master-addr-by-name reply, [host, port], into host (NUL-terminated,
 * at most host_len - 1 bytes) and *port. Returns 0, or -1 when the reply is anything else
 * (a nil, an error, a wrong shape, an empty or too long host, a port outside 1..65535);
 * then host and *port are left alone. */
int us_sentinel_master_addr_parse(const redisReply *r, char *host, size_t host_len, int *port);

/* Whether a message pushed on a "+switch-master" subscription announces a new address for
 * the master called name (name_len bytes): ["message", "+switch-master",
 * "<name> <old ip> <old port> <new ip> <new port>"]. */
bool us_sentinel_is_switch_master(const redisReply *r, const char *name, size_t name_len);

#endif
