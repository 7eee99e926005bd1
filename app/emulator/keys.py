"""The emulator's RS256 signing key: loading, generation, JWKS publication and token minting."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.emulator.config import EmulatorConfigError

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
KEY_SIZE = 2048
KID_LENGTH = 16


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key with the `kid` it is published under."""

    private_key: rsa.RSAPrivateKey
    kid: str

    def public_jwk(self) -> dict[str, str]:
        members = _rsa_public_members(self.private_key.public_key())
        return {**members, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign `claims` as an RS256 JWT whose header names this key's `kid`."""
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def load_signing_key(key_file: str | None, kid: str | None = None) -> SigningKey:
    """Return the signing key described by the config.

    No `key_file`: a fresh 2048-bit key, kept in memory only. A `key_file` that exists: the RSA
    private key in that PEM file. A `key_file` that does not exist yet: a fresh key written there
    with 0600 permissions (without clobbering a file another process created meanwhile).
    `kid` defaults to a prefix of the key's RFC 7638 thumbprint, so a persisted key keeps its kid.
    """
    private_key = generate_private_key() if key_file is None else _load_or_create(Path(key_file))
    return SigningKey(private_key=private_key, kid=kid or default_kid(private_key))


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an RSA public key."""
    canonical = json.dumps(_rsa_public_members(public_key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def default_kid(private_key: rsa.RSAPrivateKey) -> str:
    return jwk_thumbprint(private_key.public_key())[:KID_LENGTH]


def _rsa_public_members(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _load_or_create(path: Path) -> rsa.RSAPrivateKey:
    try:
        return _load_pem(path)
    except FileNotFoundError:
        pass
    private_key = generate_private_key()
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a complete file under a temporary name, then link it into place: readers never
        # see a partial key, and a concurrent creator wins cleanly instead of being overwritten.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(pem)
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                return _load_pem(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    except OSError as exc:
        raise EmulatorConfigError(f"key_file: cannot write {str(path)!r} ({exc.strerror})") from exc
    logger.info("generated a new RS256 signing key", extra={"path": str(path)})
    return private_key


def _load_pem(path: Path) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise EmulatorConfigError(f"key_file: cannot read {str(path)!r} ({exc.strerror})") from exc
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise EmulatorConfigError(
            f"key_file: {str(path)!r} is not an unencrypted PEM private key"
        ) from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise EmulatorConfigError(f"key_file: {str(path)!r} must hold an RSA key (RS256)")
    if private_key.key_size < KEY_SIZE:
        raise EmulatorConfigError(
            f"key_file: {str(path)!r} holds a {private_key.key_size}-bit key; "
            f"RS256 needs at least {KEY_SIZE} bits"
        )
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "signing key file is readable by group or others; chmod 600 it",
            extra={"path": str(path)},
        )
    return private_key
