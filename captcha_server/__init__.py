"""Self-hosted OCR service speaking the 2captcha image-to-text protocol (v1 and v2 JSON).

A thin aiohttp adapter over `cumpair.vision.ocr`: it validates uploads, queues tasks (in-process
pool or Redis + `python -m captcha_server.worker`) and answers in 2captcha's words. It never
implements OCR itself.
"""
