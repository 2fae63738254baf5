#!/usr/bin/env bash
# The test command: installs everything (scripts/install.sh), checks style, runs every test
# (slow and integration ones included; the servers they need are started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# Run as a fresh machine would: without tldextract's cached public suffix list, so a crawl that
# tried to download it (no network in CI) fails here rather than passing on a leftover cache.
rm -rf "${TLDEXTRACT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/python-tldextract}"
bash scripts/install.sh
python3 -m ruff check .
python3 -m ruff format --check .
exec python3 -m pytest -m "" -p no:cacheprovider "$@"
