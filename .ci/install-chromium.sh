#!/usr/bin/env bash
# Install Debian's chromium so the explorer's browser tests (tests/test_explorer.py) run: they
# drive it with Playwright through its executable_path, and nothing is downloaded at test time.
# Idempotent: does nothing when chromium is already on PATH. Needs root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "install-chromium: chromium already installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-chromium: needs root to apt-get install chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "install-chromium: installed $(chromium --version 2>/dev/null)"
