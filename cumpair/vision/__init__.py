"""Vision library: product images and text in, structured specifications out. Never imports Scrapy.

images.py (safe loading, ImageError hierarchy) · preprocess.py (OCR variants) · engines.py
(Tesseract, RapidOCR, EasyOCR; lazy singletons) · ocr.py (`recognize`, the fallback chain) ·
ocr_types.py (OcrOptions/OcrResult, engine-free) · specs.py (`extract_specs`) · units.py (pint)
· vocabulary.py · color.py (`dominant_colors`) · image_specs.py (`extract_image_specs`) ·
merge.py (page vs image facts) · evaluation.py (per-field scores) · cli.py (`cumpair specs`).
Submodules are imported on demand so `import cumpair.vision` stays cheap.
"""
