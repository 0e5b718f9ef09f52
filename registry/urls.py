"""Registry routes, mounted under /api/v1/."""
from django.urls import path

from registry import api

app_name = "registry"
urlpatterns = [
    path("models/", api.ModelListView.as_view(), name="model-list"),
    path("models/<str:name>/", api.ModelDetailView.as_view(), name="model-detail"),
    path("models/<str:name>/archive/", api.ModelArchiveView.as_view(), name="model-archive"),
    path("models/<str:name>/versions/", api.VersionListView.as_view(), name="version-list"),
    path("models/<str:name>/versions/<int:number>/", api.VersionDetailView.as_view(), name="version-detail"),
    path("models/<str:name>/stages/", api.StagesView.as_view(), name="stages"),
    path("models/<str:name>/stages/history/", api.StageHistoryView.as_view(), name="stage-history"),
    path("datasets/", api.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", api.DatasetDetailView.as_view(), name="dataset-detail"),
]
