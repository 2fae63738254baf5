"""`cumpair specs`: print the spec output contract as JSON for text or image files.

    cumpair specs --text "Weight: 2.5 kg, 100% cotton"
    cumpair specs label.png photo.jpg --engines tesseract,rapidocr

One JSON object for --text or a single image; a JSON list (one object per path, with `path`)
for several images. An unreadable image prints an `error` for that path and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cumpair.vision.images import ImageError
from cumpair.vision.ocr_types import DEFAULT_ENGINES, OcrOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "specs",
        help="extract product specifications from text or images",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files to read")
    parser.add_argument("--text", help="product text to extract from (instead of images)")
    parser.add_argument(
        "--engines",
        default=",".join(DEFAULT_ENGINES),
        help="OCR engine order, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--min-confidence", type=float, default=0.80, help="OCR fall-through threshold"
    )
    parser.add_argument("--colors", type=int, default=3, help="dominant colours to report")
    parser.add_argument("--ocr", action="store_true", help="include the OCR text and engine")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.text is None) == (not args.paths):
        print("cumpair specs: give either --text or one or more image paths", file=sys.stderr)
        return 2
    if args.text is not None:
        from cumpair.vision.specs import extract_specs

        _print(extract_specs(args.text).to_dict())
        return 0

    from cumpair.vision.image_specs import read_image_specs

    engines = tuple(name.strip() for name in args.engines.split(",") if name.strip())
    options = OcrOptions(engines=engines, min_confidence=args.min_confidence)
    outputs: list[dict[str, Any]] = []
    failed = False
    for path in args.paths:
        try:
            result = read_image_specs(path, ocr_options=options, colors=args.colors)
        except (ImageError, FileNotFoundError, PermissionError) as exc:
            outputs.append({"path": path, "error": f"{type(exc).__name__}: {exc}"})
            failed = True
            continue
        output = result.specs.to_dict()
        if args.ocr:
            output["ocr"] = {
                "text": result.ocr.text,
                "engine": result.ocr.engine,
                "variant": result.ocr.variant,
                "confidence": round(result.ocr.confidence, 4),
            }
        outputs.append({"path": path, **output} if len(args.paths) > 1 else output)
    if failed and len(args.paths) == 1:
        print(f"cumpair specs: {outputs[0]['error']}", file=sys.stderr)
        return 1
    _print(outputs[0] if len(args.paths) == 1 else outputs)
    return 1 if failed else 0


def _print(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
