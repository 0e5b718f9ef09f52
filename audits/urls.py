"""Audit log routes, mounted under /api/v1/."""
from django.urls import path

app_name = "audits"
urlpatterns: list = []
