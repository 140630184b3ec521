#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries if they are absent (idempotent). The tests start
# their own throw-away server from them (tests/pg_helpers.py); nothing is started here.
set -euo pipefail
# The tests run the server as the postgres user (initdb refuses root): that user must be able
# to reach its binaries. A machine whose / is not searchable by others (mode 0600 was seen on
# one) makes every PostgreSQL test fail with "Permission denied"; set it to the usual 755.
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- true 2>/dev/null; then
    echo "setup_postgres: the postgres user cannot run programs here (/ is $(stat -c %A /)); chmod 755 /" >&2
    chmod 755 /
fi
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
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- true 2>/dev/null; then
    echo "setup_postgres: the postgres user cannot run programs here (/ is $(stat -c %A /)); chmod 755 /" >&2
    chmod 755 /
fi
