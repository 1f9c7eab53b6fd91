/* libFuzzer target: FastCGI/CGI parameters and stdin -> us_http_request -> response
 * (fcgi/adapter.c's us_adapter_serve over the real application of fuzz_common.h).
 *
 * Input: one flags byte, then parameter lines "NAME=VALUE\n" up to an empty line, then
 * the body, which the read callback hands out in chunks.
 *   flags bits 0-2  chunk size: 1 2 3 7 64 1000 4096 65536
 *         bit 3     the read callback fails (-1) at the end of the body instead of 0
 *         bit 4     the write callback fails
 * Checked besides the sanitizers: the adapter never reads after the body's end or an
 * error, never asks for more than the chunk it was given room for, and what it writes
 * (when it returns 0) begins with a "Status: " line and has the blank line ending the
 * head. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "fuzz_common.h"

#define MAX_PARAMS 64

struct fuzz_io {
    char *names[MAX_PARAMS];
    char *values[MAX_PARAMS];
    size_t nparams;
    const char *body;
    size_t body_len, body_off;
    size_t chunk;
    int read_fails, write_fails;
    int ended; /* the read callback has reported the end or an error */
    us_buf out;
};

static us_app *app;
static us_adapter adapter;

static const char *io_getparam(void *ctx, const char *name)
{
    struct fuzz_io *io = ctx;
    for (size_t i = 0; i < io->nparams; i++)
        if (strcmp(io->names[i], name) == 0)
            return io->values[i];
    return NULL;
}

static long io_read(void *ctx, char *buf, size_t n)
{
    struct fuzz_io *io = ctx;
    if (io->ended)
        abort(); /* read again after the end or an error */
    size_t left = io->body_len - io->body_off;
    if (left == 0) {
        io->ended = 1;
        return io->read_fails ? -1 : 0;
    }
    size_t k = n < io->chunk ? n : io->chunk;
    if (k > left)
        k = left;
    /* Touch both ends of the room the caller claims to have: ASan checks them. */
    if (n) {
        buf[0] = (char)0xA5;
        buf[n - 1] = (char)0xA5;
    }
    memcpy(buf, io->body + io->body_off, k);
    io->body_off += k;
    return (long)k;
}

static int io_write(void *ctx, const char *buf, size_t n)
{
    struct fuzz_io *io = ctx;
    if (io->write_fails)
        return -1;
    us_buf_append(&io->out, buf, n);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    app = fuzz_app_open();
    us_adapter_init(&adapter);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[] = {1, 2, 3, 7, 64, 1000, 4096, 65536};
    if (size < 1)
        return 0;
    struct fuzz_io io = {0};
    io.chunk = chunks[data[0] & 7];
    io.read_fails = (data[0] & 8) != 0;
    io.write_fails = (data[0] & 16) != 0;
    data++;
    size--;

    /* Parameter lines up to an empty line. */
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        if (end == off) { /* the empty line */
            off = end + 1;
            break;
        }
        if (io.nparams < MAX_PARAMS) {
            char *line = fuzz_dup_str(data + off, end - off);
            char *eq = strchr(line, '=');
            if (eq) {
                *eq = '\0';
                io.names[io.nparams] = line;
                io.values[io.nparams] = eq + 1;
                io.nparams++;
            } else {
                free(line);
            }
        }
        off = end + 1;
    }
    char *body = fuzz_dup_exact(off < size ? data + off : data, off < size ? size - off : 0);
    io.body = body;
    io.body_len = off < size ? size - off : 0;

    us_cgi_io cgi = {.getparam = io_getparam, .read = io_read, .write = io_write, .ctx = &io};
    int rc = us_adapter_serve(&adapter, app, &cgi);
    if (rc == 0) {
        if (io.out.len < 8 || memcmp(io.out.data, "Status: ", 8) != 0)
            abort();
        if (!memmem(io.out.data, io.out.len, "\r\n\r\n", 4))
            abort();
    } else if (!io.write_fails && !(io.read_fails && io.ended)) {
        abort(); /* -1 without an I/O failure */
    }

    us_buf_free(&io.out);
    free(body);
    for (size_t i = 0; i < io.nparams; i++)
        free(io.names[i]);
    return 0;
}
