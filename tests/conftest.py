import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from delivery import signing

from .factories import MembershipFactory, TenantFactory, token_for


@pytest.fixture(autouse=True)
def _default_journeys(request, settings):
    """New tenants get the CRM default journeys, each with a managed rule, only in tests/crm: elsewhere a test
    sees the rules and runs it made itself (CRM_DEFAULT_JOURNEYS, docs/crm.md)."""
    settings.CRM_DEFAULT_JOURNEYS = "tests/crm/" in str(request.node.path).replace("\\", "/")


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the block, then the on-commit callbacks it registered (events, then outbox dispatch)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def tenant(db):
    return TenantFactory()


@pytest.fixture
def other_tenant(db):
    return TenantFactory()


@pytest.fixture
def member_client(db):
    """``member_client(tenant, role)`` -> an APIClient authenticated by token as a new member of ``tenant``."""

    def make(tenant, role=Role.TENANT_ADMIN):
        membership = MembershipFactory(tenant=tenant, role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(membership.user)}")
        client.user = membership.user
        return client

    return make


@pytest.fixture
def api(member_client, tenant):
    """A tenant admin's client for ``tenant``."""
    return member_client(tenant, Role.TENANT_ADMIN)


class Receiver:
    """A real HTTP receiver on 127.0.0.1 (http.server in a thread) that records requests, answers from a
    script of responses and, given secrets, verifies Standard Webhooks signatures like a real receiver."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: deque = deque()
        self.default = (200, {}, b'{"ok": true}')
        self.secrets: list[str] = []
        self.delay = 0.0
        self.gate: threading.Event | None = None  # when set: hold every response until the gate opens
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def respond(self, *responses):
        """Queue responses: an int status, or (status, headers, body)."""
        for response in responses:
            self.script.append(response if isinstance(response, tuple) else (response, {}, b""))

    def ids(self) -> list[str]:
        return [r["headers"].get("webhook-id") for r in self.requests]

    def json(self, index=-1):
        return json.loads(self.requests[index]["body"])

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.secrets:
                    verified = False
                    for secret in receiver.secrets:
                        try:
                            signing.verify(secret, headers, body)
                            verified = True
                            break
                        except signing.InvalidSignature:
                            pass
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append({"method": self.command, "path": self.path, "headers": headers,
                                              "body": body, "verified": verified, "at": time.time()})
                    status, extra, reply = receiver.script.popleft() if receiver.script else receiver.default
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                if verified is False:
                    status, extra, reply = 401, {}, b"bad signature"
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _serve

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    """A local HTTP server the deliveries post to (delivery, SuccessPlay and end-to-end tests)."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _setup_sees_every_tenant():
    """Test set-up writes rows of several tenants, so it runs in the system context (row-level security
    bypassed); each request made by a test client runs in its own, closed, tenant scope."""
    from django.core.cache import cache

    from csplatform.tenancy import system_context

    cache.clear()  # cached rule indexes must not outlive the test's rolled-back rules
    with system_context("test set-up"):
        yield
