"""Outbound policy (SSRF): tenants cannot point webhooks at metadata services or, by default, internal hosts."""

import pytest

from delivery import policy, services
from delivery.models import Outbox

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://0.0.0.0:8000/", "http://100.100.100.200/",
    "http://[fd00:ec2::254]/", "http://224.0.0.1/",
])
def test_it_refuses_link_local_and_metadata_addresses_even_when_loopback_is_allowed(settings, url):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    with pytest.raises(policy.Refused):
        policy.check_url(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/x", "http://localhost/x", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://172.20.0.5/", "http://100.64.1.1/", "http://[::ffff:127.0.0.1]/",
])
def test_it_refuses_loopback_and_private_addresses_unless_allowed(settings, url):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(policy.Refused) as error:
        policy.check_url(url)
    assert "OUTBOUND_ALLOW_LOOPBACK" in str(error.value)
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    assert policy.check_url(url).ip


def test_it_allows_public_addresses(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    target = policy.check_url("https://93.184.215.14:8443/hook?x=1")
    assert (target.pinned_url, target.host_header) == ("https://93.184.215.14:8443/hook?x=1", "93.184.215.14:8443")


def test_it_marks_a_webhook_to_a_refused_address_dead_without_connecting(tenant, receiver, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    message = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url + "/x", payload={})
    services.deliver()
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Outbox.Status.DEAD, 1)
    assert message.error.startswith("refused: 127.0.0.1 is a private or loopback address")
    assert receiver.requests == []


def test_it_connects_to_the_checked_address_with_the_original_host(tenant, receiver):
    url = receiver.url.replace("127.0.0.1", "localhost") + "/named"
    message = services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={"a": 1})
    services.deliver()
    message.refresh_from_db()
    assert message.status == Outbox.Status.DELIVERED
    assert receiver.requests[0]["headers"]["host"] == f"localhost:{receiver.server.server_port}"


def test_it_does_not_follow_redirects(tenant, receiver, settings):
    receiver.respond((302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""))
    message = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={})
    services.deliver()
    message.refresh_from_db()
    assert (message.status, message.last_status_code, len(receiver.requests)) == (Outbox.Status.FAILED, 302, 1)


@pytest.fixture
def tls_receiver(tmp_path, receiver, settings):
    """The receiver behind TLS with a certificate for 'localhost' that the test trusts."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    settings.OUTBOUND_CA_BUNDLE = str(cert)
    return receiver


def test_it_verifies_tls_for_the_hosts_name_while_connecting_to_the_checked_address(tenant, tls_receiver):
    port = tls_receiver.server.server_port
    good = services.outbox_enqueue(tenant=tenant, channel="webhook", target=f"https://localhost:{port}/tls", payload={})
    services.deliver()
    good.refresh_from_db()
    assert good.status == Outbox.Status.DELIVERED
    # The certificate names 'localhost', not the address: by IP the TLS check fails (and is retried, not skipped).
    bad = services.outbox_enqueue(tenant=tenant, channel="webhook", target=f"https://127.0.0.1:{port}/tls", payload={})
    services.deliver()
    bad.refresh_from_db()
    assert bad.status == Outbox.Status.FAILED and "CERTIFICATE_VERIFY_FAILED" in bad.error


@pytest.mark.parametrize("url", [
    "http://[2002:7f00:1::]/",            # 6to4 carrying 127.0.0.1 (the probe's address)
    "http://[2002:a9fe:a9fe::]/",         # 6to4 carrying 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo (its client is 127.0.0.1)
    "http://[64:ff9b::a9fe:a9fe]/",       # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/",         # local-use NAT64 of 10.0.0.1
    "http://[::7f00:1]/",                 # IPv4-compatible 127.0.0.1
    "http://[fec0::1]/",                  # site-local
])
def test_it_refuses_ipv6_that_tunnels_to_ipv4_even_when_loopback_is_allowed(settings, url):
    """Literal addresses only: nothing is resolved and no packet is sent."""
    for allow in (False, True):
        settings.OUTBOUND_ALLOW_LOOPBACK = allow
        with pytest.raises(policy.Refused) as error:
            policy.check_url(url)
        assert "tunnels or translates" in str(error.value)


def test_a_mapped_ipv4_address_is_checked_as_the_ipv4_it_maps_to(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(policy.Refused):
        policy.check_url("http://[::ffff:10.0.0.1]/")
    assert policy.check_url("http://[::ffff:93.184.215.14]/").ip == "::ffff:93.184.215.14"
