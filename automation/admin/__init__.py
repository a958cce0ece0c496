"""The automation admin a CSM works in: rules (workflows = event triggers), their runs and steps, events.

Everything is scoped by tenant and role through ``csplatform.admin_base`` (DESIGN.md "Roles"): tenant admins
write rules; practitioners may also test and run them ("Test now", "Run now for account…", "Replay");
everyone else reads.

* ``rules``: the Workflow admin, its form and the run-now page; ``drafts``: drafts and kept rules on it.
* ``history``: runs, steps, events and scheduled slots (read-only).
* ``retention``: the tenant's retention policy (tenant admins).
* ``firing``: rules fired by hand (through ``automation.running``) as admin messages.
* ``display``: readable summaries (``rule_summary``, trigger details, condition traces, durations).

Importing this package (Django's admin autodiscovery does) registers every admin. Pages are templates in
``templates/admin/automation/``.
"""

from . import history, retention, rules  # noqa: F401  (registers the admins)
from .display import rule_summary

__all__ = ["rule_summary"]
