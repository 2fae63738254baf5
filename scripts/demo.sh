#!/usr/bin/env bash
# The main job on a fresh machine: install everything, start the bundled demo shops, crawl all
# four of them (one needs JavaScript) into feeds and the index, then search the index.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

mkdir -p var
python3 -m cumpair.demo serve --port 8070 >var/demo-shops.log 2>&1 &
shops_pid=$!
trap 'kill "$shops_pid" 2>/dev/null || true' EXIT
for _ in $(seq 150); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.24:8070/robots.txt', timeout=1)" \
    2>/dev/null && break
  kill -0 "$shops_pid" 2>/dev/null || { cat var/demo-shops.log; exit 1; }
  sleep 0.2
done

# A store left by an earlier run with other encoder versions is re-embedded first (no-op else).
cumpair reindex --if-stale --path index_data

echo "== Crawling the demo shops (feeds in var/feeds/, index in index_data/)"
scrapy crawlall --feeds-dir var/feeds -s LOG_LEVEL=WARNING

echo
echo "== Search by text: the offers of every shop for one product, cheapest first"
python3 search_index.py --text "Bytewise AA-101Pro" -k 2

echo
echo "== Search by photo: a shopper's snapshot of a product from one shop"
cumpair demo photo --out var/query.jpg
python3 search_index.py --image var/query.jpg -k 2
