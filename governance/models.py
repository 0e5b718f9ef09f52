"""People-side models: roles (as groups), teams (owning models) and API tokens."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from governance.roles import CAPABILITIES


class Role(models.Model):
    """A role is a Django group; this row names it and carries the capability permissions."""

    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="role")
    name = models.CharField(max_length=40, unique=True)
    label = models.CharField(max_length=80)

    class Meta:
        default_permissions = ()
        permissions = sorted(CAPABILITIES.items())

    def __str__(self) -> str:
        return self.label


class Team(models.Model):
    """A team owns models; its members are the users of its group (guardian grants go to it)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, max_length=2000)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A bearer token. Only the SHA-256 of the secret is stored; the secret is shown once.

    Tokens are high-entropy random strings, so a fast hash is enough (no guessing attack to slow
    down); the lookup is by that hash. ``team`` narrows what the token may touch to one team.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now
