"""A stand-in for an evaluation endpoint of another app (evaluate-all, test a rule): it opts into the
stricter ``evaluation`` throttle the way those views do, with ``throttle_scope = "evaluation"``."""

from django.urls import include, path
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from csplatform.permissions import MANAGERS


class EvaluateAll(APIView):
    throttle_scope = "evaluation"
    write_roles = MANAGERS

    def post(self, request):
        return Response({"evaluated": 0})


class Rules(viewsets.ViewSet):
    """A viewset where only one action is an evaluation (the class attribute lets the action set it)."""

    throttle_scope = None

    def list(self, request):
        return Response([])

    @action(detail=False, methods=["post"], throttle_scope="evaluation")
    def test(self, request):
        return Response({"matched": 0})


router = SimpleRouter()
router.register("api/rules", Rules, basename="rules")

urlpatterns = [
    path("api/evaluate-all/", EvaluateAll.as_view()),
    *router.urls,
    path("", include("csplatform.urls")),
]
