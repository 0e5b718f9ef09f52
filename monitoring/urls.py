"""Evidence routes, mounted under /api/v1/."""
from django.urls import path

from monitoring import api

app_name = "monitoring"
urlpatterns = [
    path("datasets/upload/", api.DatasetUploadView.as_view(), name="dataset-upload"),
    path("datasets/register-file/", api.DatasetRegisterFileView.as_view(), name="dataset-register-file"),
    path("models/<str:name>/versions/<int:number>/reports/", api.ReportListView.as_view(), name="report-list"),
    path("reports/<int:pk>/", api.ReportDetailView.as_view(), name="report-detail"),
]
