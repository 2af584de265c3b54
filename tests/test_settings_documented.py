"""Every setting read from the environment is documented in .env.example and the README."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_setting_is_documented():
    source = "".join(p.read_text() for p in (ROOT / "config" / "settings").glob("*.py"))
    names = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z_]+)["']""", source))
    assert "DATABASE_URL" in names and "DJANGO_SECRET_KEY" in names
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert re.search(rf"^{name}=", example, re.M), f"{name} missing from .env.example"
        assert f"`{name}`" in readme, f"{name} missing from the README's settings table"
