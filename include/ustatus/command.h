/* Commands: from a request's parameters to store operations (SPEC §1.3, §1.4, §6).
 *
 * Everything that decides what a request may ask for is written once here and shared by
 * the server API, the client endpoints and the RPC proxy: the method table, the state
 * rule set (with the one compiled state_regex), the users limit and the user-ID rule,
 * and the JSON intake bound (us_command_rules_parse_object). A command that fails
 * carries an error code of envelope.h and a details string.
 *
 * A request's commands share one operation list: each command owns the run
 * ops.v[op_start, op_start + op_count), so all the Redis work of a request runs in one
 * us_store_exec. */
#ifndef USTATUS_COMMAND_H
#define USTATUS_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/store.h"

/* Commands in one batch or legacy body at most. */
#define US_MAX_COMMANDS_PER_REQUEST 1000

typedef enum {
    US_METHOD_UNKNOWN = 0,
    US_METHOD_UPDATE,          /* update_user_status */
    US_METHOD_GET,             /* get_user_status */
    US_METHOD_DELETE,          /* delete_user_status */
    US_METHOD_ONLINE,          /* update_user_online */
} us_method;

/* The method called name (exactly, or ignoring ASCII case), or US_METHOD_UNKNOWN. */
us_method us_method_lookup(const char *name, size_t len, bool nocase);
/* Its name; "" for US_METHOD_UNKNOWN. */
const char *us_method_name(us_method m);

/* ---- the rules ---- */

typedef struct us_command_rules us_command_rules;

/* Compiles the rules of cfg (state_regex, limits); borrows cfg, which must outlive them.
 * NULL with "user_status.state_regex: <why>" in err for a regex that does not compile. */
us_command_rules *us_command_rules_create(const us_config *cfg, char *err, size_t err_len);
void us_command_rules_free(us_command_rules *r);

/* False when user_status.enabled is off (every user status command is then error 108). */
bool us_command_rules_enabled(const us_command_rules *r);

/* The state rule set (SPEC §1.3) for a given state [sv, sv+sl): "" clears the stored
 * state; otherwise at most US_STATE_MAX_BYTES of UTF-8 without NUL, matching
 * state_regex when one is set. Sets *mode (US_STATE_CLEAR or US_STATE_SET) and returns 0,
 * or returns -1 with the reason in why (an error 107 with HTTP 200). */
int us_command_rules_state(const us_command_rules *r, const char *sv, size_t sl,
                           us_state_mode *mode, char *why, size_t why_len);

/* The optional "state" member of a JSON object (the client body, the RPC proxy's data)
 * under the same rules: US_STATE_KEEP when absent or null; else *mode, and with
 * US_STATE_SET the state in *sv and *sl, borrowed from obj. */
typedef enum {
    US_STATE_CHECK_OK = 0,
    US_STATE_CHECK_INVALID,    /* a rejected value: error 107 with HTTP 200 */
    US_STATE_CHECK_WRONG_TYPE, /* not a string: error 107 with HTTP 400 */
} us_state_check;
us_state_check us_command_rules_take_state(const us_command_rules *r, json_object *obj,
                                           us_state_mode *mode, const char **sv, size_t *sl,
                                           char *why, size_t why_len);

/* The JSON intake of a request body that must be an object: us_json_parse_object with
 * the bound that keeps json-c's memory in proportion to what a request may ask for. The
 * object (the caller puts it), or NULL with a reason in why (an error 107 with HTTP 400). */
json_object *us_command_rules_parse_object(const us_command_rules *r, const char *s, size_t len,
                                           const char *what, char *why, size_t why_len);

/* The JSON-value bound of one request (what us_command_rules_parse_object allows one
 * body), for a request made of several bodies parsed one by one. */
size_t us_command_rules_max_values(const us_command_rules *r);

/* us_command_rules_parse_object for one of the bodies that make one request (the lines
 * of a legacy body, all held at once): the bound holds for them together. *values_left
 * starts at us_command_rules_max_values; each body is refused when it holds more values
 * than are left, and once parsed, the values json-c holds for it are taken off. The
 * object (caller puts it), or NULL with a reason in why (error 107, HTTP 400 for a
 * direct call). */
json_object *us_command_rules_parse_object_shared(const us_command_rules *r, const char *s,
                                                  size_t len, size_t *values_left,
                                                  const char *what, char *why, size_t why_len);

/* ---- commands ---- */

typedef struct us_op_list {
    us_op *v;
    size_t n, cap;
} us_op_list;

typedef struct us_command {
    us_method method;
    int code;                  /* 0 while fine, else the API error code */
    bool type_error;           /* a JSON type error: HTTP 400 for a direct call */
    char details[160];
    size_t op_start, op_count; /* its operations in the request's op list */
    json_object *id;           /* legacy form: the "id" to echo, borrowed */
} us_command;

/* Fails c with code (and details from fmt, which may be NULL) unless it failed already:
 * the first problem is the one reported. */
void us_command_fail(us_command *c, int code, bool type_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Validates json-c params for c->method and appends its operations to ops (user bytes
 * borrowed from params). On a problem c fails and nothing is appended. */
void us_command_parse_params(const us_command_rules *r, us_command *c, json_object *params,
                             us_op_list *ops);

/* The same for a direct call's whole body read in place, without json-c, when it has the
 * plain shape nearly every client sends: {"users":["..."...], "state":"..."}, each key at
 * most once, no other key and no escape in any string. Returns true when it took the body
 * (c then holds the outcome, operations borrowing the body's bytes); false, having
 * changed neither c nor the operations in ops (ops->v may have been reallocated), for any
 * other body, which must then take the json-c path. The body
 * must have passed us_json_check, so both paths accept the same bodies. */
bool us_command_parse_plain(const us_command_rules *r, us_command *c, const char *s, size_t n,
                            us_op_list *ops);

/* After the store ran: a command whose Redis work failed fails whole (error 100), never a
 * partial success. */
void us_command_settle(us_command *c, const us_op *ops);

/* Appends the result object of a command that succeeded: {"statuses":[...]} or {}. */
void us_command_put_result(us_buf *b, const us_command *c, const us_op *ops);

/* Runs every operation of the list at the current wall-clock second (one exchange per
 * Redis node); then, once the responses are written, us_op_list_free releases the Redis
 * replies the statuses borrow and the list. */
void us_op_list_run(us_store *store, us_op_list *ops);
void us_op_list_free(us_store *store, us_op_list *ops);

#endif
