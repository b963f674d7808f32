"""Certificates for the testbed: one CA, serving certificates and client identities.

Every component talks TLS with certificates verified against this CA, as on a real cluster,
so that our modules are exercised with `validate_certs` on.
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=3650)


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _load(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def ensure_ca(pki: Path, name: str = "ca", common_name: str = "rhoai-gpuaas-testbed-ca") -> None:
    """Create `<name>.crt`/`<name>.key` once; later runs reuse them so kubeconfigs stay valid across
    restarts. `ca` signs every testbed certificate; `service-ca` only stands for OpenShift's service CA."""
    if (pki / f"{name}.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(pki / f"{name}.key", key)
    (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_cert(pki: Path, name: str, common_name: str, org: str | None = None,
                ips: tuple[str, ...] = (), dns: tuple[str, ...] = (), server: bool = False) -> None:
    """Issue `<name>.crt`/`<name>.key` signed by the CA, once."""
    if (pki / f"{name}.crt").exists():
        return
    ca_key = _load(pki / "ca.key")
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH] if server else [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (x509.CertificateBuilder().subject_name(_name(common_name, org))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki / f"{name}.key", key)
    (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_service_account_key(pki: Path) -> None:
    """RSA key pair the API server signs service account tokens with."""
    if (pki / "sa.key").exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", key)
    (pki / "sa.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
