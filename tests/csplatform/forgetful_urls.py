"""A deliberately careless view for the row-level security tests: it reads Account.objects.all()
without the tenancy helper, as a future bug might."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Account
from csplatform.permissions import resolve_membership


class ForgetfulAccountList(APIView):
    def get(self, request):
        resolve_membership(request)
        return Response(sorted(Account.objects.values_list("name", flat=True)))


urlpatterns = [path("forgetful/", ForgetfulAccountList.as_view())]
