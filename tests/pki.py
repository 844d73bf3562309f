"""Certificates and web configuration files for the exporter's TLS and basic auth
tests: a CA, a server certificate for 127.0.0.1 and a client certificate, by openssl."""

import subprocess
from pathlib import Path

import bcrypt

PASSWORD = "correct horse"
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


def make_pki(d: Path) -> Path:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=kvmhole test CA", "-days", "2")
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"),
                            ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                "-extfile", f"{name}.ext")
    return d


def web_config(pki: Path, client_auth: str | None = None, min_version: str = "TLS12") -> Path:
    """A --web.config.file with TLS and the user prometheus (PASSWORD), bcrypt-hashed."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    tls = TLS + f"  min_version: {min_version}\n"
    if client_auth:
        tls += f"  client_ca_file: ca.crt\n  client_auth_type: {client_auth}\n"
    path = pki / f"web-{client_auth}-{min_version}.yml"
    path.write_text(tls + f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return path
