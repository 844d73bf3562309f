"""The exporter's HTTP layer against what clients throw at it: methods and paths,
slow and stalled clients, control characters in labels, TLS and basic auth from a
web configuration file. In-process, on loopback, with synthetic snapshots."""

import base64
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kvmhole.bench.attack import SlowClients
from kvmhole.bench.views import synthetic
from kvmhole.exporter import http as exporter_http
from kvmhole.exporter import webconfig
from kvmhole.exporter.server import listening
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.text import printable
from tests.conftest import assert_one_line_error, kvmhole, wait_for
from tests.pki import PASSWORD, TLS, make_pki, web_config
from tests.test_exporter import guest, snapshot, store_with

pytestmark = pytest.mark.pure

HOSTILE = "x\x1b]0;owned\x07\x1b[31mRED\r\x01"


def request(address: str, method: str, path: str, headers: dict | None = None,
            body: bytes | None = None) -> tuple[int, dict, bytes]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def raw(address: str, data: bytes) -> bytes:
    """What the server answers to exactly these bytes."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        return reply


def test_methods_and_paths_are_answered_as_http_says():
    with listening("127.0.0.1:0", store_with(snapshot(guest(1, "vm")))) as address:
        status, headers, body = request(address, "GET", "/metrics")
        assert status == 200 and b"kvmhole_build_info{" in body
        assert b"process_resident_memory_bytes" in body and b"up to one --interval old" in body
        status, head_headers, head_body = request(address, "HEAD", "/metrics")
        assert (status, head_body) == (200, b"")  # HEAD: the headers of GET, no body
        assert head_headers["Content-Length"] == str(len(body))
        for method in ("POST", "PUT", "DELETE", "FOO"):
            status, headers, _ = request(address, method, "/metrics")
            assert (status, headers.get("Allow")) == (405, "GET, HEAD"), method
        # a 99 GB body announced: refused without reading it
        reply = raw(address, b"POST /metrics HTTP/1.1\r\nContent-Length: 99000000000\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 405 ")
        for path in ("/../../etc/passwd", "/favicon.ico", "/metrics/x", "/metricsx"):
            assert request(address, "GET", path)[0] == 404, path
        status, headers, body = request(address, "GET", "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b'href="metrics"' in body
        assert request(address, "GET", "/metrics?name[]=x")[0] == 200
        for junk in (b"\x16\x03\x01junk\r\n\r\n", b"GET\r\n\r\n", b"get / HTTP/1.1\r\n\r\n",
                     b"GET / HTTP/9\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"):
            assert raw(address, junk).startswith(b"HTTP/1.1 400 "), junk
        too_long = b"GET / HTTP/1.1\r\nX: " + b"a" * (exporter_http.MAX_HEAD_BYTES + 1)
        assert raw(address, too_long + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")


def test_control_characters_in_label_values_are_escaped():
    with listening("127.0.0.1:0", store_with(snapshot(guest(1, HOSTILE)))) as address:
        body = request(address, "GET", "/metrics")[2]
    assert not any(byte < 0x20 and byte != 0x0A for byte in body)  # only newlines
    assert f'guest="{printable(HOSTILE)}"'.replace("\\", "\\\\").encode() in body


def test_scrapes_are_answered_while_slow_clients_hold_connections():
    """20 clients trickling a header byte each 0.5 s, a TLS ClientHello and 200
    connections that sent one byte: 64 guests' scrapes are all answered, while every
    one of those connections is still held open."""
    store = LatestSnapshot()
    store.update(synthetic(0))
    with listening("127.0.0.1:0", store) as address, \
            SlowClients(address, trickle=20, stall=200) as attack:
        for tick in range(1, 11):
            store.update(synthetic(tick))  # each scrape renders anew
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
                assert reply.status == 200
                assert reply.read().count(b"kvmhole_guest_info{") == 64
        assert attack.held() == 221  # the scrapes did not wait for any of them to go


def test_a_request_head_must_arrive_whole_within_the_deadline(monkeypatch):
    """A deadline per read would let a client that trickles bytes stay for ever."""
    monkeypatch.setattr(exporter_http, "REQUEST_DEADLINE_S", 1.0)
    with listening("127.0.0.1:0", store_with(snapshot())) as address, \
            SlowClients(address, trickle=3, stall=3, period=0.2) as attack:
        wait_for("the slow clients to be dropped", lambda: attack.held() == 0, timeout=30)


def test_the_oldest_waiting_connections_make_room_for_new_ones(monkeypatch):
    monkeypatch.setattr(exporter_http, "MAX_PENDING", 10)
    monkeypatch.setattr(exporter_http, "REQUEST_DEADLINE_S", 600.0)  # only the limit drops
    with listening("127.0.0.1:0", store_with(snapshot())) as address, \
            SlowClients(address, trickle=0, stall=30) as attack:
        wait_for("all but the newest 10 to be dropped", lambda: attack.held() <= 10)
        assert request(address, "GET", "/metrics")[0] == 200


# TLS and basic auth

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def https(address: str, pki: Path, user: str | None = None, password: str = PASSWORD,
          client_cert: bool = False, max_version=None) -> int:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client_cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    if max_version:
        context.maximum_version = max_version
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        conn.request("GET", "/metrics", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_tls_and_basic_auth(pki):
    web = webconfig.load(str(web_config(pki)))
    with listening("127.0.0.1:0", store_with(snapshot(guest(1, "vm"))), web=web) as address:
        assert https(address, pki, "prometheus") == 200
        assert https(address, pki, "prometheus") == 200  # the remembered credential
        assert https(address, pki) == 401
        assert https(address, pki, "prometheus", "wrong") == 401
        assert https(address, pki, "nobody") == 401
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://{address}/metrics", timeout=10)  # plain HTTP


def test_min_version(pki):
    web = webconfig.load(str(web_config(pki, min_version="TLS13")))
    with listening("127.0.0.1:0", store_with(snapshot()), web=web) as address:
        assert https(address, pki, "prometheus") == 200
        with pytest.raises(ssl.SSLError):
            https(address, pki, "prometheus", max_version=ssl.TLSVersion.TLSv1_2)


def test_client_certificates(pki):
    web = webconfig.load(str(web_config(pki, "RequireAndVerifyClientCert")))
    with listening("127.0.0.1:0", store_with(snapshot()), web=web) as address:
        assert https(address, pki, "prometheus", client_cert=True) == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https(address, pki, "prometheus")


BAD_CONFIGS = {
    "no such file": (None, "cannot read it"),
    "not yaml": ("tls_server_config: [\n", "not YAML"),
    "a list": ("- 1\n", "not a mapping"),
    "unknown key": ("http_server_config:\n  http2: true\n", "http_server_config: not supported"),
    "plain password": ("basic_auth_users:\n  prometheus: secret\n", "not a bcrypt hash"),
    "no key file": ("tls_server_config:\n  cert_file: server.crt\n", "both cert_file and key_file"),
    "missing cert": ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
                     "cannot load cert_file"),
    "bad version": (TLS + "  min_version: TLS9\n", "min_version 'TLS9'"),
    "unverified client certs": (TLS + "  client_auth_type: RequireAnyClientCert\n",
                                "client_auth_type 'RequireAnyClientCert'"),
    "verify without a CA": (TLS + "  client_auth_type: VerifyClientCertIfGiven\n",
                            "needs client_ca_file"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_a_bad_web_config_is_one_error_at_start(pki, case):
    text, words = BAD_CONFIGS[case]
    path = pki / f"bad-{case.replace(' ', '-')}.yml"
    if text is not None:
        path.write_text(text)
    done = kvmhole("export", "--listen", "127.0.0.1:0", "--web.config.file", str(path),
                   check=False, timeout=60)
    assert_one_line_error(done, "--web.config.file", words)
