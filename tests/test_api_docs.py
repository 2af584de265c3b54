"""Swagger UI and ReDoc as production serves them (issue 12, point 9; CONTRACT §2).

DEBUG off and production's static files storage (WhiteNoise's hashed and compressed manifest,
``config.settings.base.STORAGES``, which the test settings replace): the docs answer 200 and
load every asset from this server, whether ``collectstatic`` has run (hashed names, cached
forever) or not (trying the product, CI's live server: the plain names, served from the apps'
static folders).
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from config.settings import base

pytestmark = pytest.mark.django_db

DOCS = ["/api/docs/", "/api/redoc/"]
SIDECAR = "/static/drf_spectacular_sidecar/"


def assets(html: str) -> list[str]:
    """The scripts, stylesheets and icons a docs page loads."""
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert not [url for url in urls if re.match(r"(?:https?:)?//", url)], urls  # offline
    return [url for url in urls if url.startswith("/static/")]


def production(static_root) -> override_settings:
    # Production's settings module takes these from base unchanged; the test settings do not.
    return override_settings(
        DEBUG=False,
        STORAGES=base.STORAGES,
        WHITENOISE_USE_FINDERS=base.WHITENOISE_USE_FINDERS,
        STATIC_ROOT=str(static_root),
    )


@pytest.mark.parametrize("url", DOCS)
def test_docs_work_before_collectstatic(url, tmp_path):
    with production(tmp_path / "never-collected"):
        client = Client()
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        urls = assets(response.content.decode())
        assert any(asset.startswith(SIDECAR) and asset.endswith(".js") for asset in urls), urls
        for asset in urls:
            served = client.get(asset)
            assert served.status_code == 200, asset
            assert b"".join(served.streaming_content), asset


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """``collectstatic`` run once with production's storage."""
    static_root = tmp_path_factory.mktemp("static")
    with production(static_root):
        call_command("collectstatic", interactive=False, verbosity=0)
    return static_root


@pytest.mark.parametrize("url", DOCS)
def test_docs_load_hashed_compressed_files_after_collectstatic(url, collected):
    assert (collected / "staticfiles.json").is_file()
    with production(collected):
        client = Client()
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        scripts = [asset for asset in assets(response.content.decode()) if asset.endswith(".js")]
        assert scripts and all(asset.startswith(SIDECAR) for asset in scripts), scripts
        for script in scripts:
            # swagger-ui-bundle.1a2b3c4d5e6f.js: a name that changes with the content.
            assert re.search(r"\.[0-9a-f]{12}\.js$", script), script
            served = client.get(script, headers={"Accept-Encoding": "gzip"})
            assert served.status_code == 200, script
            assert "immutable" in served["Cache-Control"], served["Cache-Control"]
            assert served["Content-Encoding"] == "gzip"
