"""``StateConflict``: a request that is well formed, but that the current state of a row refuses (a finished
execution reopened, a delivered message re-queued).

It is a Django ``ValidationError``, so the admin and the services' callers treat it like any other; the API
answers it with 409 naming the field (``csplatform.api.exception_handler``), not 400: the client's input is not
what is wrong, and the OpenAPI schema documents 409 for the operations that can meet it.
"""

from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    pass
