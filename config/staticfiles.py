"""The static files storage: WhiteNoise's hashed, compressed files, and the plain ones before.

After ``collectstatic``, every file has a hashed name in the manifest, served by WhiteNoise from
``STATIC_ROOT`` and cached forever. A file the manifest lacks (``collectstatic`` never ran:
trying the product with DEBUG off, CI's live server) keeps its plain name instead of failing
the page that links to it (Django's manifest storage raises, a 500 on /admin/ or /api/docs/);
WhiteNoise serves it from the apps' static folders (``WHITENOISE_USE_FINDERS``).
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False

    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:  # in no manifest, nor in STATIC_ROOT to be hashed now
            return name
