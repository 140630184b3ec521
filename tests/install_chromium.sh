#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (the replay report, the dashboard), once.
# Idempotent: does nothing when a chromium is already there. Never fails the build: without
# chromium those tests skip and say why.
set -u
# chromium's GPU process cannot start when / is not readable by others (a machine with / at
# mode 0600 was seen: every page load then ended in "GPU process isn't usable. Goodbye.")
if [ "$(id -u)" = 0 ] && [ "$(( 0$(stat -c %a /) & 05 ))" != 5 ]; then
    echo "install_chromium: / is $(stat -c %A /), which stops chromium's GPU process; chmod 755 /"
    chmod 755 /
fi
if [ -n "${STREAMFEAT_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 \
    || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing chromium for the browser tests (apt-get)"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        exit 0
    fi
fi
echo "chromium is not installed and could not be (needs Debian apt-get as root):" \
     "the browser tests will skip; install it with: apt-get install -y chromium"
exit 0
