"""`chronos apply -f FILE`: make the agent's jobs what a YAML or JSON file declares, by name
(`POST /api/jobs/apply`: all of it in one transaction, or nothing)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt, admin_client
from app.cli.console import err, fail, out

if TYPE_CHECKING:
    from rich.table import Table

# How each outcome is marked, in the order the table lists them.
_MARKS = {"created": "+", "updated": "~", "unchanged": "=", "deleted": "-"}
_VERBS = {"created": "create", "updated": "update", "unchanged": "unchanged", "deleted": "delete"}


def _plain(value: Any) -> Any:
    """`value` as JSON can carry it: YAML reads an unquoted time as a datetime."""
    if isinstance(value, date):  # datetimes included
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _parse(text: str, file: str) -> Any:
    """JSON when the text is JSON, else YAML (`yaml.safe_load`: no tags that build objects)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml  # only this command reads YAML

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail(f"{file} is neither JSON nor YAML: {' '.join(str(exc).split())}") from None


def read_declared(file: str) -> list[Any]:
    """The jobs a YAML or JSON file (`-`: stdin) declares: a list, or `{"jobs": [...]}`."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    data = _parse(text, file)
    jobs = data.get("jobs") if isinstance(data, dict) else data
    if not isinstance(jobs, list):
        raise fail(f'{file}: expected a list of jobs or {{"jobs": [...]}}')
    if not jobs:
        raise fail(f"{file}: no jobs")
    return [_plain(job) for job in jobs]


def outcomes(answer: dict[str, Any], declared: list[Any]) -> list[tuple[str, str]]:
    """`(outcome, name)` of every job: the file's in its order, then the deleted ones."""
    of = {name: kind for kind in ("created", "updated", "unchanged") for name in answer[kind]}
    names = [job.get("name") for job in declared if isinstance(job, dict)]
    listed = [(of[name], name) for name in names if name in of]
    return listed + [("deleted", name) for name in answer["deleted"]]


def apply_table(answer: dict[str, Any], declared: list[Any]) -> Table:
    """A row a job: its mark (+ ~ = -), its name, and what changes (the fields of an update)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    for kind, name in outcomes(answer, declared):
        what = _VERBS[kind]
        if kind == "updated":
            what += ": " + ", ".join(answer["changes"].get(name, []))
        table.add_row(_MARKS[kind], Text(name), what)
    return table


def summary(answer: dict[str, Any]) -> str:
    counts = {kind: len(answer[kind]) for kind in _MARKS}
    if answer["dry_run"]:
        return (
            f"dry run: {counts['created']} to create, {counts['updated']} to update,"
            f" {counts['unchanged']} unchanged, {counts['deleted']} to delete; nothing changed"
        )
    return (
        f"applied: {counts['created']} created, {counts['updated']} updated,"
        f" {counts['unchanged']} unchanged, {counts['deleted']} deleted"
    )


def refused(response: httpx.Response, declared: list[Any]) -> typer.Exit:
    """Print why the agent refused the apply (each problem by index and name); exit 1."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    console = err()
    for item in body.get("items") or []:
        index = item["index"]
        job = declared[index] if 0 <= index < len(declared) else None
        name = f" ({job['name']})" if isinstance(job, dict) and job.get("name") else ""
        field = f".{item['field']}" if item.get("field") else ""
        console.print(
            f"  jobs[{index}]{name}{field}: {item['detail']}", highlight=False, markup=False
        )
    return fail(f"HTTP {response.status_code}: {body.get('detail', '')} (nothing applied)", code=1)


def apply(
    file: Annotated[
        str,
        typer.Option(
            "-f",
            "--file",
            help='YAML or JSON file (- for stdin): a list of jobs or {"jobs": [...]}, each as'
            " POST /api/jobs takes it, with a unique name",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would change; change nothing")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="also delete the jobs the file does not name")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the agent's jobs what FILE declares, by name: create, update, keep (and with
    --prune delete), all or nothing.

    A job whose declared fields match the stored job's (an omitted field meaning its default)
    is left alone: applying the same file again changes nothing and arms nothing."""
    declared = read_declared(file)
    body = {"jobs": declared, "prune": prune, "dry_run": dry_run}
    with admin_client(url, token) as client:
        try:
            response = client.post("/api/jobs/apply", json=body)
        except httpx.TransportError as exc:
            raise fail(f"cannot reach the agent at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        raise refused(response, declared)
    answer = response.json()
    if as_json:
        out().print_json(json.dumps(answer))
        return
    console = out()
    console.print(apply_table(answer, declared))
    console.print(summary(answer), highlight=False)
    pending = sum(1 for job in answer["jobs"] if job.get("nas_pending"))
    if pending:
        console.print(f"{pending} not armed at NAS yet: the outbox keeps pushing them")
