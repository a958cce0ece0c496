"""The two exceptions of the condition language."""


def join_path(prefix: str, name: str) -> str:
    """``join_path("conditions[1]", "operator") == "conditions[1].operator"``; either part may be empty."""
    if not prefix:
        return name
    if not name:
        return prefix
    return f"{prefix}{name}" if name.startswith("[") else f"{prefix}.{name}"


class ConditionError(ValueError):
    """A condition is malformed or unsafe. ``field`` is its path in the config, e.g. ``conditions[1].operator``."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def under(self, prefix: str) -> "ConditionError":
        """The same error, its path prefixed with the position of the condition that raised it."""
        return ConditionError(join_path(prefix, self.field), self.message)


class NotCompilable(Exception):
    """``to_q`` met a condition that needs one save's changes or the clock; evaluate it in memory instead."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
