"""Pagination (its own module: DRF imports it while building its generic views)."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

from .query_params import given_once


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (``?limit=`` too, seed 001's name). An empty value, or one given twice, is
    refused like any other that is not a page number or size (404 "Invalid page.", 400), not read as the default
    or the last."""

    page_size = 50
    max_page_size = 500

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and (not raw.strip() or len(request.query_params.getlist(self.page_query_param)) > 1):
            raise NotFound(self.invalid_page_message.format(page_number=raw, message="empty"))
        return super().get_page_number(request, paginator)

    def get_page_size(self, request):
        given_once(request.query_params, "page_size", "limit")
        sizes = []
        for param in ("page_size", "limit"):  # both checked; page_size wins when both are given
            raw = request.query_params.get(param)
            if raw is not None:
                try:
                    size = int(raw)
                except ValueError:
                    size = 0
                if size < 1:
                    raise ValidationError({param: ["Must be a positive integer."]})
                sizes.append(min(size, self.max_page_size))
        return sizes[0] if sizes else self.page_size

    def get_schema_operation_parameters(self, view):
        size = {"type": "integer", "minimum": 1}
        return [*super().get_schema_operation_parameters(view),
                {"name": "page_size", "required": False, "in": "query", "schema": size,
                 "description": f"Items per page (default {self.page_size}, at most {self.max_page_size})."},
                {"name": "limit", "required": False, "in": "query", "schema": size,
                 "description": "Same as page_size (seed 001's name)."}]
