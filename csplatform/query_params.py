"""Query parameters read one value each (its own module: ``csplatform.pagination`` needs it, and DRF imports
that module while building its generic views, before ``csplatform.api`` can be imported)."""

from rest_framework.exceptions import ValidationError


def given_once(query_params, *names: str) -> None:
    """A 400 for a query parameter given more than once (``?search=a&search=b``): the API reads one value, and
    a client that sent two meant something it would not get."""
    repeated = {name: ["Give this parameter once."] for name in names if len(query_params.getlist(name)) > 1}
    if repeated:
        raise ValidationError(repeated)
