"""The admin's uploads are bounded by the ``IMPORT_MAX_BYTES`` setting (50 MB by default).

Past it the import page shows a form error on the file (never a 500), nothing is imported and
nothing is saved; the upload is not even kept on the way (``metering.uploads``: reading stops
at the limit, the rest of the body is read and dropped, with CSRF checks on as in a browser).
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory

from metering.models import Meter

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upload_dir")]

IMPORT_URL = "/admin/metering/meter/import/"
FILE = "name,serial_number,meter_type\n" + "".join(
    f"Meter {n},S-{n},ELECTRICITY\n" for n in range(200)
)


def post(client, account, content: bytes, **extra):
    data = {
        "account": str(account.pk),
        "kind": "meters",
        "file": SimpleUploadedFile("meters.csv", content, content_type="text/csv"),
    }
    return client.post(IMPORT_URL, data, **extra)


def file_errors(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return list(response.context["form"].errors.get("file", []))


def test_the_limit_is_a_setting_shown_as_a_form_error(member, account, settings, upload_dir):
    settings.IMPORT_MAX_BYTES = len(FILE) - 1
    response = post(member("MANAGER"), account, FILE.encode())
    (error,) = file_errors(response)
    assert "at most" in error and "manage.py import_meters" in error, error
    assert "token" not in response.context
    assert not Meter.objects.exists()
    assert not upload_dir.exists() or not any(upload_dir.iterdir())


def test_at_the_limit_the_file_is_previewed(member, account, settings):
    settings.IMPORT_MAX_BYTES = len(FILE)
    response = post(member("MANAGER"), account, FILE.encode())
    assert response.status_code == 200 and "token" in response.context
    assert response.context["result"].created == 200


def test_a_browser_post_with_its_csrf_token_gets_the_form_error(member, account, settings):
    """CSRF checks read the form before the view: the limit holds there already."""
    client = member("MANAGER")
    client.handler.enforce_csrf_checks = True
    page = client.get(IMPORT_URL)
    token = page.context["csrf_token"]
    settings.IMPORT_MAX_BYTES = 1000
    response = client.post(
        IMPORT_URL,
        {
            "csrfmiddlewaretoken": str(token),
            "account": str(account.pk),
            "kind": "meters",
            "file": SimpleUploadedFile("meters.csv", FILE.encode(), content_type="text/csv"),
        },
    )
    (error,) = file_errors(response)
    assert "at most" in error
    assert not Meter.objects.exists()


def test_reading_stops_at_the_limit(settings):
    """The parser keeps none of a file past the limit (it is not spooled to disk whole)."""
    settings.IMPORT_MAX_BYTES = 100_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every file would go to a temporary file
    content = b"x" * 1_000_000
    request = RequestFactory().post(
        IMPORT_URL,
        {"kind": "meters", "file": SimpleUploadedFile("big.csv", content)},
    )
    assert request.POST["kind"] == "meters"
    assert "file" not in request.FILES
    assert request.upload_refused == {"name": "big.csv", "limit": 100_000}


def test_api_uploads_are_left_to_the_api_limits(settings):
    settings.IMPORT_MAX_BYTES = 10
    request = RequestFactory().post(
        "/api/v1/portal/meters/1/readings/",
        {"photo": SimpleUploadedFile("p.png", b"y" * 1000)},
    )
    assert request.FILES["photo"].size == 1000
    assert not hasattr(request, "upload_refused")
