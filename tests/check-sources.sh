#!/bin/sh
# Source rules a compiler cannot check, run by make check.
# Replies from a node are built by ustatus's own reader functions (redis_node.c): handing
# one to hiredis's freeReplyObject would free memory hiredis did not allocate.
set -eu
top=${USTATUS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
bad=$(grep -n 'freeReplyObject *(' "$top"/src/*.c "$top"/fcgi/*.c | grep -v '^[^:]*:[0-9]*: *\*' || true)
if [ -n "$bad" ]; then
    echo "freeReplyObject() on a node's reply; use us_reply_free():"
    echo "$bad"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
