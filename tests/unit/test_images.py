"""Image decoding and PNG encoding: every test image is built in memory with Pillow."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from segserve.contract.errors import InvalidImage, PayloadTooLarge, ServiceError, UnsupportedMediaType
from segserve.media.images import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    decode_base64_image,
    decode_image,
    encode_png,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# As close to lossless as each format goes; JPEG keeps full-resolution colour at the quadrant borders.
FAITHFUL_SAVE_OPTIONS = {"WEBP": {"lossless": True}, "JPEG": {"quality": 95, "subsampling": 0}}


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def four_colour_image(width: int = 40, height: int = 20) -> np.ndarray:
    """Four flat quadrants: few colours so GIF's palette is exact, flat so JPEG barely blurs."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = WHITE
    return pixels


def noise_image(width: int = 64, height: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but carries ten bytes of pixel data: cheap to build, fails if decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixel_data = zlib.compress(bytes(10))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel_data) + chunk(b"IEND", b"")


ASCII_FIELD_TYPE = 2


def tiff_entry(data: bytearray, tiff_start: int, tag: int) -> tuple[str, int]:
    """Byte order and offset of `tag`'s 12-byte entry in the first IFD of the TIFF structure at `tiff_start`."""
    order = {b"II": "<", b"MM": ">"}[bytes(data[tiff_start : tiff_start + 2])]
    (ifd_offset,) = struct.unpack_from(order + "I", data, tiff_start + 4)
    ifd = tiff_start + ifd_offset
    (entry_count,) = struct.unpack_from(order + "H", data, ifd)
    entries = [ifd + 2 + 12 * index for index in range(entry_count)]
    return order, next(entry for entry in entries if struct.unpack_from(order + "H", data, entry)[0] == tag)


def retype_tiff_tag(data: bytearray, tiff_start: int, tag: int, field_type: int) -> None:
    order, entry = tiff_entry(data, tiff_start, tag)
    struct.pack_into(order + "H", data, entry + 2, field_type)


def set_tiff_tag_short(data: bytearray, tiff_start: int, tag: int, value: int) -> None:
    """Overwrite a one-SHORT tag, whose value sits inside its entry."""
    order, entry = tiff_entry(data, tiff_start, tag)
    struct.pack_into(order + "H", data, entry + 8, value)


@pytest.mark.parametrize("image_format", SUPPORTED_FORMATS)
def test_every_supported_format_round_trips_to_rgb_uint8(image_format):
    original = four_colour_image()
    data = encode(Image.fromarray(original), image_format, **FAITHFUL_SAVE_OPTIONS.get(image_format, {}))

    decoded = decode_image(data)

    assert decoded.shape == (20, 40, 3) and decoded.dtype == np.uint8
    assert decoded.flags.c_contiguous and decoded.flags.writeable
    error = np.abs(decoded.astype(int) - original)
    assert error.max() < 16 if image_format == "JPEG" else error.max() == 0


def test_multi_frame_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])

    assert (decode_image(data) == RED).all()


def test_phone_jpeg_with_several_pictures_decodes_its_first():
    # Phones write MPO; Pillow's JPEG opener hands these back as format "MPO", not "JPEG".
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), GREEN)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])

    decoded = decode_image(data)

    assert decoded[..., 0].min() > 240 and decoded[..., 1].max() < 15


# Orientation -> (shape after decoding, corner where the stored top-left marker must land).
ORIENTATIONS = {
    6: ((40, 20, 3), "top-right"),  # stored landscape, shown rotated 90 degrees clockwise
    3: ((20, 40, 3), "bottom-right"),
    8: ((40, 20, 3), "bottom-left"),
}


def corner(pixels: np.ndarray, name: str) -> np.ndarray:
    """The 3x3 block one pixel in from a corner (away from edge blur in lossy formats)."""
    rows = slice(1, 4) if name.startswith("top") else slice(-4, -1)
    columns = slice(1, 4) if name.endswith("left") else slice(-4, -1)
    return pixels[rows, columns]


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_turns_the_image_upright(image_format, orientation):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:6, :6] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), image_format, exif=exif, **FAITHFUL_SAVE_OPTIONS.get(image_format, {}))

    decoded = decode_image(data)

    expected_shape, marked_corner = ORIENTATIONS[orientation]
    assert decoded.shape == expected_shape
    for name in ("top-left", "top-right", "bottom-left", "bottom-right"):
        is_red = corner(decoded, name)[..., 0].min() > 200 and corner(decoded, name)[..., 1:].max() < 60
        assert is_red == (name == marked_corner), name


@pytest.mark.parametrize(
    ("mode", "value", "image_format", "expected_rgb"),
    [
        ("L", 77, "PNG", (77, 77, 77)),
        ("LA", (77, 0), "PNG", (77, 77, 77)),  # alpha dropped, stored grey kept
        ("RGBA", (10, 20, 30, 0), "PNG", (10, 20, 30)),
        ("1", 1, "PNG", (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), "TIFF", (255, 0, 0)),
    ],
)
def test_other_modes_convert_to_rgb(mode, value, image_format, expected_rgb):
    data = encode(Image.new(mode, (6, 4), value), image_format)

    decoded = decode_image(data)

    assert decoded.shape == (4, 6, 3) and decoded.dtype == np.uint8
    assert (decoded == expected_rgb).all()


def test_palette_image_gives_its_palette_colours():
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 12, 34, 56] + [0] * 762)
    image.putpixel((0, 0), 0)

    decoded = decode_image(encode(image, "PNG"))

    assert (decoded[0, 0] == (0, 0, 0)).all() and (decoded[3, 5] == (12, 34, 56)).all()


def test_cmyk_jpeg_converts_to_rgb():
    decoded = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))

    assert decoded[..., 0].min() > 240 and decoded[..., 1:].max() < 15


def test_tiff_grey_with_premultiplied_alpha_converts_to_rgb():
    # Mode "La": Pillow's convert("RGB") raises ValueError for it.
    data = bytearray(encode(Image.new("LA", (6, 4), (100, 128)), "TIFF"))
    set_tiff_tag_short(data, 0, 338, 1)  # ExtraSamples: 1 = associated (premultiplied) alpha
    assert Image.open(io.BytesIO(bytes(data))).mode == "La"

    decoded = decode_image(bytes(data))

    assert decoded.shape == (4, 6, 3) and (decoded == 199).all()  # 100 un-premultiplied by 128/255


@pytest.mark.parametrize("image_format", ["PNG", "TIFF"])
def test_16_bit_greyscale_is_scaled_not_clipped(image_format):
    # convert("RGB") alone would clip every value above 255 to white.
    grey = np.array([[0, 0x1000, 0x8000, 0xFFFF]], dtype=np.uint16)
    image = Image.fromarray(grey)
    assert image.mode == "I;16"

    decoded = decode_image(encode(image, image_format))

    assert decoded[0, :, 0].tolist() == [0, 16, 128, 255]
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # 7000x7000 is over our limit but under Pillow's; decoding the ten data bytes would fail as truncated (400).
    with pytest.raises(PayloadTooLarge) as raised:
        decode_image(png_header_only(7000, 7000))

    assert raised.value.status == 413
    assert "7000x7000" in raised.value.message and f"{DEFAULT_MAX_PIXELS:,}" in raised.value.message


def test_pixel_limit_is_configurable_and_inclusive():
    data = encode(Image.new("RGB", (10, 10)), "PNG")

    assert decode_image(data, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(PayloadTooLarge, match="limit is 99 pixels"):
        decode_image(data, max_pixels=99)


@pytest.mark.parametrize("side", [10_000, 20_000], ids=["pillow-warning", "pillow-error"])
def test_pillow_decompression_bomb_guard_becomes_413_without_changing_global_state(side):
    pillow_limit = Image.MAX_IMAGE_PIXELS
    data = png_header_only(side, side)

    with pytest.raises(PayloadTooLarge, match="too large to decode safely"):
        decode_image(data, max_pixels=10**12)

    assert Image.MAX_IMAGE_PIXELS == pillow_limit
    if side == 10_000:  # outside decode_image the same file still only warns
        with pytest.warns(Image.DecompressionBombWarning):
            Image.open(io.BytesIO(data))


@pytest.mark.parametrize("image_format", SUPPORTED_FORMATS)
def test_truncated_file_is_an_invalid_image(image_format):
    data = encode(noise_image(), image_format)

    with pytest.raises(InvalidImage, match="corrupt or truncated") as raised:
        decode_image(data[: len(data) * 6 // 10])

    assert raised.value.status == 400
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_bytes_are_an_invalid_image():
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize(
    "data",
    [
        bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        encode(Image.new("RGB", (16, 16)), "ICO"),  # Pillow reads ICO, but we do not accept it
    ],
    ids=["random", "pdf", "svg", "ico"],
)
def test_unrecognised_bytes_are_unsupported_media_listing_the_formats(data):
    with pytest.raises(UnsupportedMediaType) as raised:
        decode_image(data)

    assert raised.value.status == 415
    assert all(name in raised.value.message for name in SUPPORTED_FORMATS)


def test_tiff_with_a_mistyped_tag_is_an_invalid_image():
    # StripOffsets declared as text makes Pillow raise TypeError while loading, not OSError.
    data = bytearray(encode(noise_image(), "TIFF"))
    retype_tiff_tag(data, 0, 273, ASCII_FIELD_TYPE)

    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode_image(bytes(data))


def test_photo_with_a_mistyped_exif_tag_still_decodes_upright():
    # ImageOps.exif_transpose raises TypeError on this file: it re-serialises the EXIF it rotated.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:6, :6] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x011A] = 72.0  # XResolution, a rational
    data = bytearray(encode(Image.fromarray(stored), "JPEG", exif=exif))
    retype_tiff_tag(data, data.index(b"Exif\x00\x00") + 6, 0x011A, ASCII_FIELD_TYPE)

    decoded = decode_image(bytes(data))

    assert decoded.shape == (40, 20, 3) and corner(decoded, "top-right")[..., 0].min() > 200


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt metadata it skips
@pytest.mark.parametrize("image_format", SUPPORTED_FORMATS)
def test_mangled_files_only_ever_raise_service_errors(image_format):
    # Regression net: Pillow raised TypeError / struct.error on some of these before they were mapped.
    exif = Image.Exif()
    exif[0x0112] = 6
    options = {} if image_format in ("BMP", "GIF") else {"exif": exif}
    data = encode(noise_image(24, 16), image_format, **options)
    rng = random.Random(image_format)
    leaked = []
    for _ in range(300):
        mangled = bytearray(data)
        for _ in range(rng.choice([1, 3, 8])):
            mangled[rng.randrange(min(len(mangled), 400))] = rng.randrange(256)
        try:
            decode_image(bytes(mangled))
        except ServiceError:
            pass
        except Exception as error:  # noqa: BLE001 - collecting exactly what should not happen
            leaked.append(repr(error))

    assert leaked == []


PNG_BYTES = encode(Image.fromarray(four_colour_image()), "PNG")


def strip_padding(text: str) -> str:
    assert text.endswith("="), "the fixture must need padding for this test to mean anything"
    return text.rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(PNG_BYTES).decode(),
        base64.urlsafe_b64encode(PNG_BYTES).decode(),
        strip_padding(base64.b64encode(PNG_BYTES).decode()),
        strip_padding(base64.urlsafe_b64encode(PNG_BYTES).decode()),
        base64.encodebytes(PNG_BYTES).decode(),  # newline every 76 characters
        "  \n" + base64.b64encode(PNG_BYTES).decode() + "\r\n ",
        "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode(),
        # The bytes decide the format, not the declared type.
        "DATA:image/jpeg;charset=utf-8;base64,\n" + base64.encodebytes(PNG_BYTES).decode(),
    ],
    ids=[
        "standard", "urlsafe", "unpadded", "urlsafe-unpadded",
        "newlines", "surrounding-space", "data-url", "data-url-odd",
    ],
)
def test_base64_variants_decode_to_the_same_pixels(text):
    assert (decode_base64_image(text) == four_colour_image()).all()


def test_urlsafe_fixture_really_differs_from_standard():
    assert base64.b64encode(PNG_BYTES) != base64.urlsafe_b64encode(PNG_BYTES)


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", "abcde", "data:image/png,rawbytes", "data:image/png;base64,%%%", "iVBOR\u00e9w0K"],
    ids=["empty", "bad-characters", "impossible-length", "data-url-not-base64", "data-url-bad-payload", "non-ascii"],
)
def test_invalid_base64_is_an_invalid_image_on_the_image_field(text):
    with pytest.raises(InvalidImage) as raised:
        decode_base64_image(text)

    assert raised.value.status == 400 and raised.value.field == "image"


def test_errors_inside_base64_images_name_the_image_field():
    with pytest.raises(UnsupportedMediaType) as raised:
        decode_base64_image(base64.b64encode(b"%PDF-1.7 not an image").decode())

    assert raised.value.field == "image"


@pytest.mark.parametrize(("shape", "mode"), [((5, 7), "L"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")])
def test_encode_png_is_lossless(shape, mode):
    pixels = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)

    reopened = Image.open(io.BytesIO(encode_png(pixels)))

    assert reopened.format == "PNG" and reopened.mode == mode
    assert (np.asarray(reopened) == pixels).all()


@pytest.mark.parametrize("pixels", [np.zeros((5, 7), np.float32), np.zeros((5, 7, 2), np.uint8)], ids=["float", "2ch"])
def test_encode_png_rejects_arrays_it_cannot_store_exactly(pixels):
    with pytest.raises(ValueError):
        encode_png(pixels)
