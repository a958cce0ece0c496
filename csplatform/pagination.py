"""Pagination (its own module: DRF imports it while building its generic views)."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (``?limit=`` too, seed 001's name)."""

    page_size = 50
    max_page_size = 500

    def get_page_size(self, request):
        for param in ("page_size", "limit"):
            raw = request.query_params.get(param)
            if raw:
                try:
                    size = int(raw)
                except ValueError:
                    size = 0
                if size < 1:
                    raise ValidationError({param: ["Must be a positive integer."]})
                return min(size, self.max_page_size)
        return self.page_size
