"""Dominant colours of a product photo, named in words a shopper would use.

Background is removed first: regions that touch the border and are near-uniform (flood fill
with a small floating tolerance, so soft studio gradients count too). The remaining pixels
are clustered with k-means in CIE Lab, where distances follow perceived difference, and each
cluster is named after the nearest entry (CIEDE2000) of a vocabulary of CSS3 colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import webcolors

from cumpair.vision.images import ImageSource, load_image

# Every CSS3 colour name grouped into the everyday family a shopper would say, after the
# colour groups MDN/W3Schools use (with black, silver, navy, beige, gold, olive and teal split
# out because shops print them). A cluster is named after its nearest CSS3 colour (CIEDE2000)
# and reported by family; pass vocabulary="css3" for the CSS3 name itself.
COLOR_FAMILIES: dict[str, tuple[str, ...]] = {
    "black": ("black",),
    "gray": ("dimgray", "gray", "darkgray", "lightslategray", "slategray", "darkslategray"),
    "silver": ("silver", "lightgray", "gainsboro"),
    "white": ("white", "snow", "honeydew", "mintcream", "azure", "aliceblue", "ghostwhite",
              "whitesmoke", "seashell", "oldlace", "floralwhite", "ivory", "linen",
              "lavenderblush", "mistyrose", "lightcyan", "lightyellow"),
    "beige": ("beige", "wheat", "tan", "burlywood", "bisque", "navajowhite", "blanchedalmond",
              "cornsilk", "antiquewhite", "papayawhip", "moccasin", "peachpuff",
              "lemonchiffon", "lightgoldenrodyellow"),
    "red": ("lightsalmon", "salmon", "darksalmon", "lightcoral", "indianred", "crimson",
            "red", "firebrick", "darkred"),
    "pink": ("pink", "lightpink", "hotpink", "deeppink", "palevioletred", "mediumvioletred"),
    "purple": ("lavender", "thistle", "plum", "orchid", "violet", "fuchsia", "magenta",
               "mediumorchid", "darkorchid", "darkviolet", "blueviolet", "darkmagenta",
               "purple", "mediumpurple", "mediumslateblue", "slateblue", "darkslateblue",
               "rebeccapurple", "indigo"),
    "orange": ("orange", "darkorange", "coral", "tomato", "orangered", "sandybrown"),
    "yellow": ("yellow", "khaki", "palegoldenrod"),
    "gold": ("gold", "goldenrod", "darkgoldenrod", "darkkhaki"),
    "olive": ("olive", "olivedrab", "darkolivegreen"),
    "green": ("greenyellow", "chartreuse", "lawngreen", "lime", "limegreen", "palegreen",
              "lightgreen", "mediumspringgreen", "springgreen", "mediumseagreen", "seagreen",
              "forestgreen", "green", "darkgreen", "yellowgreen", "darkseagreen",
              "mediumaquamarine"),
    "teal": ("teal", "darkcyan", "lightseagreen", "cadetblue"),
    "cyan": ("aqua", "cyan", "paleturquoise", "aquamarine", "turquoise", "mediumturquoise",
             "darkturquoise"),
    "blue": ("steelblue", "lightsteelblue", "lightblue", "powderblue", "lightskyblue",
             "skyblue", "cornflowerblue", "deepskyblue", "dodgerblue", "royalblue", "blue",
             "mediumblue"),
    "navy": ("navy", "midnightblue", "darkblue"),
    "brown": ("rosybrown", "peru", "chocolate", "saddlebrown", "sienna", "brown", "maroon"),
}  # fmt: skip
_FAMILY_OF = {css: family for family, members in COLOR_FAMILIES.items() for css in members}

ANALYSIS_SIDE = 192  # pixels; colours do not need detail and k-means cost grows with pixels
BACKGROUND_TOLERANCE = 4  # per-channel step allowed between neighbouring background pixels
MIN_BACKGROUND_REGION = 0.01  # a border region smaller than this is part of the product
MIN_FOREGROUND = 0.02  # below this the photo is all "background": analyse every pixel
MERGE_DELTA_E = 8.0  # clusters closer than this look like one colour
HALO_DELTA_E = 20.0  # edge pixels this close to the background colour belong to it

MAX_SAMPLES = 6000


@dataclass(frozen=True, slots=True)
class DominantColor:
    name: str
    hex: str
    fraction: float  # share of the foreground pixels, 0..1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hex": self.hex, "fraction": round(self.fraction, 4)}


def dominant_colors(
    image: ImageSource, k: int = 3, *, vocabulary: str = "basic", min_fraction: float = 0.05
) -> list[DominantColor]:
    """Return up to `k` colours covering at least `min_fraction` of the product, largest first.

    Raises an `ImageError` for unusable input and ValueError for bad arguments.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if vocabulary not in ("basic", "css3"):
        raise ValueError(f"vocabulary must be 'basic' or 'css3', got {vocabulary!r}")
    names, palette_lab = _css3_palette()
    rgb = np.asarray(_thumbnail(load_image(image)))
    foreground = ~background_mask(rgb)
    if foreground.mean() < MIN_FOREGROUND:
        foreground[:] = True
    pixels = rgb[foreground].astype(np.float32)
    rng = np.random.default_rng(0)
    if len(pixels) > MAX_SAMPLES:
        pixels = pixels[rng.choice(len(pixels), MAX_SAMPLES, replace=False)]
    lab = _rgb_to_lab(pixels)
    labels, centres = _kmeans(lab, min(k + 2, len(np.unique(pixels, axis=0))))
    clusters = _merge(labels, centres)

    result: list[DominantColor] = []
    for members in clusters:
        fraction = float(members.sum()) / len(labels)
        if fraction < min_fraction:
            continue
        mean_rgb = pixels[members].mean(axis=0)
        mean_lab = lab[members].mean(axis=0)
        name = names[int(np.argmin(_delta_e(mean_lab, palette_lab)))]
        if vocabulary == "basic":
            name = _FAMILY_OF[name]
        hex_value = webcolors.rgb_to_hex(tuple(round(float(c)) for c in mean_rgb))
        result.append(DominantColor(name, hex_value, fraction))
    result.sort(key=lambda c: c.fraction, reverse=True)
    return _merge_same_names(result)[:k]


def background_mask(rgb: np.ndarray) -> np.ndarray:
    """True where a pixel belongs to a near-uniform region connected to the image border."""
    height, width = rgb.shape[:2]
    mask = np.zeros((height + 2, width + 2), np.uint8)
    background = np.zeros((height, width), bool)
    smoothed = cv2.GaussianBlur(rgb, (3, 3), 0)  # JPEG noise must not break the flood
    step = max(1, min(height, width) // 24)
    xs, ys = range(0, width, step), range(0, height, step)
    seeds = [(x, 0) for x in xs] + [(x, height - 1) for x in xs]
    seeds += [(0, y) for y in ys] + [(width - 1, y) for y in ys]
    tolerance = (BACKGROUND_TOLERANCE,) * 3
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    for x, y in seeds:
        if background[y, x] or mask[y + 1, x + 1]:
            continue
        region = np.zeros_like(mask)
        area, *_ = cv2.floodFill(smoothed, region, (x, y), 0, tolerance, tolerance, flags)
        mask |= region
        if area >= MIN_BACKGROUND_REGION * height * width:
            background |= region[1:-1, 1:-1].astype(bool)
    if background.any() and not background.all():
        background |= _halo(rgb, background)
    return background


def _halo(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Anti-aliased edge pixels: next to the background and still close to its colour.

    The flood stops where the blend towards the product begins; without this a light rim
    around every product is reported as a colour of its own.
    """
    ring = cv2.dilate(background.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    ring = ring.astype(bool) & ~background
    if not ring.any():
        return ring
    lab = _rgb_to_lab(rgb.reshape(-1, 3).astype(np.float64)).reshape(rgb.shape)
    reference = lab[background].mean(axis=0)
    distance = np.linalg.norm(lab - reference, axis=2)
    return ring & (distance < HALO_DELTA_E)


def _thumbnail(image):  # PIL in, PIL out
    copy = image.copy()
    copy.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    return copy


def _rgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """N x 3 RGB (0..255) -> N x 3 CIE Lab (L 0..100), via OpenCV's float conversion."""
    scaled = (pixels.reshape(-1, 1, 3) / 255.0).astype(np.float32)
    return cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)


def _kmeans(lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, min(k, len(lab)))
    cv2.setRNGSeed(0)  # same photo, same answer
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    _, labels, centres = cv2.kmeans(
        lab.astype(np.float32), k, None, criteria, 3, cv2.KMEANS_PP_CENTERS
    )
    return labels.ravel(), centres.astype(np.float64)


def _merge(labels: np.ndarray, centres: np.ndarray) -> list[np.ndarray]:
    """Group k-means clusters whose centres are perceptually the same colour."""
    groups: list[list[int]] = []
    for index in range(len(centres)):
        for group in groups:
            if _delta_e(centres[index], centres[group[0]][None, :])[0] < MERGE_DELTA_E:
                group.append(index)
                break
        else:
            groups.append([index])
    return [np.isin(labels, group) for group in groups]


def _merge_same_names(colors: list[DominantColor]) -> list[DominantColor]:
    merged: dict[str, DominantColor] = {}
    for color in colors:
        if color.name in merged:
            kept = merged[color.name]
            merged[color.name] = DominantColor(kept.name, kept.hex, kept.fraction + color.fraction)
        else:
            merged[color.name] = color
    return sorted(merged.values(), key=lambda c: c.fraction, reverse=True)


_palette_cache: list[tuple[tuple[str, ...], np.ndarray]] = []


def _css3_palette() -> tuple[tuple[str, ...], np.ndarray]:
    """CSS3 names (grey spellings folded into gray) with their Lab coordinates."""
    if not _palette_cache:
        names = tuple(sorted({n.replace("grey", "gray") for n in webcolors.names("css3")}))
        rgb = np.array([webcolors.name_to_rgb(n) for n in names], dtype=np.float64)
        _palette_cache.append((names, _rgb_to_lab(rgb)))
    return _palette_cache[0]


def _delta_e(lab: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference between one Lab colour and each row of `palette`."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(np.broadcast_to(lab, palette.shape), palette)
