"""Second-factor devices in the admin: listed for administrators, never edited there.

Loaded before django-otp's own admin module (this app comes first in INSTALLED_APPS), so this
read-only registration is the one that stands: a device is created only by enrolling
(``otp_device_enrol``) and removed only by ``otp_device_reset``, both audited. The secret key is
never shown.
"""
from __future__ import annotations

from django.contrib import admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.admin_base import ReadOnlyAdmin


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyAdmin):
    view_capability = "manage_roles"
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]
