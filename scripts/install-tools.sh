#!/usr/bin/env bash
# Make the system tools the tests need available, from Debian's packages:
#   promtool            (package `prometheus`)       checks the alerting and recording rules;
#   chromium, chromedriver (`chromium`, `chromium-driver`) run the console's browser tests headless.
# hadolint, kubernetes-validate and Playwright come from the dev extras in .venv; Playwright drives
# /usr/bin/chromium and never downloads a browser of its own.
# Idempotent: installs nothing when every tool is already on PATH.
set -euo pipefail

# tool on PATH -> the Debian package that provides it
declare -A PACKAGE_OF=(
    [promtool]=prometheus
    [chromium]=chromium
    [chromedriver]=chromium-driver
)

# Debian's chromium launcher prints a shell warning on stderr (/etc/chromium.d/dev-shm): keep stdout.
version() { "$1" --version 2>/dev/null | head -n 1; }

missing=()
for tool in promtool chromium chromedriver; do
    if command -v "$tool" >/dev/null 2>&1; then
        echo "$tool present: $(version "$tool")"
    else
        missing+=("${PACKAGE_OF[$tool]}")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "Missing packages: ${missing[*]}; this script is not running as root." >&2
    echo "Install them yourself: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing packages: ${missing[*]}; apt-get is not available." >&2
    echo "Install Prometheus 2.x (promtool) and Chromium with its driver so they are on PATH." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
# The prometheus package starts a server where systemd runs; the checks only need promtool.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
for tool in promtool chromium chromedriver; do
    echo "$tool installed: $(version "$tool")"
done
