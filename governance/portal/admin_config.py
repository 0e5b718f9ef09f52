"""The admin's app config with the portal as its default site.

Every ``@admin.register`` in the project then lands on ``PortalSite`` and ``admin.site.urls``
serves it; the admin's autodiscovery is unchanged.
"""
from __future__ import annotations

from django.contrib.admin import apps


class PortalAdminConfig(apps.AdminConfig):
    default_site = "governance.portal.site.PortalSite"
