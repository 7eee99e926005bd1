"""The head of the migration scripts, read from their text: whether a database needs Alembic
is known without importing it (a quarter of a second and 8 MiB at start).

Each script in `migrations/versions` states `revision = "<id>"` and `down_revision = ...` at
the top level, as `script.py.mako` writes them. The head is the one revision no script names
as its `down_revision`. tests/store/test_migration_head.py checks it against Alembic's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"'\n]+)["']""")


def _parents_by_revision(versions: Path) -> dict[str, tuple[str, ...]] | None:
    """Each script's revision and the revisions it follows; None when that cannot be told
    from their text (a script whose `revision` is not one quoted id, a revision twice)."""
    parents_of: dict[str, tuple[str, ...]] = {}
    scripts = sorted(versions.glob("*.py"))
    for script in scripts:
        fields: dict[str, list[str]] = {}
        for name, value in _ASSIGNMENT.findall(script.read_text(encoding="utf-8")):
            fields.setdefault(name, []).extend(_QUOTED.findall(value))
        if len(fields.get("revision", [])) != 1:
            return None
        [revision] = fields["revision"]
        parents_of[revision] = tuple(fields.get("down_revision", []))
    return parents_of if len(parents_of) == len(scripts) else None


@functools.cache
def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The single head revision of the scripts in `versions`; None when it cannot be told
    from their text (a script whose `revision` is not one quoted id, several heads): the
    caller then asks Alembic. Reads files: call it off the event loop (it is cached)."""
    parents_of = _parents_by_revision(versions)
    if parents_of is None:
        return None
    heads = set(parents_of) - {parent for parents in parents_of.values() for parent in parents}
    return heads.pop() if len(heads) == 1 else None


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database's schema stands against the migration scripts."""

    current: str | None  # the schema's revision; None: not migrated at all
    head: str | None  # the scripts' head; None when it cannot be told from their text
    behind: int | None  # scripts still to apply; None when `current` is not one of them

    @property
    def at_head(self) -> bool:
        return self.head is not None and self.current == self.head


@functools.cache
def revision_chain(versions: Path = MIGRATIONS / "versions") -> tuple[str, ...]:
    """The revisions from the head down to the first script (empty when the head cannot be
    told from the scripts' text). Reads files: call it off the event loop (it is cached)."""
    head = head_revision(versions)
    parents_of = _parents_by_revision(versions)
    if head is None or parents_of is None:
        return ()
    chain: list[str] = []
    step: str | None = head
    while step is not None and step not in chain:
        chain.append(step)
        parents = parents_of.get(step, ())
        step = parents[0] if parents else None
    return tuple(chain)


def migration_status(
    revisions: set[str], versions: Path = MIGRATIONS / "versions"
) -> MigrationStatus:
    """`revisions` (those in `alembic_version`) measured against the scripts in `versions`."""
    chain = revision_chain(versions)
    head = chain[0] if chain else None
    if not revisions:
        return MigrationStatus(current=None, head=head, behind=len(chain) if chain else None)
    current = sorted(revisions)[0] if len(revisions) == 1 else ",".join(sorted(revisions))
    behind = chain.index(current) if current in chain else None
    return MigrationStatus(current=current, head=head, behind=behind)
