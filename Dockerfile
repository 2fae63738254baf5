# One image for the OCR server, its workers, scrapyd, the crawl workers, the indexer and the search
# page (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng fonts-dejavu-core \
    chromium \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
# Unprivileged at run time; OCR engines load from the installed packages, nothing is downloaded.
# Chromium (/usr/bin/chromium, PLAYWRIGHT_LAUNCH_OPTIONS) renders the JavaScript shops. /data is
# made here so that a new named volume mounted on it (the catalog's) belongs to that user.
RUN useradd --create-home cumpair && mkdir -p /srv/scrapyd /data \
 && chown cumpair /srv/scrapyd /data
USER cumpair
EXPOSE 9001 6800 8080
