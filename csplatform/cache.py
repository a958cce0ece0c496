"""The cache degrades instead of failing (issue 15, "degrade, don't die"): with Redis unreachable, a read is a
miss and a write is dropped, with a warning at most once a minute, so API throttles fail open, the rule index
is rebuilt from the database and requests still answer. Short socket timeouts (settings) keep a dead Redis
from holding requests. What needs Redis to be right (celery's broker) is not behind this class."""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
WARN_EVERY = 60.0
_last_warning = [0.0]


def _warn(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY:
        _last_warning[0] = now
        log.warning("cache unavailable (%s: %s); carrying on without it", operation, exc)


def _fail_open(name: str, fallback):
    def method(self, *args, **kwargs):
        try:
            return getattr(RedisCache, name)(self, *args, **kwargs)
        except DOWN as exc:
            _warn(name, exc)
            return fallback(*args, **kwargs) if callable(fallback) else fallback
    method.__name__ = name
    return method


class FailOpenRedisCache(RedisCache):
    get = _fail_open("get", lambda key, default=None, version=None: default)
    get_many = _fail_open("get_many", {})
    has_key = _fail_open("has_key", False)
    set = _fail_open("set", None)
    add = _fail_open("add", False)
    touch = _fail_open("touch", False)
    set_many = _fail_open("set_many", [])
    delete = _fail_open("delete", False)
    delete_many = _fail_open("delete_many", None)
