# One image for the OCR server, its workers and scrapyd (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
# Unprivileged at run time; OCR engines load from the installed packages, nothing is downloaded.
RUN useradd --create-home cumpair && mkdir -p /srv/scrapyd && chown cumpair /srv/scrapyd
USER cumpair
EXPOSE 9001 6800
