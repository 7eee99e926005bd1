"""Target validation and execution: what "run the job" means for http, command and python."""

from app.runner.targets import (
    TARGET_ADAPTER,
    TRUNCATION_MARKER,
    CommandTarget,
    HttpMethod,
    HttpTarget,
    PythonTarget,
    RunContext,
    RunResult,
    RunStatus,
    Target,
    TargetRunner,
    command_environment,
    describe_validation_error,
    parse_target,
    truncate_text,
)

__all__ = [
    "TARGET_ADAPTER",
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
