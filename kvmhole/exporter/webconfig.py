"""--web.config.file: TLS and basic auth, in the format every Prometheus exporter reads
(exporter-toolkit's web configuration file), so one file serves a host's exporters:

    tls_server_config:
      cert_file: server.crt          # relative paths: from the file's directory
      key_file: server.key
      min_version: TLS12             # TLS10..TLS13; default TLS12
      client_ca_file: clients.pem    # verify client certificates against these CAs
      client_auth_type: RequireAndVerifyClientCert
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 USER)

Everything is checked when the exporter starts: a wrong file is one error then, not
a failed scrape later. Keys of the format that kvmhole does not implement are
refused by name rather than ignored, so a setting the operator relies on is never
silently dropped.
"""

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import yaml

from kvmhole.errors import ConfigError
from kvmhole.exporter.http import BasicAuth

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's ssl verifies every certificate it asks for, so exporter-toolkit's
# RequestClientCert and RequireAnyClientCert (ask, do not verify) have no equivalent.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TLS_KEYS = {"cert_file", "key_file", "min_version", "max_version", "client_ca_file",
            "client_auth_type"}
BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}")


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None
    auth: BasicAuth | None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def load(path: str) -> WebConfig:
    """The checked configuration in `path`; ConfigError says what is wrong."""
    where = Path(path)
    try:
        raw = yaml.safe_load(where.read_text())
    except OSError as error:
        raise _bad(path, f"cannot read it: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise _bad(path, f"not YAML ({str(error).splitlines()[0]})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise _bad(path, "not a mapping of settings")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise _bad(path, f"{', '.join(sorted(map(str, unknown)))}: not supported by kvmhole "
                         "(it reads tls_server_config and basic_auth_users)")
    tls = raw.get("tls_server_config")
    users = raw.get("basic_auth_users")
    return WebConfig(tls=None if tls is None else _tls(path, where.parent, tls),
                     auth=None if not users else BasicAuth(_users(path, users)))


def _bad(path: str, why: str) -> ConfigError:
    return ConfigError(f"--web.config.file {path}: {why}")


def _tls(path: str, directory: Path, raw) -> ssl.SSLContext:
    if not isinstance(raw, dict):
        raise _bad(path, "tls_server_config is not a mapping")
    if unknown := set(raw) - TLS_KEYS:
        raise _bad(path, f"tls_server_config: {', '.join(sorted(map(str, unknown)))}: not "
                         f"supported by kvmhole (it reads {', '.join(sorted(TLS_KEYS))})")
    if not (raw.get("cert_file") and raw.get("key_file")):
        raise _bad(path, "tls_server_config needs both cert_file and key_file")
    files = {key: str(directory / str(raw[key])) for key in
             ("cert_file", "key_file", "client_ca_file") if raw.get(key)}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = raw.get(key) or default
        if version not in TLS_VERSIONS:
            raise _bad(path, f"{key} {version!r} is not one of {', '.join(TLS_VERSIONS)}")
        try:
            setattr(context, key.replace("_version", "imum_version"), TLS_VERSIONS[version])
        except ValueError as error:  # the system's OpenSSL refuses it
            raise _bad(path, f"{key} {version}: {error}") from None
    try:
        context.load_cert_chain(files["cert_file"], files["key_file"])
    except (OSError, ssl.SSLError) as error:
        raise _bad(path, f"cannot load cert_file {files['cert_file']} with key_file "
                         f"{files['key_file']}: {error.strerror or error}") from None
    # exporter-toolkit: a client CA alone means client certificates are required
    auth_type = raw.get("client_auth_type") or (
        "RequireAndVerifyClientCert" if "client_ca_file" in files else "NoClientCert")
    if auth_type not in CLIENT_AUTH:
        raise _bad(path, f"client_auth_type {auth_type!r} is not one of "
                         f"{', '.join(CLIENT_AUTH)}")
    context.verify_mode = CLIENT_AUTH[auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if "client_ca_file" not in files:
            raise _bad(path, f"client_auth_type {auth_type} needs client_ca_file")
        try:
            context.load_verify_locations(files["client_ca_file"])
        except (OSError, ssl.SSLError) as error:
            raise _bad(path, f"cannot load client_ca_file {files['client_ca_file']}: "
                             f"{error.strerror or error}") from None
    return context


def _users(path: str, raw) -> dict[str, bytes]:
    if not isinstance(raw, dict):
        raise _bad(path, "basic_auth_users is not a mapping of user names to bcrypt hashes")
    users = {}
    for user, hashed in raw.items():
        if not (isinstance(user, str) and user and ":" not in user):
            raise _bad(path, f"basic_auth_users: {user!r} is not a user name")
        if not (isinstance(hashed, str) and BCRYPT_HASH.fullmatch(hashed)):
            raise _bad(path, f"basic_auth_users: the password of {user!r} is not a bcrypt "
                             "hash ($2y$10$ and 53 characters)")
        users[user] = hashed.encode()
    return users
