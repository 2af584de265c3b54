"""Photos of readings sent through the tenant portal (CONTRACT §6).

A photo is checked by its content with Pillow (its file name and declared type are not
trusted), then stored re-encoded, never as it came:

1. only JPEG and PNG are tried, and the image must pass Pillow's ``verify()`` (PNG chunk
   checksums);
2. its size, read from its header, is at most ``PORTAL_PHOTO_MAX_PIXELS`` (50 megapixels by
   default): a decompression bomb (a few KB declaring hundreds of megapixels) is refused before
   any pixel is decoded, whatever Pillow's own ``MAX_IMAGE_PIXELS`` (its warning and its error
   are refusals too);
3. every pixel is decoded (``load()``): a truncated or damaged file is refused
   (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off);
4. the pixels are encoded again in the same format, turned as the EXIF orientation said:
   nothing of the upload but its pixels is kept — no EXIF (camera, GPS position), no comments,
   PNG text chunks, ICC profiles, and no bytes after the image (a PNG or JPEG with an HTML page
   appended, a "polyglot", is stored as the image alone).

Any refusal is a ``ValidationError`` (the API's 400 ``validation_error`` on ``photo``), and
nothing is stored. The re-encoded file is stored in the default storage under a random name,
``reading-photos/<account id>/<uuid>.<jpg|png>``, whose extension is the stored bytes' format,
and is never served as public media: the API hands it out to those who may see the reading
(``.../readings/{id}/photo/``), with the media type of that extension.
"""

from __future__ import annotations

import io
import struct
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image, ImageOps

# Pillow format → (file extension, media type).
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png")}
MEDIA_TYPES = {extension: media_type for extension, media_type in FORMATS.values()}
DIRECTORY = "reading-photos"
# The modes each format is written in as they are; other modes are converted (CMYK → RGB...).
KEPT_MODES = {"JPEG": ("L", "RGB"), "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")}
CONVERTED_MODE = {"JPEG": "RGB", "PNG": "RGBA"}
JPEG_QUALITY = 90
# Damaged, truncated or unreadable content, as Pillow reports it.
DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)
NOT_AN_IMAGE = "Send a JPEG or PNG image; this file is not one (or is damaged or truncated)."


@dataclass(frozen=True)
class CheckedPhoto:
    """A photo that ``check_photo`` decoded in full: its re-encoded bytes and their format."""

    content: bytes
    image_format: str

    @property
    def extension(self) -> str:
        return FORMATS[self.image_format][0]


def check_photo(upload: File) -> CheckedPhoto:
    """``upload`` decoded and re-encoded (see the module's doc); ``ValidationError`` when it is
    not a whole JPEG or PNG image of at most ``PORTAL_PHOTO_MAX_PIXELS`` pixels."""
    max_pixels = settings.PORTAL_PHOTO_MAX_PIXELS
    try:
        upload.seek(0)
        # Only the two formats are tried: any other content is "not identified".
        with Image.open(upload, formats=list(FORMATS)) as image:
            image.verify()
        upload.seek(0)
        with Image.open(upload, formats=list(FORMATS)) as image:
            image_format = image.format
            width, height = image.size
            if width * height > max_pixels:
                raise ValidationError(
                    f"Send a photo of at most {max_pixels:,} pixels; this one is {width} × "
                    f"{height} ({width * height:,} pixels).",
                    code="invalid",
                )
            image.load()
            content = _reencoded(image, image_format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Past Pillow's own limit (a warning made an error, or its error): far past ours.
        raise ValidationError(
            f"Send a photo of at most {max_pixels:,} pixels; this one has far more.",
            code="invalid",
        ) from None
    except DECODING_ERRORS:
        raise ValidationError(NOT_AN_IMAGE, code="invalid") from None
    finally:
        upload.seek(0)
    if image_format not in FORMATS:  # pragma: no cover - Image.open tried these formats only
        raise ValidationError("Send a JPEG or PNG image.", code="invalid")
    return CheckedPhoto(content, image_format)


def _reencoded(image: Image.Image, image_format: str) -> bytes:
    """The decoded ``image`` written again in ``image_format``, with nothing but its pixels
    (and a PNG's transparency): the EXIF orientation applied, every metadata left out."""
    transparency = image.info.get("transparency")
    try:
        clean = ImageOps.exif_transpose(image)  # a new image, turned as the camera meant
    except (*DECODING_ERRORS, KeyError, TypeError):  # an unreadable orientation: as it is
        clean = image.copy()
    if clean.mode not in KEPT_MODES[image_format]:
        clean = clean.convert(CONVERTED_MODE[image_format])
        transparency = None
    # What Pillow's writers would take from the image's own info (comments, ICC, EXIF...).
    clean.info = {}
    options: dict = {}
    if image_format == "JPEG":
        options["quality"] = JPEG_QUALITY
    elif transparency is not None:
        options["transparency"] = transparency
    buffer = io.BytesIO()
    clean.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def store_photo(*, account_id: object, photo: CheckedPhoto) -> str:
    """Save ``photo``'s re-encoded bytes under a new random name in the default storage;
    returns the name, whose extension is the bytes' format."""
    name = f"{DIRECTORY}/{account_id}/{uuid.uuid4().hex}.{photo.extension}"
    return default_storage.save(name, ContentFile(photo.content))


def delete_photo(name: str) -> None:
    default_storage.delete(name)


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def photo_url(request, route: str, reading) -> str:
    """The absolute URL of ``route`` (a ``.../readings/{pk}/photo/`` route name) for ``reading``."""
    path = reverse(route, kwargs={"meter_id": reading.meter_id, "pk": reading.pk})
    return request.build_absolute_uri(path) if request is not None else path
