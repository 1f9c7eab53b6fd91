#!/bin/sh
# Sets up and runs ustatus for real on this machine, on loopback only:
#   a private redis-server on 127.0.0.1:16379 (user redis),
#   lighttpd on http://localhost:8000 (user www-data) spawning ustatus-fcgi for /api.
# Installs the Debian packages it needs, builds, installs ustatus-fcgi into /usr/local,
# writes /etc/ustatus/ustatus.conf with a fresh API key the first time, and prints a
# ready curl line.
#
# Usage: deploy/quickstart.sh [start|stop|status]
#   as root (a root shell needs no sudo), or as a user: sudo deploy/quickstart.sh
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
HTTP_PORT=8000
REDIS_PORT=16379
ETC=/etc/ustatus
RUN=/run/ustatus
LIB=/var/lib/ustatus
LOG=/var/log/ustatus

if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "quickstart: run it as root (it installs packages and writes /etc/ustatus)" >&2
        exit 1
    fi
    exec sudo "$0" "$@"
fi

stop() {
    for pidfile in "$RUN/lighttpd.pid" "$LIB/redis/redis.pid"; do
        if [ -s "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
    # lighttpd's children (ustatus-fcgi) exit when lighttpd closes their socket.
    sleep 0.5
}

status() {
    for pidfile in "$RUN/lighttpd.pid" "$LIB/redis/redis.pid"; do
        if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$(basename "$pidfile" .pid): running (pid $(cat "$pidfile"))"
        else
            echo "$(basename "$pidfile" .pid): not running"
        fi
    done
}

wait_port() {
    i=0
    while ! curl -s -o /dev/null "http://127.0.0.1:$1/"; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "quickstart: nothing listens on port $1; see $LOG" >&2
            exit 1
        fi
        sleep 0.1
    done
}

start() {
    "$HERE/packages.sh" build run --install

    cd "$TOP"
    [ -x configure ] || ./autogen.sh
    # Out of the source tree, beside tests/run-all's _build/check.
    mkdir -p "$TOP/_build/release"
    cd "$TOP/_build/release"
    # --sysconfdir=/etc: the default configuration is /etc/ustatus/ustatus.conf.
    [ -f Makefile ] || "$TOP/configure" --prefix=/usr/local --sysconfdir=/etc
    make -j"$(nproc)"
    make install

    id www-data >/dev/null 2>&1 || useradd --system --no-create-home www-data
    id redis >/dev/null 2>&1 || useradd --system --no-create-home redis
    mkdir -p "$ETC" "$RUN" "$LIB/redis" "$LOG"
    chown www-data:www-data "$RUN" "$LOG"
    chown redis:redis "$LIB/redis"
    if [ ! -f "$ETC/ustatus.conf" ]; then
        key=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
        sed -e "s|@API_KEY@|$key|" -e "s|@REDIS_PORT@|$REDIS_PORT|" \
            "$HERE/ustatus.conf" > "$ETC/ustatus.conf.new"
        mv "$ETC/ustatus.conf.new" "$ETC/ustatus.conf"
    fi
    # The key is a secret: readable by root and the web server's group only.
    chown root:www-data "$ETC/ustatus.conf"
    chmod 640 "$ETC/ustatus.conf"
    /usr/local/sbin/ustatus-fcgi -c "$ETC/ustatus.conf" --check-config

    stop
    # A private Redis, on loopback, as the redis user, without persistence to disk.
    runuser -u redis -- redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$LIB/redis" --daemonize yes \
        --pidfile "$LIB/redis/redis.pid" --logfile "$LIB/redis/redis.log"
    sed -e "s|server.port = 8000|server.port = $HTTP_PORT|" \
        "$HERE/lighttpd/lighttpd.conf" > "$ETC/lighttpd.conf"
    touch "$LOG/lighttpd-error.log" "$LOG/lighttpd-ustatus.log"
    chown www-data:www-data "$LOG/lighttpd-error.log" "$LOG/lighttpd-ustatus.log"
    lighttpd -f "$ETC/lighttpd.conf"
    wait_port "$HTTP_PORT"

    key=$(sed -n 's/^ *key = "\(.*\)".*/\1/p' "$ETC/ustatus.conf" | head -1)
    cat <<MSG

ustatus is running on http://localhost:$HTTP_PORT/api (Redis on 127.0.0.1:$REDIS_PORT).
Configuration: $ETC/ustatus.conf (after a change: $0 stop && $0)
Logs: $LOG/lighttpd-ustatus.log (ustatus), $LOG/lighttpd-error.log   Stop: $0 stop

curl --header "Content-Type: application/json" --header "X-API-Key: $key" \\
  --request POST --data '{"users": ["42"]}' http://localhost:$HTTP_PORT/api/update_user_status

curl --header "Content-Type: application/json" --header "X-API-Key: $key" \\
  --request POST --data '{"users": ["42"]}' http://localhost:$HTTP_PORT/api/get_user_status
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 [start|stop|status]" >&2; exit 64 ;;
esac
