"""Photos are decoded in full and stored re-encoded (CONTRACT §6: "checked by content").

Crafted files, sent through the portal's upload (``POST /api/v1/portal/meters/{id}/readings/``,
multipart), then read through both download routes (the portal's and the account's):

- a PNG or JPEG with an HTML page appended (a polyglot): stored re-encoded, the payload gone;
- a PNG whose header says 12000×12000 pixels but whose data is cut short, a PNG cut in the
  middle of its pixels, a decompression bomb (a few KB declaring 81 or 400 megapixels): 400
  ``validation_error`` on ``photo``, no reading and no file stored;
- metadata (EXIF with a GPS position, PNG text chunks) is not kept; the served type is the one
  of the stored bytes.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from readings.models import Reading
from tests.billing.api import assert_error
from tests.billing.portal.conftest import image_bytes, stored_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

PAYLOAD = b"<html><body><script>alert(document.cookie)</script></body></html>"


def send(client, meter, content: bytes, name: str = "meter.png", content_type="image/png"):
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    body = {"reading_date": "2024-03-01", "value": "42.5", "photo": upload}
    return client.post(f"/api/v1/portal/meters/{meter.pk}/readings/", body, format="multipart")


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, *, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def bomb(side: int) -> bytes:
    """A complete, valid 1-bit PNG of ``side``×``side`` black pixels: a few KB of zlib."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte, then the row's bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png(side, side, bit_depth=1, color_type=0, idat=data)


def truncated_giant() -> bytes:
    """IHDR says 12000×12000 RGB (432 MB of pixels); the data stops after a few rows."""
    rows = zlib.compress((b"\x00" + b"\x7f" * 36000) * 3)
    header = struct.pack(">IIBBBBB", 12000, 12000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)


def noise_png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def cut_in_its_pixels() -> bytes:
    """A real PNG whose pixel data stops half way (no IEND)."""
    content = noise_png()
    return content[: len(content) // 2]


def downloads(portal, api, meter, reading) -> list[tuple[str, bytes]]:
    """(Content-Type, bytes) from the portal's and the account's photo routes."""
    answers = []
    for client, path in (
        (portal, f"/api/v1/portal/meters/{meter.pk}/readings/{reading.pk}/photo/"),
        (api, f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/photo/"),
    ):
        response = client.get(path)
        assert response.status_code == 200
        answers.append((response["Content-Type"], b"".join(response.streaming_content)))
    return answers


@pytest.mark.parametrize(
    ("image_format", "media_type", "extension"),
    [("PNG", "image/png", ".png"), ("JPEG", "image/jpeg", ".jpg")],
)
def test_an_appended_payload_is_not_stored_nor_served(
    portal, api, meter, media_root, image_format, media_type, extension
):
    content = image_bytes(image_format, (32, 24)) + PAYLOAD
    response = send(portal, meter, content, name="x.html", content_type="text/html")
    assert response.status_code == 201, response.json()
    reading = Reading.objects.get()
    (stored,) = stored_files(media_root)
    assert stored.suffix == extension
    for served_type, served in [("", stored.read_bytes()), *downloads(portal, api, meter, reading)]:
        assert served_type in ("", media_type)
        assert b"<html" not in served and b"<script" not in served
        with Image.open(io.BytesIO(served)) as image:
            assert (image.format, image.size) == (image_format, (32, 24))
            image.load()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(truncated_giant(), id="12000x12000-header-truncated-data"),
        pytest.param(cut_in_its_pixels(), id="png-cut-in-its-pixels"),
        pytest.param(image_bytes("JPEG", (64, 64))[:-200], id="jpeg-cut-in-its-pixels"),
        pytest.param(bomb(9000), id="bomb-81-megapixels"),
        pytest.param(bomb(20000), id="bomb-400-megapixels"),
    ],
)
def test_a_truncated_or_oversized_image_is_400_and_nothing_is_stored(
    portal, meter, media_root, content
):
    assert len(content) < 200_000  # they are small files: the byte limit does not stop them
    error = assert_error(send(portal, meter, content), 400, "validation_error", "photo")
    assert error["details"]["photo"][0]
    assert not Reading.objects.exists()
    assert stored_files(media_root) == []


def test_the_pixel_limit_is_a_setting_and_says_so(portal, meter, media_root, settings):
    settings.PORTAL_PHOTO_MAX_PIXELS = 32 * 24 - 1
    content = image_bytes("PNG", (32, 24))
    error = assert_error(send(portal, meter, content), 400, "validation_error", "photo")
    assert "pixels" in error["details"]["photo"][0]
    assert stored_files(media_root) == []
    settings.PORTAL_PHOTO_MAX_PIXELS = 32 * 24
    assert send(portal, meter, content).status_code == 201


def test_metadata_is_not_kept(portal, api, meter, media_root):
    image = Image.new("RGB", (40, 30), (10, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° to show it
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPSInfo: where the tenant lives
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, comment=b"secret comment")
    response = send(portal, meter, buffer.getvalue(), name="p.jpg", content_type="image/jpeg")
    assert response.status_code == 201, response.json()
    (stored,) = stored_files(media_root)
    content = stored.read_bytes()
    assert b"PhoneMaker" not in content and b"secret comment" not in content
    with Image.open(stored) as kept:
        assert not kept.getexif()
        assert kept.size == (30, 40)  # the orientation is applied to the pixels, then dropped


def test_png_text_chunks_are_not_kept(portal, meter, media_root):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 128)).save(buffer, format="PNG", pnginfo=info)
    assert send(portal, meter, buffer.getvalue()).status_code == 201
    (stored,) = stored_files(media_root)
    assert b"<script>" not in stored.read_bytes()
    with Image.open(stored) as kept:
        assert kept.mode == "RGBA" and kept.getpixel((0, 0)) == (1, 2, 3, 128)
        assert not getattr(kept, "text", {})
