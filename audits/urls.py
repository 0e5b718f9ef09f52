"""Audit log routes, mounted under /api/v1/."""
from django.urls import path

from audits import api
from audits.packs import api as packs_api

app_name = "audits"
urlpatterns = [
    path("audit/keys", api.KeysView.as_view(), name="keys"),
    path("audit/checkpoint", api.CheckpointView.as_view(), name="checkpoint"),
    path("audit/events/", api.EventListView.as_view(), name="event-list"),
    path("audit/events/<int:seq>/", api.EventDetailView.as_view(), name="event-detail"),
    path("audit/proofs/inclusion", api.InclusionProofView.as_view(), name="inclusion-proof"),
    path("audit/proofs/consistency", api.ConsistencyProofView.as_view(), name="consistency-proof"),
    path("audit/export", api.ExportView.as_view(), name="export"),
    path("audit/verify", api.VerifyView.as_view(), name="verify"),
    path("audit-packs/", packs_api.PackListView.as_view(), name="pack-list"),
    path("audit-packs/verify", packs_api.PackVerifyView.as_view(), name="pack-verify"),
    path("audit-packs/<int:pk>/", packs_api.PackDetailView.as_view(), name="pack-detail"),
    path("audit-packs/<int:pk>/download", packs_api.PackDownloadView.as_view(), name="pack-download"),
]
