"""Audit log routes, mounted under /api/v1/."""
from django.urls import path

from audits import api

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
]
