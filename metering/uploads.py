"""The size limit of files uploaded outside the API (the admin's import page).

``IMPORT_MAX_BYTES`` (50 MB by default) bounds each uploaded file. Django bounds form fields
(``DATA_UPLOAD_MAX_MEMORY_SIZE``) but not files: without this, a file of any size would be
read whole and spooled to a temporary file, by the CSRF check already, before any view could
refuse it. :class:`UploadSizeLimitHandler`, the first of ``FILE_UPLOAD_HANDLERS``, stops keeping
a file at the limit: the rest of the body is read and dropped (so that the browser gets its
answer), the form's other fields are kept, and the request records what it refused
(``request.upload_refused``), which the form shows as an error on its file field
(:func:`too_large_message`).

API requests are left alone: their bodies are bounded by ``metering.api.middleware`` before
they are read.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from metering.api.middleware import API_PREFIX

MEGABYTE = 1024 * 1024


def max_bytes() -> int:
    return settings.IMPORT_MAX_BYTES


def shown_size(size: int) -> str:
    """``50 MB``, ``1.5 MB``, ``900 bytes``."""
    if size < MEGABYTE:
        return f"{size} bytes"
    return f"{size / MEGABYTE:.1f}".removesuffix(".0") + " MB"


def too_large_message(*, limit: int, size: int | None = None) -> str:
    """The form error of a file past ``limit`` bytes (``size``: its size, when known)."""
    what = f"The file has {shown_size(size)}" if size is not None else "The file is larger"
    return (
        f"{what}; at most {shown_size(limit)} are accepted (IMPORT_MAX_BYTES). Split it, or "
        "use manage.py import_meters (or import_readings, import_period_readings) on the server."
    )


class UploadSizeLimitHandler(FileUploadHandler):
    """Stops an upload at ``IMPORT_MAX_BYTES`` per file (see the module's doc)."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0
        self.limit = max_bytes()
        self.active = not self.request.path_info.startswith(API_PREFIX)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if self.active:
            self.received += len(raw_data)
            if self.received > self.limit:
                self.request.upload_refused = {"name": self.file_name, "limit": self.limit}
                # Not a connection reset: the rest of the body is read (and dropped).
                raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers keep the file
