"""Every variable the settings read is documented in .env.example, and nothing else is."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_exactly_the_variables_the_settings_read():
    source = "\n".join(p.read_text() for p in (ROOT / "config" / "settings").glob("*.py"))
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    assert read == documented
    # Each variable carries one line of meaning above it.
    lines = example.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]+=", line) and index:
            assert lines[index - 1].startswith("#") or re.match(r"^[A-Z_]+=", lines[index - 1])
