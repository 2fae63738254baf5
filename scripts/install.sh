#!/usr/bin/env bash
# Installs everything Cumpair needs on a fresh Debian 12 + Python 3.11 machine (run as root):
# Debian packages (OCR, Redis, Chromium, fonts, clip-art for the demo shops), the pinned Python
# dependencies and the project itself. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  tesseract-ocr tesseract-ocr-eng   # OCR engine (tesserocr links libtesseract in-process)
  redis-server                      # scale-out queue of the OCR server
  chromium                          # JavaScript shops through scrapy-playwright
  fonts-dejavu-core                 # label and captcha rendering in the demo shops
  openclipart-png                   # product pictures of the demo shops
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q -r requirements.txt
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
# The offline encoders' ONNX files for the default index, exported once here (a crawl or query
# finding them missing exports them in a child process, so torch never loads into it).
"$PYTHON" -m cumpair.embed.onnx_export --model-dir index_data/models
