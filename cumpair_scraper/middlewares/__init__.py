"""Downloader middlewares: politeness (Retry-After back-off) and challenge pages."""
