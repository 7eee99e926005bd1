"""A minimal JSON Schema checker for the subset the contract documents use (no dependency).

Supports local `$ref`, `type` (one or a list), `enum`, `const`, `properties`, `required`,
`additionalProperties`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`,
`minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `anyOf`/`oneOf`/`allOf`, and the
formats `date-time` (an ISO 8601 instant with an offset) and `uri` (absolute http(s)).
Annotations (`title`, `description`, `examples`, `default`, `discriminator`) are ignored. A
keyword it does not know raises, so a document cannot silently use something unchecked.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

_ANNOTATIONS = {
    "title",
    "description",
    "examples",
    "example",
    "default",
    "discriminator",
    "deprecated",
    "readOnly",
    "writeOnly",
}
_KEYWORDS = {
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "anyOf",
    "oneOf",
    "allOf",
    "format",
}


def resolve(root: dict[str, Any], ref: str) -> Any:
    """The target of a local reference such as `#/components/schemas/Error`."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported: {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate(instance: Any, schema: Any, root: dict[str, Any], where: str = "$") -> list[str]:
    """Every way `instance` breaks `schema`, as `path: reason` lines; empty when it conforms."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{where}: no value is allowed here"]
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ValueError(f"{where}: unsupported schema keywords {sorted(unknown)}")
    errors: list[str] = []
    if "$ref" in schema:
        errors += validate(instance, resolve(root, schema["$ref"]), root, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, t) for t in types):
            return [*errors, f"{where}: expected {'|'.join(types)}, got {_type_name(instance)}"]
    if "const" in schema and not _same(instance, schema["const"]):
        errors.append(f"{where}: expected {schema['const']!r}, got {instance!r}")
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        errors.append(f"{where}: {instance!r} is not one of {schema['enum']!r}")
    for index, sub in enumerate(schema.get("allOf", [])):
        errors += validate(instance, sub, root, f"{where}<allOf {index}>")
    if "anyOf" in schema and not any(
        not validate(instance, sub, root, where) for sub in schema["anyOf"]
    ):
        errors.append(f"{where}: matches none of anyOf")
    if "oneOf" in schema:
        matches = sum(1 for sub in schema["oneOf"] if not validate(instance, sub, root, where))
        if matches != 1:
            errors.append(f"{where}: matches {matches} of oneOf, expected exactly 1")
    if isinstance(instance, dict):
        errors += _check_object(instance, schema, root, where)
    elif isinstance(instance, list):
        errors += _check_array(instance, schema, root, where)
    elif isinstance(instance, str):
        errors += _check_string(instance, schema, where)
    elif _is_type(instance, "number"):
        errors += _check_number(instance, schema, where)
    return errors


def _check_object(
    instance: dict[str, Any], schema: Any, root: dict[str, Any], where: str
) -> list[str]:
    errors = [
        f"{where}: missing required {name!r}"
        for name in schema.get("required", [])
        if name not in instance
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, value in instance.items():
        if name in properties:
            errors += validate(value, properties[name], root, f"{where}.{name}")
        elif extra is False:
            errors.append(f"{where}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            errors += validate(value, extra, root, f"{where}.{name}")
    return errors


def _check_array(instance: list[Any], schema: Any, root: dict[str, Any], where: str) -> list[str]:
    errors = []
    if len(instance) < schema.get("minItems", 0):
        errors.append(f"{where}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        errors.append(f"{where}: more than {schema['maxItems']} items")
    if "items" in schema:
        for index, item in enumerate(instance):
            errors += validate(item, schema["items"], root, f"{where}[{index}]")
    return errors


def _check_string(instance: str, schema: Any, where: str) -> list[str]:
    errors = []
    if len(instance) < schema.get("minLength", 0):
        errors.append(f"{where}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(instance) > schema["maxLength"]:
        errors.append(f"{where}: longer than {schema['maxLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], instance):
        errors.append(f"{where}: {instance!r} does not match {schema['pattern']!r}")
    fmt = schema.get("format")
    if fmt == "date-time" and not _is_instant(instance):
        errors.append(f"{where}: {instance!r} is not an ISO 8601 instant with an offset")
    if fmt == "uri":
        parts = urlsplit(instance)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(f"{where}: {instance!r} is not an absolute http(s) URI")
    return errors


def _check_number(instance: float, schema: Any, where: str) -> list[str]:
    errors = []
    if "minimum" in schema and instance < schema["minimum"]:
        errors.append(f"{where}: {instance} < minimum {schema['minimum']}")
    if "maximum" in schema and instance > schema["maximum"]:
        errors.append(f"{where}: {instance} > maximum {schema['maximum']}")
    if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
        errors.append(f"{where}: {instance} <= exclusiveMinimum {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and instance >= schema["exclusiveMaximum"]:
        errors.append(f"{where}: {instance} >= exclusiveMaximum {schema['exclusiveMaximum']}")
    return errors


def _is_instant(value: str) -> bool:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.utcoffset() is not None and "T" in value


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown JSON Schema type {name!r}")


def _same(a: Any, b: Any) -> bool:
    """JSON equality: `True` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__
