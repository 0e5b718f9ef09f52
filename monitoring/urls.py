"""Evidence routes, mounted under /api/v1/."""
from django.urls import path

app_name = "monitoring"
urlpatterns: list = []
