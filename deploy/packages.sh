#!/bin/sh
# The Debian packages ustatus needs, in one place for the quickstart, the tests and CI.
# Usage: deploy/packages.sh build|run|test|bench|package|fuzz   prints the list; with --install
# installs it.
set -e
build="build-essential autoconf automake pkg-config libhiredis-dev libfcgi-dev libjson-c-dev libconfuse-dev libssl-dev libcurl4-openssl-dev check"
run="redis-server lighttpd curl ca-certificates"
# The tests start real servers of every kind ustatus runs with.
# systemd: systemd-socket-activate, systemd-analyze and the pkg-config file naming the
# unit directory; logrotate and man-db: the shipped logrotate file and man page are run.
test="$build $run python3 libfcgi-bin spawn-fcgi redis-sentinel redis-tools apache2 libapache2-mod-fcgid nginx openssl chromium systemd logrotate man-db strace"

# The Debian package (deploy/debian/build-deb, check-deb): debhelper runs autoreconf;
# lintian checks the result.
package="$build systemd debhelper dpkg-dev lintian logrotate python3"

# The benchmark suite (tests/bench/run) loads the servers with wrk, counts instructions
# with valgrind, and builds the Go peer from Debian's packages.
bench="$test wrk valgrind golang-go golang-github-gomodule-redigo-dev"

# The fuzzers (tests/fuzz/run): clang 14 with its libFuzzer and sanitizer runtimes.
fuzz="$build clang libclang-rt-14-dev"

list=""
install=0
for arg in "$@"; do
    case "$arg" in
    build) list="$list $build" ;;
    package) list="$list $package" ;;
    fuzz) list="$list $fuzz" ;;
    run) list="$list $run" ;;
    test | bench)
        if [ "$arg" = bench ]; then list="$list $bench"; else list="$list $test"; fi
        # The browser test drives chromium with playwright-core from npm. Debian's npm
        # conflicts with a nodejs from elsewhere (the machine image's): only when missing.
        command -v npm >/dev/null 2>&1 || list="$list nodejs npm"
        ;;
    --install) install=1 ;;
    *) echo "usage: $0 build|run|test|bench|package|fuzz [--install]" >&2; exit 64 ;;
    esac
done
if [ "$install" = 0 ]; then
    # shellcheck disable=SC2086 # one package per word
    echo $list
    exit 0
fi
missing=""
for p in $list; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d 101: Debian's maintainer scripts must not start system services
# (redis-server, lighttpd) on ports the tests and the quickstart want for themselves.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086 # one package per word
$SUDO apt-get install -y -qq --no-install-recommends $missing
