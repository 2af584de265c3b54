"""Readings sent with a photo (CONTRACT §6): JPEG or PNG by content, size-limited, stored
under a random name and handed out only through authenticated routes."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from readings.models import Reading
from tests.billing.api import assert_error
from tests.billing.portal.conftest import image_bytes, photo_file, stored_files
from tests.factories import MeterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


def url(meter, suffix: str = "") -> str:
    return f"/api/v1/portal/meters/{meter.pk}/readings/{suffix}"


def send(client, meter, photo, **fields):
    body = {"reading_date": "2024-03-01", "value": "42.5", **fields, "photo": photo}
    return client.post(url(meter), body, format="multipart")


@pytest.mark.parametrize(
    ("image_format", "extension", "media_type"),
    [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg")],
)
def test_a_png_or_jpeg_photo_is_stored_and_handed_out(
    portal, meter, account, media_root, image_format, extension, media_type
):
    content = image_bytes(image_format)
    upload = SimpleUploadedFile("IMG_0001.HEIC", content, content_type="application/x-what")
    response = send(portal, meter, upload, notes="kitchen")
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    reading = Reading.objects.get()
    assert data["reading_type"] == "PHOTO" == reading.reading_type
    assert reading.source == "PORTAL" and reading.notes == "kitchen"
    # A random name under the account's directory, with the extension of the real format.
    (stored,) = stored_files(media_root)
    assert stored.relative_to(media_root).parts[:2] == ("reading-photos", str(account.pk))
    assert stored.suffix == f".{extension}" and len(stored.stem) == 32
    assert reading.photo.name == str(stored.relative_to(media_root))
    # Stored re-encoded (readings.photos): the same image, in the same format.
    with Image.open(stored) as kept:
        assert (kept.format, kept.size) == (image_format, (4, 3))
    stored_content = stored.read_bytes()
    # photo_url is the portal's download route, which answers the photo to its tenant.
    photo_path = url(meter, f"{reading.pk}/photo/")
    assert data["photo_url"] == f"http://testserver{photo_path}"
    download = portal.get(photo_path)
    assert download.status_code == 200
    assert download["Content-Type"] == media_type
    assert b"".join(download.streaming_content) == stored_content
    listed = portal.get(url(meter)).json()["data"]
    assert listed[0]["photo_url"] == data["photo_url"]


def test_a_given_reading_type_is_kept(portal, meter):
    response = send(portal, meter, photo_file(), reading_type="MANUAL")
    assert response.json()["data"]["reading_type"] == "MANUAL"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("meter.jpg", b"This is a text file, renamed .jpg.\n"),
        ("meter.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),  # a PNG signature, then nothing
        ("meter.gif", image_bytes("GIF")),
        ("meter.bmp", image_bytes("BMP")),
        ("meter.jpg", image_bytes("JPEG")[:40]),  # a truncated JPEG
        ("empty.png", b""),
    ],
    ids=["text", "bad-png", "gif", "bmp", "truncated-jpeg", "empty"],
)
def test_anything_but_a_png_or_jpeg_image_is_400_and_nothing_is_stored(
    portal, meter, media_root, name, content
):
    upload = SimpleUploadedFile(name, content, content_type="image/jpeg")
    response = send(portal, meter, upload)
    assert_error(response, 400, "validation_error", "photo")
    assert not Reading.objects.exists()
    assert stored_files(media_root) == []


def test_a_photo_over_the_limit_is_413_and_nothing_is_stored(portal, meter, media_root, settings):
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 80).save(buffer, format="PNG")  # noise: it does not compress
    content = buffer.getvalue()
    settings.PORTAL_PHOTO_MAX_BYTES = len(content) - 1
    upload = SimpleUploadedFile("meter.png", content, content_type="image/png")
    response = send(portal, meter, upload)
    assert_error(response, 413, "payload_too_large")
    assert not Reading.objects.exists()
    assert stored_files(media_root) == []
    settings.PORTAL_PHOTO_MAX_BYTES = len(content)
    upload = SimpleUploadedFile("meter.png", content, content_type="image/png")
    assert send(portal, meter, upload).status_code == 201


def test_a_body_far_over_the_limit_is_refused_from_its_length(portal, meter, media_root, settings):
    """Past the limit and a form's overhead (64 KB), the body is not even read."""
    settings.PORTAL_PHOTO_MAX_BYTES = 0
    upload = SimpleUploadedFile("meter.png", b"x" * (64 * 1024 + 1), content_type="image/png")
    assert_error(send(portal, meter, upload), 413, "payload_too_large")
    assert stored_files(media_root) == []


def test_a_refused_reading_keeps_no_photo(portal, meter, media_root):
    assert send(portal, meter, photo_file()).status_code == 201
    assert_error(send(portal, meter, photo_file()), 409, "duplicate_reading")
    assert Reading.objects.count() == 1
    assert len(stored_files(media_root)) == 1


def test_a_photo_for_an_automatic_meter_is_409_and_not_stored(
    portal, account, estate, lease, media_root
):
    automatic = MeterFactory(account=account, estate=estate, communication_type="MQTT")
    assert_error(send(portal, automatic, photo_file()), 409, "conflict")
    assert stored_files(media_root) == []


def test_a_photo_in_a_json_body_is_400(portal, meter):
    body = {"reading_date": "2024-03-01", "value": 1, "photo": "aGVsbG8="}
    response = portal.post(url(meter), body, format="json")
    assert_error(response, 400, "validation_error", "photo")


def test_an_idempotent_photo_is_stored_once(portal, meter, media_root):
    first = portal.post(
        url(meter),
        {"reading_date": "2024-03-01", "value": 1, "photo": photo_file()},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="photo-1",
    )
    again = portal.post(
        url(meter),
        {"reading_date": "2024-03-01", "value": 1, "photo": photo_file()},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="photo-1",
    )
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = portal.post(
        url(meter),
        {"reading_date": "2024-03-01", "value": 1, "photo": photo_file("JPEG", "m.jpg")},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="photo-1",
    )
    assert_error(other, 422, "idempotency_key_reused")
    assert Reading.objects.count() == 1 and len(stored_files(media_root)) == 1


def test_a_reading_without_photo_has_no_photo_route(portal, meter):
    response = portal.post(url(meter), {"reading_date": "2024-03-01", "value": 1}, format="json")
    reading_id = response.json()["data"]["id"]
    assert_error(portal.get(url(meter, f"{reading_id}/photo/")), 404, "not_found")


class TestAccountRoute:
    """Account keys download the photo at /api/v1/meters/{meter_id}/readings/{id}/photo/."""

    @pytest.fixture
    def reading(self, portal, meter) -> Reading:
        assert send(portal, meter, photo_file()).status_code == 201
        return Reading.objects.get()

    def test_an_account_key_with_readings_read_downloads_it(
        self, reading, meter, account, make_client
    ):
        client = make_client(account, scopes=["readings:read"])
        path = f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/photo/"
        response = client.get(path)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content) == image_bytes("PNG")
        data = client.get(f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/").json()["data"]
        assert data["photo_url"] == f"http://testserver{path}"
        assert data["source"] == "PORTAL"

    def test_it_needs_the_scope_and_the_account(self, reading, meter, account, make_client):
        path = f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/photo/"
        client = make_client(account, scopes=["meters:read"])
        assert_error(client.get(path), 403, "insufficient_scope")

    def test_another_account_gets_404(self, reading, meter, other_api):
        path = f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/photo/"
        assert_error(other_api.get(path), 404, "not_found")

    def test_the_file_is_not_served_as_media(self, reading, client):
        assert client.get(f"/media/{reading.photo.name}").status_code == 404
