"""Top-level routes: the API (versioned), its schema and docs, the admin portal, health."""
from csp.decorators import csp_update
from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from governance.api.exceptions import json_not_found, json_server_error


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers; says nothing about the data."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so the Content-Security-Policy needs no inline
    # script; Swagger UI's page keeps one inline <style>, allowed on this page only.
    path("api/docs/", csp_update({"style-src": ["'unsafe-inline'"]})(
        SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path("api/v1/", include("governance.api.urls")),
    path("api/v1/", include("registry.urls")),
    path("api/v1/", include("audits.urls")),
    path("api/v1/", include("monitoring.urls")),
    path("admin/", admin.site.urls),
]

handler404 = json_not_found
handler500 = json_server_error
