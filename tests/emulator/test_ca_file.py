"""`NAS_EMULATOR_CA_FILE`: deliveries trust a private CA (a TLS proxy's in front of the agents)
besides the public ones; without it, an agent behind that CA is refused."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.emulator import EmulatorConfig, EmulatorConfigError
from app.emulator.delivery import default_http_client

BASE_ENV = {
    "NAS_EMULATOR_PUBLIC_URL": "https://nas.example",
    "NAS_EMULATOR_AGENT_TOKEN": "dev-agent-token",
    "NAS_EMULATOR_INSTANCE_ID": "dev-instance",
}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A root CA and a certificate for 127.0.0.1 it signed: (root.crt, leaf.crt, leaf.key)."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("test private root"))
        .issuer_name(_name("test private root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    root_file, leaf_file, key_file = folder / "root.crt", folder / "leaf.crt", folder / "leaf.key"
    root_file.write_bytes(_pem(root))
    leaf_file.write_bytes(_pem(leaf))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return root_file, leaf_file, key_file


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the client refused the certificate and went away
    finally:
        writer.close()


@pytest_asyncio.fixture
async def https_agent(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate a private CA signed: (its URL, root.crt)."""
    root_file, leaf_file, key_file = write_private_ca(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(leaf_file, key_file)
    server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"https://127.0.0.1:{port}", root_file


def _config(ca_file: Path | None) -> EmulatorConfig:
    env = dict(BASE_ENV)
    if ca_file is not None:
        env["NAS_EMULATOR_CA_FILE"] = str(ca_file)
    return EmulatorConfig.from_env(env)


@pytest.mark.asyncio
async def test_deliveries_trust_the_configured_ca(https_agent: tuple[str, Path]) -> None:
    url, root_file = https_agent

    async with default_http_client(_config(root_file)) as client:
        response = await client.post(f"{url}/api/cron/fire", json={"job_id": "j"})

    assert response.status_code == 202


@pytest.mark.asyncio
async def test_without_the_ca_an_agent_behind_it_is_refused(
    https_agent: tuple[str, Path],
) -> None:
    url, _ = https_agent

    async with default_http_client(_config(None)) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"{url}/api/cron/fire", json={"job_id": "j"})


def test_ca_file_is_read_from_the_environment(tmp_path: Path) -> None:
    root_file, _, _ = write_private_ca(tmp_path)

    assert _config(root_file).ca_file == str(root_file)
    assert _config(None).ca_file is None


def test_a_missing_ca_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(EmulatorConfigError, match=r"^NAS_EMULATOR_CA_FILE: .* is not a file"):
        _config(tmp_path / "missing.crt")
