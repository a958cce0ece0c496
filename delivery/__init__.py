"""Everything that leaves the platform: the outbox, transports (webhook, email, SMS, Slack, HubSpot,
Salesforce), signing, the SSRF policy, retries, endpoint health, email templates, webhook secrets and
integration credentials (docs/delivery.md).

Delivery sits below automation: it uses ``accounts`` and ``csplatform`` only. Automation, playbooks and
crm call ``services.outbox_enqueue``; apps that must react to a message's final outcome connect to
``signals.outbox_message_finished``.
"""
