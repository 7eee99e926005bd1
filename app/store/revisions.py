"""The head of the migration scripts, read from their text: whether a database needs Alembic
is known without importing it (a quarter of a second and 8 MiB at start).

Each script in `migrations/versions` states `revision = "<id>"` and `down_revision = ...` at
the top level, as `script.py.mako` writes them. The head is the one revision no script names
as its `down_revision`. tests/store/test_migration_head.py checks it against Alembic's.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"'\n]+)["']""")


@functools.cache
def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The single head revision of the scripts in `versions`; None when it cannot be told
    from their text (a script whose `revision` is not one quoted id, several heads): the
    caller then asks Alembic. Reads files: call it off the event loop (it is cached)."""
    revisions: list[str] = []
    parents: set[str] = set()
    scripts = sorted(versions.glob("*.py"))
    for script in scripts:
        fields: dict[str, list[str]] = {}
        for name, value in _ASSIGNMENT.findall(script.read_text(encoding="utf-8")):
            fields.setdefault(name, []).extend(_QUOTED.findall(value))
        if len(fields.get("revision", [])) != 1:
            return None
        revisions += fields["revision"]
        parents.update(fields.get("down_revision", []))
    heads = set(revisions) - parents
    if len(set(revisions)) != len(scripts) or len(heads) != 1:
        return None
    return heads.pop()
