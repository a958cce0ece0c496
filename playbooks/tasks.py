"""Celery tasks: thin, call a service."""

from celery import shared_task

from . import scheduling


@shared_task(name="playbooks.tasks.evaluate_due_tenants_task", ignore_result=True)
def evaluate_due_tenants_task() -> dict:
    return scheduling.evaluate_due_tenants()
