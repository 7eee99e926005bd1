"""Job targets: what "run the job" means, validated when a job is saved and executed per fire.

Three kinds, told apart by `type`: an HTTP request (`http`), a program run without a shell
(`command`) and an importable Python function (`python`). `parse_target` validates stored
target data; `TargetRunner.run` executes a target once and turns every failure into a
`RunResult` (only cancellation propagates).
"""

from app.domain.states import RunStatus
from app.runner.targets.capture import TRUNCATION_MARKER, truncate_text
from app.runner.targets.command import command_environment
from app.runner.targets.models import (
    TARGET_ADAPTER,
    TARGET_TAGS,
    CommandTarget,
    HttpMethod,
    HttpTarget,
    PythonTarget,
    Target,
    describe_validation_error,
    parse_target,
)
from app.runner.targets.result import RunContext, RunResult
from app.runner.targets.runner import TargetRunner

__all__ = [
    "TARGET_ADAPTER",
    "TARGET_TAGS",
    "TRUNCATION_MARKER",
    "CommandTarget",
    "HttpMethod",
    "HttpTarget",
    "PythonTarget",
    "RunContext",
    "RunResult",
    "RunStatus",
    "Target",
    "TargetRunner",
    "command_environment",
    "describe_validation_error",
    "parse_target",
    "truncate_text",
]
