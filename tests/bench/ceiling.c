/* The benchmark's ceiling: the smallest FastCGI responder that does what any API
 * responder must do per request (accept, read the parameters and the whole body, write a
 * response), and nothing else. It answers every request with a fixed {"result":{}}.
 * Run under the same lighttpd configuration and process count as ustatus, its request
 * rate is what the plumbing (wrk, lighttpd, mod_fastcgi, libfcgi) allows on the machine.
 *
 * With a Redis port as argument it also makes one Redis round trip per request (the
 * HMGET of "get 1 user", reply discarded) on a connection kept open: the best any
 * responder that asks Redis once per request can do here.
 *
 * Built by tests/bench/run:  gcc -O2 -o ceiling-fcgi ceiling.c -lfcgi -lhiredis */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>
#include <hiredis/hiredis.h>

static const char response[] = "Status: 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "{\"result\":{}}";

static const char hmget[] = "*5\r\n$5\r\nHMGET\r\n"
                            "$29\r\ncentrifugo.user_status.100000\r\n"
                            "$6\r\nactive\r\n$6\r\nonline\r\n$5\r\nstate\r\n";

static void on_term(int sig)
{
    (void)sig;
    FCGX_ShutdownPending();
}

int main(int argc, char **argv)
{
    FCGX_Request req;
    char sink[16384];
    redisContext *redis = NULL;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    if (argc > 1) {
        redis = redisConnect("127.0.0.1", atoi(argv[1]));
        if (!redis || redis->err)
            return 1;
    }
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        /* Read what ustatus would read: the header it looks at and the whole body. */
        (void)FCGX_GetParam("HTTP_X_API_KEY", req.envp);
        while (FCGX_GetStr(sink, sizeof sink, req.in) > 0)
            ;
        if (redis) {
            void *reply = NULL;
            if (redisAppendFormattedCommand(redis, hmget, sizeof hmget - 1) != REDIS_OK ||
                redisGetReply(redis, &reply) != REDIS_OK)
                return 1;
            freeReplyObject(reply);
        }
        FCGX_PutStr(response, sizeof response - 1, req.out);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    redisFree(redis);
    return 0;
}
