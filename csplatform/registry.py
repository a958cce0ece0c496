"""A small typed registry (after Sentry's workflow_engine): duplicate and unknown keys fail loudly.

One class for every "type name -> implementation" table: automation's triggers, actions and condition
types, delivery's transports. It lives here, below both apps, so that delivery need not import automation.

    transports: Registry[Transport] = Registry("transport", strict=False)

    @register                      # or: transports.register("webhook")(WebhookTransport())
    class WebhookTransport(Transport): ...

    transports.get("webhook")      # the item; an unknown key raises KeyError naming the known ones
    "webhook" in transports        # membership;  transports.keys(): the sorted keys
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind by key. ``register`` refuses a key twice. ``get`` of an unknown key raises a
    KeyError naming the known keys; a registry made with ``strict=False`` returns None instead (like
    ``dict.get``: delivery's ``send`` turns an unknown channel into a permanent failure itself)."""

    def __init__(self, kind: str, *, strict: bool = True):
        self.kind = kind
        self.strict = strict
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._items[key] = item
            return item

        return decorator

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            if not self.strict:
                return None  # type: ignore[return-value]  # only for strict=False registries
            raise KeyError(f"unknown {self.kind} '{key}'; known: {', '.join(sorted(self._items))}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def keys(self) -> list[str]:
        return sorted(self._items)
