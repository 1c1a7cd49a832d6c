#!/usr/bin/env bash
# The whole test suite: installs the real FastCGI backends the interop tests talk to
# (php-fpm, php-cgi, fcgiwrap, Go, uWSGI and Ruby's rack + fcgi from Debian; flup from PyPI) and the PHP application the
# end-to-end test serves (DokuWiki, from Debian) when they are missing, then runs
# `cargo test` with FCGI_INTEROP=require so that a backend that is still missing
# fails the run instead of being skipped. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v php-fpm >/dev/null 2>&1 || compgen -G '/usr/sbin/php-fpm*' >/dev/null || missing+=(php-fpm)
command -v php-cgi >/dev/null 2>&1 || missing+=(php-cgi)
command -v fcgiwrap >/dev/null 2>&1 || [[ -x /usr/sbin/fcgiwrap ]] || missing+=(fcgiwrap)
# Go's net/http/fcgi: tests/spawn.rs builds an `fcgi.Serve(nil, h)` program with it.
command -v go >/dev/null 2>&1 || missing+=(golang-go)
# Perl FCGI (libfcgi): one of the authorizers of tests/authorize.rs.
perl -MFCGI -e 1 >/dev/null 2>&1 || missing+=(libfcgi-perl)
# The real PHP application tests/dokuwiki.rs serves (copied into a temporary root).
[[ -d /usr/share/dokuwiki ]] || missing+=(dokuwiki)
# uWSGI for tests/connectors.rs (its --scgi-socket and --uwsgi-socket, Python 3 apps).
command -v uwsgi >/dev/null 2>&1 || missing+=(uwsgi-core)
[[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ]] || missing+=(uwsgi-plugin-python3)
# Rack over FastCGI (Rack::Handler::FastCGI, tests/interop_ruby.rs).
ruby -e 'require "rack"' >/dev/null 2>&1 || missing+=(ruby-rack)
ruby -e 'require "fcgi"' >/dev/null 2>&1 || missing+=(ruby-fcgi)
# The gateway's HTTP/2 tests: curl --http2-prior-knowledge, a certificate made by openssl.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends "${missing[@]}" \
        || { as_root apt-get update && as_root apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

if ! python3 -c 'import flup.server.fcgi' >/dev/null 2>&1; then
    echo "scripts/test.sh: installing flup" >&2
    python3 -m pip install --quiet flup \
        || python3 -m pip install --quiet --break-system-packages flup
fi

if ! python3 -c 'import scgi.scgi_server' >/dev/null 2>&1; then
    echo "scripts/test.sh: installing scgi (the reference SCGI server, tests/connectors.rs)" >&2
    python3 -m pip install --quiet scgi \
        || python3 -m pip install --quiet --break-system-packages scgi
fi

# Tests, examples and benches see the crate with `unstable` (a dev-dependency on
# itself), so the feature-off library is checked on its own first.
cargo check --quiet --lib --no-default-features

export FCGI_INTEROP=require
cargo test "$@"

# The 2-minute chaos soak (RELIABILITY.md) after the tests, only from this script (plain
# `cargo test` never runs it) and only for a whole-suite run: skipped when arguments
# narrow the run, or with CHAOS_MINUTES=0. It runs on the debug build `cargo test` just
# made (a release build would add minutes to CI); `scripts/chaos.sh 60` is the release
# soak of record.
if [[ $# -eq 0 && ${CHAOS_MINUTES:-2} != 0 ]]; then
    CHAOS_PROFILE=${CHAOS_PROFILE:-debug} scripts/chaos.sh "${CHAOS_MINUTES:-2}"
fi
