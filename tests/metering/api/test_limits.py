"""Request size limits (issue 6, point 4) and the API's cache and content headers.

An oversized body is refused with 413 ``payload_too_large`` by its Content-Length, before it
is read: before authentication, parsing, or the view. The batch limit (500 readings, 400
``batch_too_large``, nothing stored) is in tests/readings/api/test_batch.py.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from metering.api.middleware import MULTIPART_OVERHEAD_BYTES
from metering.models import Meter
from readings.models import Reading
from tests.factories import MeterFactory

pytestmark = pytest.mark.django_db


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def meter_body(size: int) -> bytes:
    """A meter's JSON of exactly ``size`` bytes (its notes fill it)."""
    body = {"name": "n", "serial_number": "S1", "meter_type": "WATER", "notes": ""}
    padding = size - len(json.dumps(body).encode())
    assert padding >= 0
    body["notes"] = "x" * padding
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


class TestJsonBodies:
    def test_default_limit_is_2_mb(self, settings):
        assert settings.API_MAX_BODY_BYTES == 2 * 1024 * 1024
        assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.API_MAX_BODY_BYTES

    def test_oversized_json_post_is_413_and_stores_nothing(self, api, settings):
        body = meter_body(settings.API_MAX_BODY_BYTES + 1)
        response = api.post("/api/v1/meters/", body, content_type="application/json")
        assert response.status_code == 413
        error = error_of(response)
        assert error["code"] == "payload_too_large"
        assert error["details"] == {}
        assert str(settings.API_MAX_BODY_BYTES) in error["message"]
        assert not Meter.objects.exists()

    def test_oversized_body_is_refused_before_authentication(self, settings):
        """No credentials: the 413 comes before the 401, so nothing of the body was used."""
        body = meter_body(settings.API_MAX_BODY_BYTES + 1)
        response = APIClient().post("/api/v1/meters/", body, content_type="application/json")
        assert response.status_code == 413
        assert error_of(response)["code"] == "payload_too_large"

    @override_settings(API_MAX_BODY_BYTES=1000)
    def test_a_body_at_the_limit_goes_through(self, api):
        response = api.post("/api/v1/meters/", meter_body(1000), content_type="application/json")
        assert response.status_code == 201, response.json()
        response = api.post("/api/v1/meters/", meter_body(1001), content_type="application/json")
        assert response.status_code == 413

    def test_the_fullest_batch_of_500_readings_fits_with_room_to_spare(
        self, api, account, settings
    ):
        """Every field a batch item can carry, 500 times: about a tenth of the limit."""
        meter = MeterFactory(account=account)
        items = [
            {
                "reading_date": f"2024-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:"
                f"{n % 60:02d}:00+01:00",
                "value": f"{1000000 + n * 17}.125",
                "register": "default",
                "reading_type": "AUTOMATIC",
                "is_estimated": False,
                "is_billing_reading": False,
                "photo_url": f"https://photos.example.com/readings/{n:06d}.jpg",
                "reader_name": "gateway-0042",
                "notes": "Read by the building's LoRaWAN gateway, frame counter checked.",
            }
            for n in range(500)
        ]
        body = json.dumps({"readings": items}).encode()
        assert 100_000 < len(body) < settings.API_MAX_BODY_BYTES // 5
        response = api.post(
            f"/api/v1/meters/{meter.pk}/readings/batch/", body, content_type="application/json"
        )
        assert response.status_code == 201
        data = response.json()["data"]
        assert (data["accepted"], data["rejected"]) == (500, 0), data["errors"][:3]
        assert Reading.objects.count() == 500


class TestMultipartBodies:
    def photo_of(self, size: int) -> SimpleUploadedFile:
        return SimpleUploadedFile("meter.jpg", b"\xff\xd8\xff" + b"0" * (size - 3), "image/jpeg")

    def test_oversized_upload_is_413_before_the_view_runs(self, settings):
        """A photo past PORTAL_PHOTO_MAX_BYTES plus the form's room: refused unread, even
        without credentials, on any API route."""
        size = settings.PORTAL_PHOTO_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
        response = APIClient().post(
            "/api/v1/meters/", {"photo": self.photo_of(size)}, format="multipart"
        )
        assert response.status_code == 413
        error = error_of(response)
        assert error["code"] == "payload_too_large"
        assert "multipart" in error["message"]

    def test_a_photo_of_the_largest_size_passes_the_limit(self, api, settings):
        # /api/v1/meters/ takes JSON only: reaching its 415 shows the upload got through.
        size = settings.PORTAL_PHOTO_MAX_BYTES
        response = api.post(
            "/api/v1/meters/",
            {"reading_type": "PHOTO", "photo": self.photo_of(size)},
            format="multipart",
        )
        assert response.status_code == 415
        assert not Meter.objects.exists()

    @override_settings(PORTAL_PHOTO_MAX_BYTES=1000)
    def test_the_limit_follows_the_photo_setting(self, api):
        response = api.post(
            "/api/v1/meters/",
            {"photo": self.photo_of(1000 + MULTIPART_OVERHEAD_BYTES)},
            format="multipart",
        )
        assert response.status_code == 413


class TestBodiesWithoutLength:
    def test_chunked_body_is_a_400_not_read(self, api, settings):
        body = meter_body(settings.API_MAX_BODY_BYTES * 2)
        response = api.post(
            "/api/v1/meters/",
            body,
            content_type="application/json",
            CONTENT_LENGTH="",
            HTTP_TRANSFER_ENCODING="chunked",
        )
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "validation_error"
        assert "Content-Length" in error["message"]
        assert not Meter.objects.exists()

    def test_body_without_any_length_is_read_as_empty(self, api, settings):
        """WSGI reads Content-Length bytes: none here, so the API sees an empty body."""
        body = meter_body(settings.API_MAX_BODY_BYTES * 2)
        response = api.post(
            "/api/v1/meters/", body, content_type="application/json", CONTENT_LENGTH=""
        )
        assert response.status_code == 400
        assert set(error_of(response)["details"]) >= {"name", "serial_number", "meter_type"}
        assert not Meter.objects.exists()

    def test_content_length_that_is_not_a_number_is_a_400(self, api):
        response = api.post(
            "/api/v1/meters/", b"{}", content_type="application/json", CONTENT_LENGTH="lots"
        )
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"


class TestHeaders:
    def test_authenticated_responses_are_never_cached(self, api):
        response = api.get("/api/v1/places/")
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"
        assert response["X-Content-Type-Options"] == "nosniff"

    @pytest.mark.parametrize("path", ["/api/v1/places/", "/api/v1/no-such-route/"])
    def test_errors_are_never_cached_either(self, path):
        response = APIClient().get(path)
        assert response.status_code in (401, 404)
        assert response["Cache-Control"] == "no-store"

    def test_errors_of_the_schema_route_are_json(self, settings):
        # The schema renders YAML by default; its errors are JSON like every other.
        rest = dict(settings.REST_FRAMEWORK)
        rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "anonymous": "0/min"}
        settings.REST_FRAMEWORK = rest
        response = APIClient().get("/api/schema/")
        assert response.status_code == 429
        assert response["Content-Type"] == "application/json"
        assert error_of(response)["code"] == "rate_limited"
