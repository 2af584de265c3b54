"""``Idempotency-Key`` on POSTs that create readings (CONTRACT §2).

The same key with the same body within 24 h replays the first response (same status and
body, header ``Idempotent-Replayed: true``) and writes nothing; the same key with another body
is a 422 ``idempotency_key_reused``. Keys are remembered per credential (the API key, portal
key, gateway key or member that sent them, see ``credential_of``), never shared between two
credentials of one account: otherwise one (a tenant's portal key) could claim the keys another
(the account's integration) is about to send, turning its writes into 422s or replays of
someone else's response. A form's files count by their content's SHA-256.

The key is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` then locked, inside the request's
transaction: a second request with the same key waits for the first to finish, then replays
it. A request that fails with an error stores nothing: retrying it runs it again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import timedelta

from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from metering.errors import IdempotencyKeyReused
from metering.models import IdempotencyRecord

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255

SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Optional, at most 255 characters. The same key with the same body within 24 h "
        "replays the first response (header `Idempotent-Replayed: true`) and writes nothing; "
        "with another body it is a 422. Keys are remembered per credential (API key, portal "
        "key, gateway key or member), never shared between two credentials of one account."
    ),
)


def _file_digest(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return f"sha256:{digest.hexdigest()}"


def _body(request) -> object:
    """The request's data as JSON can hold it: a form's every value, its files by content."""
    data = request.data
    if not hasattr(data, "lists"):
        return data
    return {
        name: [_file_digest(v) if isinstance(v, UploadedFile) else v for v in values]
        for name, values in data.lists()
    }


def fingerprint(request, credential: str = "") -> str:
    body = json.dumps(_body(request), sort_keys=True, separators=(",", ":"), cls=JSONEncoder)
    who = f" {credential}" if credential else ""
    text = f"{request.method} {request.path}{who}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def credential_of(request) -> str:
    """Who sent the request, as stored with its keys: ``<app.model>:<pk>`` of the key that
    authenticated it (``request.auth``: an API, portal or gateway key), else ``user:<pk>`` for a
    member's session (every session of one member is one credential)."""
    auth = request.auth
    if isinstance(auth, models.Model):
        return f"{auth._meta.label_lower}:{auth.pk}"
    return f"user:{request.user.pk}"


def idempotent(view_method):
    """Make a view method that creates readings honour ``Idempotency-Key``."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise exceptions.ValidationError(
                {HEADER: [f"Send 1 to {MAX_KEY_LENGTH} printable characters."]}
            )
        # Keys are the credential's own (``credential_of``); a view may bind a key's body to
        # more (the portal: to the tenant), which its fingerprint then includes.
        digest = fingerprint(request, getattr(self, "idempotency_credential", lambda: "")())
        credential = credential_of(request)
        with transaction.atomic():
            # Keys older than 24 h are free again; the account's expired records go now.
            IdempotencyRecord.objects.filter(
                account=request.account, created_at__lt=timezone.now() - LIFETIME
            ).exclude(key=key).delete()
            IdempotencyRecord.objects.bulk_create(
                [
                    IdempotencyRecord(
                        account=request.account, credential=credential, key=key, fingerprint=digest
                    )
                ],
                ignore_conflicts=True,
            )
            record = IdempotencyRecord.objects.select_for_update().get(
                account=request.account, credential=credential, key=key
            )
            if record.status_code is not None:
                if record.created_at > timezone.now() - LIFETIME:
                    if record.fingerprint != digest:
                        raise IdempotencyKeyReused()
                    response = Response(record.response_body, status=record.status_code)
                    response["Idempotent-Replayed"] = "true"
                    return response
                # Past 24 h the key is free again.
                record.fingerprint, record.created_at = digest, timezone.now()
            response = view_method(self, request, *args, **kwargs)
            if response.status_code < 400:
                record.status_code = response.status_code
                record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
                record.save(
                    update_fields=["fingerprint", "created_at", "status_code", "response_body"]
                )
            else:
                record.delete()
            return response

    wrapper.idempotent = True  # read by metering.api.schema.AutoSchema
    return wrapper
