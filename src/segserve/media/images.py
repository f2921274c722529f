"""Image codecs: client bytes or base64 in, RGB uint8 arrays out; PNG bytes back.

Every request image passes through `decode_image`, so this is where untrusted
bytes meet Pillow. Only the formats we list are parsed (fewer decoders exposed),
the pixel count is checked from the header before any pixels are decoded, and
every failure becomes a `ServiceError` with a message a client can act on.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import warnings

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from segserve.contract.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Below Pillow's own decompression-bomb limit (~89 MP), so this is the limit clients normally meet.
DEFAULT_MAX_PIXELS = 40_000_000

# Pillow's convert("RGB") clips 16-bit values at 255 (a white image), so these are scaled instead;
# "I" is included because Pillow has used it for 16-bit PNG and TIFF greyscale.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Pillow reports broken files with any of these, depending on the format and where the damage is
# (Image.open itself treats SyntaxError, IndexError, TypeError and struct.error as "not this format").
_CORRUPT_FILE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
# What each EXIF Orientation value needs to come out upright (1 or missing: nothing).
_ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DATA_URL = re.compile(r"data:(?P<params>[^,]*),(?P<payload>.*)", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, field: str | None = None) -> np.ndarray:
    """Decode JPEG/PNG/WebP/BMP/TIFF/GIF bytes to a writable, C-contiguous HxWx3 uint8 RGB array.

    EXIF orientation is applied, multi-frame files give their first frame, alpha is
    dropped (the stored colour is kept) and 16-bit images are scaled to 8 bits.
    `field` names the request field in any error raised.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)", field=field)
    with warnings.catch_warnings():
        # Locally only: Pillow merely warns between 1x and 2x its own pixel limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            _check_pixel_count(image, max_pixels, field)
            image.load()
            image = _apply_exif_orientation(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise PayloadTooLarge(f"the image is too large to decode safely: {error}", field=field) from error
        except UnidentifiedImageError as error:
            raise UnsupportedMediaType(
                f"unrecognised image format; supported formats are {', '.join(SUPPORTED_FORMATS)}", field=field
            ) from error
        except _CORRUPT_FILE_ERRORS as error:
            raise InvalidImage("the image file is corrupt or truncated", field=field) from error
    return _to_rgb_array(image)


def decode_base64_image(text: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a base64 image (standard or URL-safe alphabet, padding optional) or a `data:` URL."""
    return decode_image(decode_base64(text), max_pixels, field="image")


def decode_base64(text: str) -> bytes:
    """The file bytes of a base64 image or `data:` URL (standard or URL-safe alphabet, padding optional).

    The media type a data URL declares is not trusted: the bytes decide the format.
    """
    payload = text
    data_url = _DATA_URL.fullmatch(text.strip())
    if data_url:
        if "base64" not in data_url["params"].lower().split(";"):
            raise InvalidImage("a data URL image must be base64-encoded (data:image/...;base64,...)", field="image")
        payload = data_url["payload"]
    compact = _WHITESPACE.sub("", payload).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except ValueError as error:  # binascii.Error, or non-ASCII text (which b64decode refuses with a ValueError)
        raise InvalidImage(f"the image is not valid base64: {error}", field="image") from error


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes for an HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"expected uint8 HxW, HxWx3 or HxWx4, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_pixel_count(image: Image.Image, max_pixels: int, field: str | None) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels",
            field=field,
        )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    # Same table as ImageOps.exif_transpose, which also re-serialises the EXIF block we discard
    # and raises TypeError or struct.error on malformed-but-readable EXIF in otherwise fine photos.
    transpose = _ORIENTATION_TRANSPOSES.get(image.getexif().get(ExifTags.Base.Orientation))
    return image.transpose(transpose) if transpose is not None else image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "La":  # TIFF grey with premultiplied alpha: Pillow converts it only to "LA"
        image = image.convert("LA")
    # np.array, not np.asarray: Pillow's array view is read-only, and torch warns about those.
    return np.array(image.convert("RGB"), dtype=np.uint8)
