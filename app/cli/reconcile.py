"""`chronos reconcile`: reconcile now, with a progress bar fed by `GET /api/status`.

`POST /api/reconcile` answers when the reconcile is over, however long that takes: it is sent
without a read timeout, so a slow reconcile is never mistaken for an agent out of reach. On a
terminal (and without `--json`) a bar shows its phase and progress, polled meanwhile.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import typer

from app.cli.client import JsonOpt, TokenOpt, UrlOpt, admin_client, call
from app.cli.console import out

POLL_SECONDS = 0.5
# Connecting must still be quick; only the wait for the answer is unbounded.
NO_READ_TIMEOUT = httpx.Timeout(None, connect=5.0)

_PHASES = {"listing": "asking NAS what it holds", "queueing": "queueing", "pushing": "pushing"}


def reconcile(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Reconcile the agent's jobs with what NAS has armed, now.

    The report is JSON either way (`--json` for symmetry with the other commands); on a
    terminal, a progress bar shows how far the reconcile is meanwhile."""
    show_bar = not as_json and sys.stdout.isatty()
    report = with_progress(url, token) if show_bar else _post(url, token)
    out().print_json(json.dumps(report))
    if not report.get("ok"):
        raise typer.Exit(1)


def _post(url: str | None, token: str | None) -> Any:
    return call("POST", "/api/reconcile", url, token, timeout=NO_READ_TIMEOUT)


def with_progress(url: str | None, token: str | None) -> Any:
    """The reconcile's report, a bar drawn meanwhile from the agent's status (polls that fail
    leave the bar as it was: an agent without `GET /api/status` still reconciles)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        admin_client(url, token) as poller,
        Progress(*columns, TimeElapsedColumn(), console=out(), transient=True) as bar,
    ):
        task = bar.add_task("reconciling", total=None)
        answer: Future[Any] = pool.submit(_post, url, token)
        while not _wait(answer, POLL_SECONDS):
            progress = poll_progress(poller)
            if progress is not None:
                phase = _PHASES.get(str(progress.get("phase")), "reconciling")
                total = int(progress.get("total") or 0) or None
                bar.update(task, description=phase, total=total, completed=progress.get("done"))
        return answer.result()


def _wait(future: Future[Any], seconds: float) -> bool:
    try:
        future.exception(timeout=seconds)
    except TimeoutError:
        return False
    return True


def poll_progress(client: httpx.Client) -> dict[str, Any] | None:
    """The running reconcile's `{phase, done, total}` from `GET /api/status`, or None."""
    try:
        response = client.get("/api/status")
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    progress = body.get("reconcile", {}).get("progress") if isinstance(body, dict) else None
    return progress if isinstance(progress, dict) else None
