"""The CSM cockpit: the admin home (which of my accounts need me today, and why) and the customer 360.

``sources`` is the extension point: ``accounts`` knows nothing of automation, playbooks, crm or delivery
(docs/architecture.md), so each of them registers a ``Source`` from its ``AppConfig.ready`` that adds its
timeline entries, its "what's next" items, the plays it fired and its actions. ``home`` and ``customer``
read; ``timeline`` merges and pages; ``views`` and ``site`` serve the pages (docs/cockpit.md).

Nothing is imported here: ``site.CockpitAdminConfig`` is loaded with the settings, before the models.
"""
