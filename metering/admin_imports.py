"""The admin's "Import from CSV" page: the ``import_*`` commands (CONTRACT §7) in the browser.

Reached from the meter list (``/admin/metering/meter/import/``). The member chooses an account,
what the file holds (meters; index and period readings once ``readings`` plugs them in through
:data:`IMPORT_KINDS`) and the file; then:

1. the upload (at most the ``IMPORT_MAX_BYTES`` setting, 50 MB by default: a year of
   quarter-hour readings of a hundred meters is about that; ``metering.uploads`` stops reading
   a larger file, which is a form error) is saved under :data:`UPLOAD_DIR`, in a directory
   named by a random token that only the member's session knows;
2. a dry run of the import (the same function as the command's, ``dry_run=True``) shows the
   counts and the first :data:`SHOWN_REJECTED_ROWS` rejected rows (line, code, message);
3. "Confirm import" runs the import on the same saved file and shows the counts as a message;
   "Cancel" drops the file. Either way the file is deleted; files left behind (a preview never
   confirmed) are deleted an hour after their upload, the next time someone opens the page.

Who may import what follows the roles (CONTRACT §1): meters need ``meters:write`` in the
account (MANAGER, ADMIN), readings ``readings:write`` (OPERATOR too); superusers import into
any account. Posting an account the member may import nothing into is refused (403); a file
that cannot be read (not UTF-8, a wrong header, too large) is an error message, never a 500.

The saved file lives on the server's disk between the preview and the confirmation: with several
web servers, the confirmation must reach the one that took the upload (or ``UPLOAD_DIR`` must be
shared storage).
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from metering.admin_base import AccountIds, member_roles, role_grants
from metering.imports import ImportResult, import_meters
from metering.models import Account
from metering.uploads import max_bytes, shown_size, too_large_message

UPLOAD_MAX_AGE_SECONDS = 3600
SHOWN_REJECTED_ROWS = 200
UPLOAD_DIR = Path(tempfile.gettempdir()) / "metering-admin-imports"
UPLOAD_NAME = "upload.csv"
# request.session[SESSION_KEY]: {token: {"account": id, "kind": name, "name": file name}}.
SESSION_KEY = "admin_imports"
TOKEN_PATTERN = re.compile(r"[0-9a-f]{32}")

IMPORT_TEMPLATE = "admin/imports/import.html"
PREVIEW_TEMPLATE = "admin/imports/preview.html"


@dataclass(frozen=True)
class ImportKind:
    """What a file may hold: its label, who may import it and the import function.

    ``run(account=..., path=..., dry_run=..., user=...)`` returns an import's result: the counts
    ``created``, ``skipped``, ``rejected`` and ``rejected_rows`` (each with ``line``, ``code``,
    ``message``), as ``metering.imports.ImportResult`` has them; it raises ``CommandError``
    when the file cannot be imported at all. ``user`` is who imports, for the audit.
    ``changelist`` names the admin list shown after the import.
    """

    label: str
    # A member needs ``<scope>:write`` in the account (CONTRACT §1).
    scope: str
    run: Callable[..., ImportResult]
    changelist: str


def run_meters_import(*, account: Account, path: str, dry_run: bool, user: Any) -> ImportResult:
    return import_meters(account=account, path=path, dry_run=dry_run)


# In the order the page offers them. ``readings.admin`` adds the readings kinds: metering does
# not depend on readings (STYLE.md).
IMPORT_KINDS: dict[str, ImportKind] = {
    "meters": ImportKind(
        label="Meters",
        scope="meters",
        run=run_meters_import,
        changelist="admin:metering_meter_changelist",
    ),
}


# --- who may import what -------------------------------------------------------------------


def importable_account_ids(request: HttpRequest, kind: ImportKind) -> AccountIds:
    """The ids of the accounts the user may import ``kind`` into; None: every account."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return frozenset()
    if user.is_superuser:
        return None
    return frozenset(
        account_id
        for account_id, role in member_roles(request).items()
        if role_grants(role, kind.scope, "write")
    )


def import_targets(request: HttpRequest) -> dict[str, AccountIds]:
    """``{kind name: account ids}`` for the kinds the user may import into some account.

    No query: the roles are read once per request (``member_roles``).
    """
    targets = {name: importable_account_ids(request, kind) for name, kind in IMPORT_KINDS.items()}
    return {name: ids for name, ids in targets.items() if ids is None or ids}


def may_import(targets: dict[str, AccountIds], kind_name: str, account_id: Any) -> bool:
    if kind_name not in targets:
        return False
    ids = targets[kind_name]
    return ids is None or str(account_id) in {str(pk) for pk in ids}


def importable_accounts(targets: dict[str, AccountIds]) -> QuerySet[Account]:
    """The accounts the user may import something into."""
    if any(ids is None for ids in targets.values()):
        return Account.objects.all()
    return Account.objects.filter(pk__in=set().union(*targets.values()))


def import_url(request: HttpRequest) -> str | None:
    """The import page's address for a list's "Import from CSV" link; None when not allowed."""
    if not import_targets(request):
        return None
    return reverse("admin:metering_meter_import")


# --- the form ------------------------------------------------------------------------------


class ImportForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), empty_label=None)
    kind = forms.ChoiceField(label="The file holds")
    file = forms.FileField(label="CSV file")

    def __init__(
        self,
        *args: Any,
        targets: dict[str, AccountIds],
        refused: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.targets = targets
        # The upload metering.uploads stopped reading at the limit (request.upload_refused).
        self.refused = refused
        self.fields["account"].queryset = importable_accounts(targets).order_by("name")
        self.fields["kind"].choices = [(name, IMPORT_KINDS[name].label) for name in targets]
        self.fields["file"].help_text = (
            "UTF-8 (with or without BOM), ',' or ';' delimited, the API's field names on line 1; "
            f"at most {shown_size(max_bytes())}."
        )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = max_bytes()
        if upload.size > limit:
            raise forms.ValidationError(too_large_message(limit=limit, size=upload.size))
        return upload

    def clean(self):
        data = super().clean()
        if self.refused is not None:
            # The file was dropped on the way ("This field is required"): say why.
            self.errors.pop("file", None)
            self.add_error("file", too_large_message(limit=self.refused["limit"]))
        account, kind = data.get("account"), data.get("kind")
        if account is not None and kind and not may_import(self.targets, kind, account.pk):
            raise forms.ValidationError(
                f"Your role in {account} does not allow importing "
                f"{IMPORT_KINDS[kind].label.lower()}."
            )
        return data


# --- saved uploads -------------------------------------------------------------------------


def upload_path(token: str) -> Path:
    return UPLOAD_DIR / token / UPLOAD_NAME


def save_upload(upload: Any) -> str:
    """Save an uploaded file under a new random token; the token."""
    token = secrets.token_hex(16)
    directory = UPLOAD_DIR / token
    directory.mkdir(parents=True, mode=0o700)
    with open(directory / UPLOAD_NAME, "wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return token


def delete_upload(request: HttpRequest, token: str) -> None:
    shutil.rmtree(UPLOAD_DIR / token, ignore_errors=True)
    uploads = request.session.get(SESSION_KEY, {})
    if token in uploads:
        request.session[SESSION_KEY] = {k: v for k, v in uploads.items() if k != token}


def delete_stale_uploads(request: HttpRequest) -> None:
    """Delete the uploads older than an hour (everyone's) and forget the session's missing ones."""
    if UPLOAD_DIR.is_dir():
        oldest = time.time() - UPLOAD_MAX_AGE_SECONDS
        for directory in UPLOAD_DIR.iterdir():
            try:
                if directory.stat().st_mtime < oldest:
                    shutil.rmtree(directory, ignore_errors=True)
            except FileNotFoundError:
                continue  # deleted by another request meanwhile
    uploads = request.session.get(SESSION_KEY, {})
    kept = {token: info for token, info in uploads.items() if upload_path(token).is_file()}
    if kept != uploads:
        request.session[SESSION_KEY] = kept


def readable_error(error: CommandError, saved: Path, name: str) -> str:
    """The import's error with the uploaded file's name instead of the saved file's path."""
    return str(error).replace(str(saved), name)


# --- the views -----------------------------------------------------------------------------


def import_urls(model_admin: ModelAdmin) -> list:
    view = model_admin.admin_site.admin_view
    return [
        path(
            "import/",
            view(lambda request: import_view(request, model_admin)),
            name="metering_meter_import",
        ),
    ]


def import_view(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """GET: the form; POST the form: save and preview; POST ``confirm`` or ``cancel``."""
    targets = import_targets(request)
    if not targets:
        raise PermissionDenied
    delete_stale_uploads(request)
    if request.method == "POST" and "token" in request.POST:
        return confirm_or_cancel(request, targets)
    if request.method == "POST":
        posted_account = request.POST.get("account", "")
        if not importable_accounts(targets).filter(pk=as_uuid(posted_account)).exists():
            # Not an account where the member may import anything: not theirs to try.
            raise PermissionDenied
        form = ImportForm(
            request.POST,
            request.FILES,
            targets=targets,
            refused=getattr(request, "upload_refused", None),
        )
        if form.is_valid():
            response = preview(request, model_admin, form)
            if response is not None:
                return response
    else:
        form = ImportForm(targets=targets)
    return render(request, model_admin, IMPORT_TEMPLATE, {"form": form, "title": "Import from CSV"})


def as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def render(
    request: HttpRequest, model_admin: ModelAdmin, template: str, context: dict[str, Any]
) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "import_url": reverse("admin:metering_meter_import"),
        **context,
    }
    return TemplateResponse(request, template, context)


def preview(
    request: HttpRequest, model_admin: ModelAdmin, form: ImportForm
) -> TemplateResponse | None:
    """Save the upload and show what importing it would do; None (and a message) when the file
    cannot be read, so that the form is shown again."""
    account, kind_name = form.cleaned_data["account"], form.cleaned_data["kind"]
    upload = form.cleaned_data["file"]
    kind = IMPORT_KINDS[kind_name]
    token = save_upload(upload)
    saved = upload_path(token)
    try:
        result = kind.run(account=account, path=str(saved), dry_run=True, user=request.user)
    except CommandError as error:
        shutil.rmtree(saved.parent, ignore_errors=True)
        messages.error(request, readable_error(error, saved, upload.name))
        return None
    request.session[SESSION_KEY] = {
        **request.session.get(SESSION_KEY, {}),
        token: {"account": str(account.pk), "kind": kind_name, "name": upload.name},
    }
    context = {
        "title": f"Import {kind.label.lower()} into {account}: preview",
        "account": account,
        "kind": kind,
        "file_name": upload.name,
        "result": result,
        "shown_rows": result.rejected_rows[:SHOWN_REJECTED_ROWS],
        "hidden_rows": max(result.rejected - SHOWN_REJECTED_ROWS, 0),
        "token": token,
        "max_age_minutes": UPLOAD_MAX_AGE_SECONDS // 60,
    }
    return render(request, model_admin, PREVIEW_TEMPLATE, context)


def confirm_or_cancel(request: HttpRequest, targets: dict[str, AccountIds]) -> HttpResponseRedirect:
    token = request.POST["token"]
    here = reverse("admin:metering_meter_import")
    info = (
        request.session.get(SESSION_KEY, {}).get(token) if TOKEN_PATTERN.fullmatch(token) else None
    )
    if info is None or not upload_path(token).is_file():
        messages.error(
            request,
            f"This upload is no longer kept (uploads are kept {UPLOAD_MAX_AGE_SECONDS // 60} "
            "minutes): upload the file again.",
        )
        return HttpResponseRedirect(here)
    if "confirm" not in request.POST:
        delete_upload(request, token)
        messages.info(request, f"Import of {info['name']} cancelled: nothing was stored.")
        return HttpResponseRedirect(here)
    kind_name = info["kind"]
    account = Account.objects.filter(pk=info["account"]).first()
    if account is None or not may_import(targets, kind_name, account.pk):
        # The member's role changed since the preview.
        delete_upload(request, token)
        raise PermissionDenied
    kind = IMPORT_KINDS[kind_name]
    saved = upload_path(token)
    try:
        result = kind.run(account=account, path=str(saved), dry_run=False, user=request.user)
    except CommandError as error:
        messages.error(request, readable_error(error, saved, info["name"]))
        return HttpResponseRedirect(here)
    finally:
        delete_upload(request, token)
    level = messages.WARNING if result.rejected else messages.SUCCESS
    messages.add_message(
        request,
        level,
        f"{kind.label} from {info['name']} into {account}: {result.created} created, "
        f"{result.skipped} skipped (already there), {result.rejected} rejected"
        + (" (not stored)." if result.rejected else "."),
    )
    return HttpResponseRedirect(reverse(kind.changelist))
