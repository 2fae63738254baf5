"""Safe image loading: every kind of bad input gets its own ImageError subclass."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cumpair.vision.images import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageError,
    load_image,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height` but carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 16)
    data += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    return b"\x89PNG\r\n\x1a\n" + data


def test_png_bytes_path_and_array_all_load_as_rgb(tmp_path):
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    path = tmp_path / "red.png"
    image.save(path)
    for source in (encode(image, "PNG"), path, str(path), np.asarray(image), image):
        loaded = load_image(source)
        assert loaded.mode == "RGB" and loaded.size == (40, 30)
        assert loaded.getpixel((5, 5)) == (200, 10, 10)


def test_text_file_is_not_an_image():
    with pytest.raises(NotAnImageError):
        load_image(b"<html><body>404 Not Found</body></html>")


def test_zero_bytes_is_empty():
    with pytest.raises(EmptyImageError):
        load_image(b"")


def test_zero_width_image_is_empty():
    with pytest.raises(EmptyImageError):
        load_image(png_header(0, 10))


def test_truncated_jpeg_raises_truncated():
    data = encode(Image.effect_noise((200, 200), 40).convert("RGB"), "JPEG", quality=90)
    with pytest.raises(TruncatedImageError):
        load_image(data[: len(data) // 2])


def test_truncated_png_raises_truncated():
    data = encode(Image.effect_noise((200, 200), 40).convert("RGB"), "PNG")
    with pytest.raises(TruncatedImageError):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_header_before_decoding():
    bomb = png_header(60_000, 60_000)  # 3.6 gigapixels declared in a ~100-byte file
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(bomb)


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLargeError):
        load_image(data, max_pixels=5_000)


def test_byte_limit_is_checked_before_reading_the_file(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(encode(Image.effect_noise((300, 300), 60).convert("RGB"), "PNG"))
    with pytest.raises(ImageTooLargeError, match="byte"):
        load_image(path, max_bytes=1024)
    with pytest.raises(ImageTooLargeError):
        load_image(path.read_bytes(), max_bytes=1024)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    loaded = load_image(encode(cmyk, "JPEG", quality=95))
    red, green, blue = loaded.getpixel((10, 10))
    assert loaded.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_keeps_its_contrast():
    array = np.zeros((10, 20), dtype=np.uint16)
    array[:, 10:] = 60000
    loaded = load_image(encode(Image.fromarray(array), "PNG"))
    assert loaded.getpixel((2, 2)) == (0, 0, 0)
    assert loaded.getpixel((15, 2)) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.putpixel((5, 5), 1)
    loaded = load_image(encode(image, "PNG", transparency=0))
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((5, 5)) == (255, 0, 0)


def test_animated_gif_yields_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 0, 255), (0, 255, 0))]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(data.getvalue())
    _red, green, blue = loaded.getpixel((8, 8))
    assert blue > 200 and green < 50


def test_rgba_png_is_composited_on_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert load_image(encode(image, "PNG")).getpixel((1, 1)) == (255, 255, 255)


def test_eps_is_refused_rather_than_run_through_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises((UnsupportedImageError, NotAnImageError)):
        load_image(eps)


def test_array_of_floats_is_unsupported():
    with pytest.raises(UnsupportedImageError):
        load_image(np.zeros((10, 10, 3), dtype=np.float32))


def test_directory_path_is_not_an_image(tmp_path):
    with pytest.raises(NotAnImageError):
        load_image(tmp_path)


def test_every_error_is_an_image_error_and_a_value_error():
    for error in (NotAnImageError, TruncatedImageError, EmptyImageError, ImageTooLargeError,
                  UnsupportedImageError):  # fmt: skip
        assert issubclass(error, ImageError) and issubclass(error, ValueError)


def test_wrong_source_type_is_a_type_error():
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]
