#!/usr/bin/env bash
# Install what the tunnel benchmark's MQTT comparison needs: the mosquitto broker (Debian
# package) and the paho-mqtt client (PyPI). Safe to run again; does nothing when present.
set -euo pipefail
if ! command -v mosquitto >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi
# the broker is started by the benchmark itself on a free 127.0.0.1 port; stop the
# distribution's service if the package started one, so nothing else listens on 1883
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" -c "import paho.mqtt" 2>/dev/null || "$PY" -m pip install -q "paho-mqtt>=2.0"
mosquitto -h 2>&1 | head -1
