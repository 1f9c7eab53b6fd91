/* libFuzzer target: the configuration loader (us_config_load) on a file in either syntax
 * and with USTATUS_ / CENTRIFUGO_ environment overrides; everything freed each time.
 *
 * Input: one selector byte, then the file's text up to the first NUL byte, then the
 * environment: lines "NAME=VALUE"; a NAME that starts with neither USTATUS_ nor
 * CENTRIFUGO_ gets USTATUS_ in front.
 *   selector bit 0  1 = the file is named *.json (JSON), 0 = *.conf (libconfuse syntax)
 *            bit 1  1 = no file at all (defaults, then the environment)
 * Inputs naming a *_pem_file are skipped: reading files is not parsing, and a fuzzer
 * that finds /dev/zero would only measure the disk.
 * Checked besides the sanitizers: NULL comes with a one-line reason; a loaded
 * configuration has its documented invariants (a store section; handler prefixes that are
 * "" or start with '/' and do not end with one). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"

#define MAX_VARS 32

extern char **environ;

static int mentions_file_option(const uint8_t *data, size_t size)
{
    static const char needle[] = "pem_file";
    const size_t n = sizeof needle - 1;
    for (size_t i = 0; i + n <= size; i++)
        if (strncasecmp((const char *)data + i, needle, n) == 0)
            return 1;
    return 0;
}

/* Removes every USTATUS_* and CENTRIFUGO_* variable. */
static void clear_env(void)
{
    for (;;) {
        char name[512] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "USTATUS_", 8) == 0 || strncmp(*e, "CENTRIFUGO_", 11) == 0) {
                size_t n = strcspn(*e, "=");
                if (n >= sizeof name)
                    n = sizeof name - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        }
        if (!name[0])
            return;
        if (unsetenv(name) != 0)
            abort();
    }
}

static void check_prefix(const char *p)
{
    /* "" is the root ("/" as written); else '/' first and never last. */
    size_t n = strlen(p);
    if (n > 0 && (p[0] != '/' || p[n - 1] == '/'))
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    clear_env();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || mentions_file_option(data, size))
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;

    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    size_t env_off = nul ? text_len + 1 : size;

    /* The environment. */
    size_t nvars = 0;
    for (size_t off = env_off; off < size && nvars < MAX_VARS;) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        char *line = fuzz_dup_str(data + off, end - off);
        char *eq = strchr(line, '=');
        if (eq && eq != line) {
            *eq = '\0';
            char name[600];
            if (strncmp(line, "USTATUS_", 8) == 0 || strncmp(line, "CENTRIFUGO_", 11) == 0)
                snprintf(name, sizeof name, "%.500s", line);
            else
                snprintf(name, sizeof name, "USTATUS_%.500s", line);
            if (setenv(name, eq + 1, 1) == 0)
                nvars++;
        }
        free(line);
        off = end + 1;
    }

    char *path = NULL;
    if (!(sel & 2))
        path = fuzz_temp_file((const char *)data, text_len, (sel & 1) ? ".json" : ".conf");
    char err[512];
    memset(err, 'x', sizeof err);
    err[0] = '\0';
    us_config *cfg = us_config_load(path, err, sizeof err);
    if (!cfg) {
        size_t n = strnlen(err, sizeof err);
        if (n == 0 || n == sizeof err || memchr(err, '\n', n))
            abort(); /* no reason, or not one line */
    } else {
        if (!us_config_store_redis(cfg))
            abort();
        check_prefix(cfg->http_api.handler_prefix);
        check_prefix(cfg->client.handler_prefix);
        check_prefix(cfg->centrifugo_proxy.handler_prefix);
        us_config_free(cfg);
    }
    if (path) {
        unlink(path);
        free(path);
    }
    clear_env();
    return 0;
}
