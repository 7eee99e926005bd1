"""A command target that notes, in a file, when each run starts and ends: which fire
(`CHRONOS_DEDUP_KEY`), which attempt (`CHRONOS_ATTEMPT`, `-` when the agent does not set it),
its own pid and its parent's (the agent that runs it), and the wall-clock time."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTE_RUN = """
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
def note(event):
    with open(path, "a") as file:
        file.write(" ".join([
            event, os.environ["CHRONOS_DEDUP_KEY"], os.environ.get("CHRONOS_ATTEMPT", "-"),
            str(os.getpid()), str(os.getppid()), repr(time.time()),
        ]) + "\\n")
note("start")
time.sleep(seconds)
note("end")
"""


def noting_target(notes: Path, seconds: float) -> dict[str, Any]:
    """A command target that notes its start, sleeps `seconds`, and notes its end."""
    return {"type": "command", "argv": [sys.executable, "-c", NOTE_RUN, str(notes), str(seconds)]}


@dataclass(frozen=True)
class RunNote:
    event: str  # start | end
    key: str
    attempt: str
    pid: int
    agent_pid: int
    at: float  # time.time()


def read_notes(notes: Path) -> list[RunNote]:
    if not notes.exists():
        return []
    found = []
    for line in notes.read_text().splitlines():
        event, key, attempt, pid, agent_pid, at = line.split(" ")
        found.append(RunNote(event, key, attempt, int(pid), int(agent_pid), float(at)))
    return found


def starts(notes: Path) -> list[RunNote]:
    return [note for note in read_notes(notes) if note.event == "start"]


def process_gone(pid: int) -> bool:
    """The process no longer runs (gone, or a zombie nobody reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" in state.split()[1:2] or "X" in state.split()[1:2]
