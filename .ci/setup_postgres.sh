#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries if they are absent (idempotent). The tests start
# their own throw-away server from them (tests/pg_helpers.py); nothing is started here.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "no apt-get here: install PostgreSQL's server binaries to run the PostgreSQL tests" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
