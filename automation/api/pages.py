"""Seed 001's page shape: ``{"workflows": [...], "total": 12, "page": 1, "limit": 25}``."""

from rest_framework.response import Response

from csplatform.pagination import Pagination


class SeedPagination(Pagination):
    """``?page=`` and ``?limit=`` (or ``page_size``), answered in seed 001's envelope under ``key``."""

    page_size = 25  # seed 001's example
    key = "results"

    def __init__(self, key: str | None = None):
        if key is not None:
            self.key = key

    def get_paginated_response(self, data):
        return Response({self.key: data, "total": self.page.paginator.count, "page": self.page.number,
                         "limit": self.page.paginator.per_page})

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "required": [self.key, "total", "page", "limit"], "properties": {
            self.key: schema, "total": {"type": "integer", "example": 12}, "page": {"type": "integer", "example": 1},
            "limit": {"type": "integer", "example": 25}}}


class WorkflowPagination(SeedPagination):
    key = "workflows"
