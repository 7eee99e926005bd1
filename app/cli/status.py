"""`chronos status`: the agent's state from `GET /api/status`, as a table or JSON."""

from __future__ import annotations

import json
from typing import Any

import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt, call
from app.cli.console import out


def status(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The agent's state: store, NAS, outbox, reconcile, runs, leases, readiness.

    Exit code 0 when the agent is ready, 1 when it is not."""
    body = call("GET", "/api/status", url, token)
    if as_json:
        out().print_json(json.dumps(body))
    else:
        print_status(body)
    if not body.get("readiness", {}).get("ready"):
        raise typer.Exit(1)


def status_rows(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of the status table, in reading order."""
    store, nas, outbox = body["store"], body["nas"], body["outbox"]
    rec, runs, leases, ready = body["reconcile"], body["runs"], body["leases"], body["readiness"]
    revision = f"{store['revision'] or 'none'} (head {store['head'] or '?'}"
    revision += f", {store['behind']} behind)" if store["behind"] else ")"
    rows = [
        ("version", body["version"]),
        ("node", body["node_id"]),
        ("ready", "yes" if ready["ready"] else f"no: {ready['reason']}"),
        ("store", f"{store['kind']}, {'reachable' if store['reachable'] else 'UNREACHABLE'}"),
        ("migrations", revision),
        ("NAS last success", _time(nas["last_success_at"])),
        ("NAS last error", _error(nas["last_error_at"], nas["last_error"])),
        ("NAS credentials", _flag(nas["credentials_ok"], "accepted", "REFUSED")),
        ("NAS list", _flag(nas["list_supported"], "supported", "unsupported")),
        ("outbox", f"{outbox['pending']} pending" + _oldest(outbox["oldest_age_seconds"])),
        ("reconcile", _reconcile(rec)),
        ("jobs", ", ".join(f"{n} {state}" for state, n in body["jobs"].items())),
        (
            "runs",
            f"{runs['in_flight']} in flight ({runs['in_flight_here']} here),"
            f" {runs['queued']} queued, {runs['retrying']} retrying",
        ),
        ("leases held", f"{leases['runs']} runs" + "".join(f", {n}" for n in leases["named"])),
    ]
    return rows


def print_status(body: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in status_rows(body):
        table.add_row(label, value)
    out().print(table, highlight=False)


def _time(value: str | None) -> str:
    return value.replace("+00:00", "Z") if value else "-"


def _flag(value: bool | None, yes: str, no: str) -> str:
    return "unknown (no call yet)" if value is None else yes if value else no


def _error(at: str | None, reason: str | None) -> str:
    return "-" if reason is None else f"{_time(at)}: {reason}"


def _oldest(age: float | None) -> str:
    return "" if age is None else f", oldest {age:.0f}s"


def _reconcile(rec: dict[str, Any]) -> str:
    if rec["running"]:
        progress = rec.get("progress") or {}
        return f"running: {progress.get('phase')} {progress.get('done')}/{progress.get('total')}"
    if rec["last_finished_at"] is None:
        return "none yet"
    report = rec.get("last_report") or {}
    verdict = "ok" if report.get("ok") else rec.get("last_error") or "not ok"
    return f"last finished {_time(rec['last_finished_at'])}, {verdict}"
