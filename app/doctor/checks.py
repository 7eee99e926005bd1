"""One check's verdict: what was checked, whether it passed, why, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"  # passes, but worth a look
    FAIL = "fail"
    SKIPPED = "skipped"  # a check it needs failed first


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    reason: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (CheckStatus.OK, CheckStatus.WARN)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": str(self.status),
            "reason": self.reason,
            "fix": self.fix,
        }


def passed(name: str, reason: str) -> Check:
    return Check(name, CheckStatus.OK, reason)


def warned(name: str, reason: str, fix: str) -> Check:
    return Check(name, CheckStatus.WARN, reason, fix)


def failed(name: str, reason: str, fix: str) -> Check:
    return Check(name, CheckStatus.FAIL, reason, fix)


def skipped(name: str, because: str) -> Check:
    return Check(name, CheckStatus.SKIPPED, f"skipped: {because}")
