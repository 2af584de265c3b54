"""Photos of readings sent through the tenant portal (CONTRACT §6).

A photo is checked by its content with Pillow (its file name and declared type are not
trusted): a JPEG or PNG image that Pillow can open and verify, no other format. It is stored in
the default storage under a random name, ``reading-photos/<account id>/<uuid>.<jpg|png>``, and
is never served as public media: the API hands it out to those who may see the reading
(``.../readings/{id}/photo/``), which is what the reading's ``photo_url`` points to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image

# Pillow format → (file extension, media type).
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png")}
MEDIA_TYPES = {extension: media_type for extension, media_type in FORMATS.values()}
DIRECTORY = "reading-photos"


@dataclass(frozen=True)
class CheckedPhoto:
    """An upload that ``check_photo`` found to be a JPEG or PNG image."""

    upload: File
    image_format: str


def check_photo(upload: File) -> CheckedPhoto:
    """``upload`` if it is a JPEG or PNG image (``photo_format``); ``ValidationError`` if not."""
    return CheckedPhoto(upload, photo_format(upload))


def photo_format(upload: File) -> str:
    """``JPEG`` or ``PNG``, read from ``upload``'s content; ``ValidationError`` otherwise."""
    try:
        upload.seek(0)
        # Only the two formats are tried: any other content is "not identified".
        with Image.open(upload, formats=list(FORMATS)) as image:
            image_format = image.format
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError(
            "Send a JPEG or PNG image; this file is not one (or is damaged).", code="invalid"
        ) from None
    finally:
        upload.seek(0)
    if image_format not in FORMATS:  # pragma: no cover - Image.open tried these formats only
        raise ValidationError("Send a JPEG or PNG image.", code="invalid")
    return image_format


def store_photo(*, account_id: object, photo: CheckedPhoto) -> str:
    """Save ``photo`` under a new random name in the default storage; returns the name."""
    extension = FORMATS[photo.image_format][0]
    photo.upload.seek(0)
    name = f"{DIRECTORY}/{account_id}/{uuid.uuid4().hex}.{extension}"
    return default_storage.save(name, photo.upload)


def delete_photo(name: str) -> None:
    default_storage.delete(name)


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def photo_url(request, route: str, reading) -> str:
    """The absolute URL of ``route`` (a ``.../readings/{pk}/photo/`` route name) for ``reading``."""
    path = reverse(route, kwargs={"meter_id": reading.meter_id, "pk": reading.pk})
    return request.build_absolute_uri(path) if request is not None else path
