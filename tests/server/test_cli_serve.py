"""`kaiga serve` and `kaiga keys` as a person runs them."""

import pytest

from kaiga.server.settings import is_loopback
from tests.server.conftest import kaiga


@pytest.mark.parametrize("host", ["0.0.0.0", "example.org"])
def test_serving_beyond_loopback_without_auth_is_refused(host):
    r = kaiga("serve", "--host", host)
    assert r.returncode == 2 and "--auth" in r.stderr and "--insecure" in r.stderr


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("10.0.0.1", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_keys_create_list_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    key = kaiga("keys", "create", "--name", "ci", "--db", db).stdout.strip()
    listed = kaiga("keys", "list", "--db", db).stdout
    assert "ci" in listed and key[:10] in listed and key not in listed
    assert kaiga("keys", "revoke", "1", "--db", db).returncode == 0
    assert kaiga("keys", "revoke", "1", "--db", db).returncode == 2


def test_a_port_in_use_is_one_line_before_serving_on(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = kaiga("serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'k.db'}")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: --port: {port} is already in use on 127.0.0.1; stop what serves there or pick another --port"
    assert "serving on" not in r.stderr and "Traceback" not in r.stderr
