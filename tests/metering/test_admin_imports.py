"""The admin's "Import from CSV" page: roles, preview (a dry run), confirm, errors, accounts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from metering import admin_imports
from metering.imports import import_meters
from metering.models import Meter
from readings.models import Reading
from tests.factories import MembershipFactory, MeterFactory
from tests.metering.test_admin import messages_of, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upload_dir")]

IMPORT_URL = "/admin/metering/meter/import/"
HEADER = "name,serial_number,meter_type,multiplier,place_code"
FILE = (
    f"{HEADER}\n"
    "Good,G-1,ELECTRICITY,,\n"
    "\n"  # line 3: blank, skipped
    "Bad,B-1,ELECTRICITY,-1,\n"
    "Nowhere,N-1,GAS,,NOPE\n"
    "Also good,G-2,WATER,,\n"
)


def upload(client, account, text: str = FILE, *, kind: str = "meters", name: str = "m.csv"):
    data = {
        "account": str(account.pk),
        "kind": kind,
        "file": SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text),
    }
    return client.post(IMPORT_URL, data)


def confirm(client, response, button: str = "confirm"):
    return client.post(IMPORT_URL, {"token": response.context["token"], button: "1"})


def test_the_url_is_the_meter_lists():
    assert reverse("admin:metering_meter_import") == IMPORT_URL


def test_page_renders_for_a_manager_and_the_meter_list_links_to_it(member, account):
    client = member("MANAGER")
    page = client.get(IMPORT_URL)
    assert page.status_code == 200
    form = page.context["form"]
    assert [choice for choice, _ in form.fields["kind"].choices] == [
        "meters",
        "readings",
        "period_readings",
    ]
    assert list(form.fields["account"].queryset) == [account]
    listing = client.get(url("meter"))
    assert f'href="{IMPORT_URL}"' in listing.content.decode()


def test_a_viewer_is_refused(member, account):
    client = member("VIEWER")
    assert client.get(IMPORT_URL).status_code == 403
    assert upload(client, account).status_code == 403
    assert f'href="{IMPORT_URL}"' not in client.get(url("meter")).content.decode()
    assert not Meter.objects.exists()


def test_preview_shows_the_counts_and_rejected_rows_and_stores_nothing(member, account):
    client = member("MANAGER")
    response = upload(client, account)
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.created, result.skipped, result.rejected) == (2, 0, 2)
    assert [(line, code) for line, code, _ in response.context["shown_rows"]] == [
        (4, "validation_error"),
        (5, "unknown_place"),
    ]
    html = response.content.decode()
    assert "<td>4</td>" in html and "unknown_place" in html and "Confirm import" in html
    assert not Meter.objects.exists()
    # The file waits for the confirmation under the session's token.
    token = response.context["token"]
    assert (admin_imports.UPLOAD_DIR / token / admin_imports.UPLOAD_NAME).is_file()


def test_confirm_stores_the_accepted_rows_and_deletes_the_file(member, account):
    client = member("ADMIN")
    preview = upload(client, account)
    token = preview.context["token"]
    response = confirm(client, preview)
    assert response.status_code == 302
    assert response["Location"] == url("meter")
    serials = Meter.objects.filter(account=account).values_list("serial_number", flat=True)
    assert sorted(serials) == ["G-1", "G-2"]
    assert messages_of(response) == [
        f"Meters from m.csv into {account}: 2 created, 0 skipped (already there), 2 rejected "
        "(not stored)."
    ]
    assert not (admin_imports.UPLOAD_DIR / token).exists()
    # The same token again: the upload is gone, nothing more is stored.
    again = client.post(IMPORT_URL, {"token": token, "confirm": "1"})
    assert again.status_code == 302
    assert "upload the file again" in messages_of(again)[-1]
    assert Meter.objects.count() == 2


def test_the_admin_and_the_command_store_the_same_rows(member, account, other_account, tmp_path):
    """The page calls metering.imports.import_meters, as the command does."""
    client = member("MANAGER")
    confirm(client, upload(client, account))
    path = tmp_path / "m.csv"
    path.write_text(FILE, encoding="utf-8")
    result = import_meters(account=other_account, path=str(path))
    assert (result.created, result.skipped, result.rejected) == (2, 0, 2)
    assert [row[:2] for row in result.rejected_rows] == [
        (4, "validation_error"),
        (5, "unknown_place"),
    ]
    fields = ("serial_number", "name", "meter_type", "unit", "multiplier", "status")

    def stored(owner):
        return list(Meter.objects.filter(account=owner).order_by("serial_number").values(*fields))

    assert stored(account) == stored(other_account)


def test_reimport_skips_what_is_there(member, account):
    MeterFactory(account=account, serial_number="G-1")
    client = member("MANAGER")
    result = upload(client, account).context["result"]
    assert (result.created, result.skipped) == (1, 1)


def test_cancel_deletes_the_file_and_stores_nothing(member, account):
    client = member("MANAGER")
    preview = upload(client, account)
    response = confirm(client, preview, "cancel")
    assert response.status_code == 302
    assert "cancelled" in messages_of(response)[0]
    assert not (admin_imports.UPLOAD_DIR / preview.context["token"]).exists()
    assert not Meter.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,serial_number\nA,1\n", "bad.csv: missing required column(s) meter_type."),
        (f"{HEADER},colour\nA,1,GAS,,,red\n", "bad.csv: unknown column(s) colour"),
        ("\n", "bad.csv is empty"),
        (f"{HEADER}\nCompteur é,S-2,GAS,,\n".encode("latin-1"), "bad.csv is not UTF-8: line 2"),
    ],
)
def test_an_unreadable_file_is_a_message(member, account, content, message):
    client = member("MANAGER")
    response = upload(client, account, content, name="bad.csv")
    assert response.status_code == 200
    assert "form" in response.context and "token" not in response.context
    shown = messages_of(response)
    assert len(shown) == 1 and shown[0].startswith(message), shown
    # Neither the saved file's path nor anything of the file is kept.
    assert str(admin_imports.UPLOAD_DIR) not in shown[0]
    assert not any(admin_imports.UPLOAD_DIR.iterdir())
    assert not Meter.objects.exists()


def test_a_file_too_large_is_refused(member, account, settings):
    settings.IMPORT_MAX_BYTES = 10
    response = upload(member("MANAGER"), account)
    assert response.status_code == 200
    assert "at most" in str(response.context["form"].errors["file"])
    assert not Meter.objects.exists()


def test_another_accounts_import_is_refused(member, account, other_account):
    client = member("MANAGER")
    assert upload(client, other_account).status_code == 403
    assert not Meter.objects.exists()


def test_an_operator_imports_readings_not_meters(member, account, other_account):
    operator = member("OPERATOR")
    page = operator.get(IMPORT_URL)
    assert [choice for choice, _ in page.context["form"].fields["kind"].choices] == [
        "readings",
        "period_readings",
    ]
    response = upload(operator, account, kind="meters")
    assert response.status_code == 200
    assert "kind" in response.context["form"].errors
    # MANAGER of one account, OPERATOR of the other: meters into the first only.
    client = member("MANAGER")
    MembershipFactory(user=client.user, account=other_account, role="OPERATOR")
    response = upload(client, other_account, kind="meters")
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        f"Your role in {other_account} does not allow importing meters."
    ]
    assert not Meter.objects.exists()


def test_readings_preview_and_confirm_through_readings_imports(member, account):
    meter = MeterFactory(account=account, serial_number="E-1")
    operator = member("OPERATOR")
    text = (
        "serial_number,reading_date,value\n"
        "E-1,2024-01-01T00:00:00Z,100\n"
        "NOPE,2024-01-01T00:00:00Z,5\n"
        "E-1,2024-01-02T00:00:00Z,130\n"
    )
    preview = upload(operator, account, text, kind="readings", name="r.csv")
    result = preview.context["result"]
    assert (result.created, result.skipped, result.rejected) == (2, 0, 1)
    assert [(row.line, row.code) for row in preview.context["shown_rows"]] == [(3, "unknown_meter")]
    assert not Reading.objects.exists()
    response = confirm(operator, preview)
    assert response["Location"] == url("reading", app="readings")
    stored = Reading.objects.filter(meter=meter).order_by("reading_date")
    assert [(r.value, r.consumption, r.source) for r in stored] == [
        (Decimal(100), None, "IMPORT"),
        (Decimal(130), Decimal(30), "IMPORT"),
    ]
    assert {r.created_by for r in stored} == {f"user:{operator.user.get_username()}"}


def test_a_confirmation_from_another_session_is_refused(member, account):
    preview = upload(member("MANAGER"), account)
    intruder = member("MANAGER")
    response = confirm(intruder, preview)
    assert "upload the file again" in messages_of(response)[0]
    assert not Meter.objects.exists()


def test_a_superuser_imports_into_any_account(superuser_client, other_account):
    preview = upload(superuser_client, other_account)
    confirm(superuser_client, preview)
    assert Meter.objects.filter(account=other_account).count() == 2


def test_uploads_older_than_an_hour_are_deleted(member, account, monkeypatch):
    client = member("MANAGER")
    preview = upload(client, account)
    monkeypatch.setattr(admin_imports, "UPLOAD_MAX_AGE_SECONDS", -1)
    response = confirm(client, preview)
    assert "upload the file again" in messages_of(response)[0]
    assert not any(admin_imports.UPLOAD_DIR.iterdir())
    assert not Meter.objects.exists()
