"""Write `contract/agent.openapi.json` from the app itself, or check that it is current.

    .venv/bin/python contract/generate.py          # regenerate
    .venv/bin/python contract/generate.py --check  # exit 1 with a diff summary when stale

The document is the app's own `openapi()` output, plus the hand-written examples of
`contract/examples/agent-examples.json`, merged in deterministically. Each key there is
"METHOD path status" (a response) or "METHOD path request" (the request body), and each value
maps example names to OpenAPI Example objects (`summary`, `value`). An example whose operation
or response status the app does not declare is an error, so examples cannot silently go stale.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import sys
from pathlib import Path
from typing import Any

CONTRACT_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONTRACT_DIR.parent
AGENT_DOCUMENT = CONTRACT_DIR / "agent.openapi.json"
AGENT_EXAMPLES = CONTRACT_DIR / "examples" / "agent-examples.json"
MEDIA_TYPE = "application/json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

if str(REPO_ROOT) not in sys.path:  # run as a script: make `app` importable
    sys.path.insert(0, str(REPO_ROOT))


class ExampleError(ValueError):
    """An example names an operation, a response or a body the app does not have."""


def contract_settings() -> Any:
    """Fixed, valid settings: nothing in the document may depend on the machine's environment."""
    from app.settings import Settings

    return Settings(
        _env_file=None,
        env="dev",
        portal_url="http://127.0.0.1:9000",
        callback_url="http://127.0.0.1:8080",
        expected_audience="agent:dev",
        nas_jwks_url="http://127.0.0.1:9000/.well-known/jwks.json",
        nas_token="x" * 20,
        admin_token="y" * 20,
    )


def app_openapi() -> dict[str, Any]:
    """The agent's OpenAPI document exactly as the app serves it (no lifespan needed)."""
    from app.main import create_app

    return copy.deepcopy(create_app(contract_settings()).openapi())


def load_examples(path: Path = AGENT_EXAMPLES) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ExampleError(f"{path.name}: must be a JSON object")
    return data


def merge_examples(document: dict[str, Any], examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of `document` with every example attached to its request or response body."""
    merged = copy.deepcopy(document)
    for key in sorted(examples):
        named = examples[key]
        parts = key.split(" ")
        if len(parts) != 3:
            raise ExampleError(f"{key!r}: expected 'METHOD path status' or 'METHOD path request'")
        method, path, where = parts[0].lower(), parts[1], parts[2]
        if method not in HTTP_METHODS:
            raise ExampleError(f"{key!r}: unknown HTTP method {parts[0]!r}")
        operation = merged.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            raise ExampleError(f"{key!r}: the app has no operation {parts[0]} {path}")
        if not isinstance(named, dict) or not named:
            raise ExampleError(f"{key!r}: expected a non-empty map of named examples")
        for name, example in named.items():
            if not isinstance(example, dict) or "value" not in example:
                raise ExampleError(f"{key!r}: example {name!r} needs a 'value'")
        if where == "request":
            # The fire route reads its raw body itself, so the app may declare no requestBody.
            body = operation.setdefault("requestBody", {"required": True, "content": {}})
        else:
            body = operation.get("responses", {}).get(where)
            if body is None:
                raise ExampleError(f"{key!r}: {parts[0]} {path} declares no {where} response")
        media = body.setdefault("content", {}).setdefault(MEDIA_TYPE, {})
        media["examples"] = copy.deepcopy(named)
    return merged


def build_document() -> dict[str, Any]:
    """What `contract/agent.openapi.json` must hold: the app's document plus the examples."""
    return merge_examples(app_openapi(), load_examples())


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def check(expected: str, path: Path = AGENT_DOCUMENT) -> list[str]:
    """Lines of a diff summary when `path` differs from `expected`; empty when current."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == expected:
        return []
    diff = list(
        difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            fromfile=f"{path.name} (committed)",
            tofile=f"{path.name} (from the app)",
            lineterm="",
            n=1,
        )
    )
    changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    head = diff[:60]
    if len(diff) > len(head):
        head.append(f"... {len(diff) - len(head)} more diff lines")
    return [f"{path.name} is stale: {changed} changed lines", *head]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    expected = render(build_document())
    if args.check:
        problems = check(expected)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print("regenerate with: .venv/bin/python contract/generate.py", file=sys.stderr)
            return 1
        print(f"{AGENT_DOCUMENT.name} is current")
        return 0
    AGENT_DOCUMENT.write_text(expected, encoding="utf-8")
    print(f"wrote {AGENT_DOCUMENT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
