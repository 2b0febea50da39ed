#!/usr/bin/env bash
# make compat: the unit and contract tests on other Pythons (default 3.12 and 3.13), installed from
# the same requirements.lock. torch's wheel here is for 3.11 only, so these venvs have no `export`
# extra: they also show that the service's code runs without torch. The exported model comes from
# the main .venv (make install), and tests that need sentence-transformers say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- python3.12 python3.13
.venv/bin/python -c 'from pathlib import Path; from tenantrag.backends.embedding.onnx import prepare_model; prepare_model(Path(".cache/models"))'
closure=$(mktemp)
trap 'rm -f "$closure"' EXIT
.venv/bin/python deploy/requirements_runtime.py --without-export > "$closure"
# `python3.12` may be a pyenv shim with no version selected: then take pyenv's own install.
resolve() {
    if "$1" -c pass 2>/dev/null; then echo "$1"; return; fi
    local minor="${1#python}" found
    if command -v pyenv >/dev/null; then
        found=$(ls -d "$(pyenv root)"/versions/"$minor".*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
        if [ -n "$found" ]; then echo "$found"; return; fi
    fi
    echo "no working $1 on this machine (pyenv has: $(pyenv versions --bare 2>/dev/null | tr '\n' ' '))" >&2
    exit 1
}
status=0
for name in "$@"; do
    python=$(resolve "$name")
    venv=".venv-py$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    echo "==> $venv ($("$python" --version))"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip --disable-pip-version-check -qq install --no-deps --require-hashes -r "$closure"
    "$venv/bin/python" -m pip --disable-pip-version-check -qq install --no-deps --no-build-isolation -e .
    "$venv/bin/python" -m pip --disable-pip-version-check -qq check || true
    if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/contract; then
        status=1
    fi
done
exit $status
