"""Delivery test fixtures (the HTTP ``receiver`` the deliveries post to is in tests/conftest.py)."""

import pytest


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the block, then the on-commit callbacks it registered (events, then outbox dispatch)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)

