"""The service's version and the `User-Agent` it sends (NAS's firewall refuses unnamed clients)."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("chronos")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0.0.0"

USER_AGENT = f"chronos/{VERSION}"
