"""The signing key: persistence in a key file, RFC 7638 kid, JWKS, and refusal of bad keys."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.emulator import EmulatorConfigError, load_signing_key
from app.emulator.keys import jwk_thumbprint
from tests.support.emulator import StartEmulator

# RFC 7638, section 3.1: an RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.asyncio
async def test_two_emulators_on_one_key_file_publish_the_same_key(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "nas.pem"

    first = await start_emulator(key_file=str(key_file))
    second = await start_emulator(key_file=str(key_file))

    async with httpx.AsyncClient() as client:
        jwks = [
            (await client.get(f"{e.url}/.well-known/jwks.json")).json() for e in (first, second)
        ]
    assert jwks[0] == jwks[1]
    assert jwks[0]["keys"][0]["kid"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind


def test_without_a_key_file_every_start_has_a_new_key() -> None:
    assert load_signing_key(None).kid != load_signing_key(None).kid


def test_the_default_kid_is_the_rfc7638_thumbprint_prefix() -> None:
    assert jwk_thumbprint(_public_key(RFC7638_N, "AQAB")) == RFC7638_THUMBPRINT

    key = load_signing_key(None)
    published = key.public_jwk()
    assert jwk_thumbprint(_public_key(published["n"], published["e"])).startswith(key.kid)
    assert len(key.kid) == 16


def test_an_explicit_kid_is_used(tmp_path: Path) -> None:
    key = load_signing_key(str(tmp_path / "nas.pem"), kid="rotation-2030")

    assert key.kid == "rotation-2030"
    assert key.jwks()["keys"][0]["kid"] == "rotation-2030"


def test_tokens_verify_with_the_published_jwks() -> None:
    key = load_signing_key(None)

    token = key.sign({"sub": "x", "aud": "agent:a"})

    public = jwt.PyJWKSet.from_dict(key.jwks())[key.kid]
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    assert jwt.decode(token, public.key, algorithms=["RS256"], audience="agent:a")["sub"] == "x"


def test_an_existing_key_file_is_loaded_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "nas.pem"
    original = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file.write_bytes(
        original.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    before = key_file.read_bytes()

    key = load_signing_key(str(key_file))

    assert key.private_key.private_numbers() == original.private_numbers()
    assert key_file.read_bytes() == before


@pytest.mark.parametrize("kind", ["garbage", "ec", "small-rsa"])
def test_unusable_key_files_are_refused(tmp_path: Path, kind: str) -> None:
    key_file = tmp_path / "nas.pem"
    if kind == "garbage":
        key_file.write_text("not a key")
    else:
        private_key = (
            ec.generate_private_key(ec.SECP256R1())
            if kind == "ec"
            else rsa.generate_private_key(public_exponent=65537, key_size=1024)
        )
        key_file.write_bytes(
            private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    with pytest.raises(EmulatorConfigError, match=r"^key_file:"):
        load_signing_key(str(key_file))


def test_an_unwritable_key_location_is_refused(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")

    with pytest.raises(
        EmulatorConfigError, match=r"^key_file: cannot (read|write) .*Not a directory"
    ):
        load_signing_key(str(not_a_directory / "nas.pem"))


def _public_key(n: str, e: str) -> rsa.RSAPublicKey:
    def to_int(value: str) -> int:
        return int.from_bytes(jwt.utils.base64url_decode(value), "big")

    return rsa.RSAPublicNumbers(to_int(e), to_int(n)).public_key()
