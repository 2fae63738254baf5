"""The stock `2captcha-python` client, unchanged, against our server over TLS.

The client builds `https://<server>/in.php` itself, so the server runs with --tls-cert/--tls-key
and the client trusts a CA generated here through `REQUESTS_CA_BUNDLE`, the usual setting."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twocaptcha import TwoCaptcha
from twocaptcha.api import ApiException

from cumpair.demo.captcha import answer_matches, captcha_png
from tests.captcha_fixtures import KEY, b64, captcha_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TOKENS = ["0000000000003039", "0000000000008d06", "00000000000127b1", "000000000001c25c"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1/localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("cumpair test CA"))
        .issuer_name(_name("cumpair test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def test_stock_2captcha_client_solves_demo_shop_captchas_over_tls(tmp_path, monkeypatch):
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    tls = ("--tls-cert", str(cert), "--tls-key", str(key))
    with captcha_server(tmp_path, server_args=tls, scheme="https", verify=str(ca)) as server:
        client = TwoCaptcha(KEY, server=server.base.removeprefix("https://"), pollingInterval=1)
        for token in TOKENS[:2]:
            path = tmp_path / f"{token}.png"
            path.write_bytes(captcha_png(token))
            result = client.normal(str(path))
            assert answer_matches(token, result["code"]), (token, result)
        for token in TOKENS[2:]:  # method=base64, as the client sends a base64 string
            result = client.normal(b64(captcha_png(token)), minLen=5, maxLen=6)
            assert answer_matches(token, result["code"]), (token, result)
        assert client.report(result["captchaId"], True) == "OK_REPORT_RECORDED"
        assert client.balance() > 0
        with pytest.raises(ApiException, match="ERROR_KEY_DOES_NOT_EXIST"):
            TwoCaptcha("Q" * 32, server=server.base.removeprefix("https://")).balance()
