"""A real HTTP receiver on 127.0.0.1 (http.server in a thread) that records requests, answers from a
script of responses and, given secrets, verifies Standard Webhooks signatures like a real receiver."""

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from delivery import signing
from automation.models import Workflow
from automation.services import workflow_save


class Receiver:
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
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the block, then the on-commit callbacks it registered (events, then outbox dispatch)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def make_rule(tenant, **data):
    data = {"name": "Rule", "status": "active", **data}
    return workflow_save(rule=Workflow(tenant=tenant), data=data)
