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


class PromotionKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback to the previous holder"


class PromotionPolicy(models.Model):
    """One published version of a policy document. Published versions never change.

    Editing a policy publishes version n+1 under the same name; the latest version of a name is
    the one in force. ``document`` is the normalised policy (``governance.policy.Policy.to_data``).
    """

    name = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    document = models.JSONField()
    digest = models.CharField(max_length=64)
    target_stage = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=PromotionKind.choices, default=PromotionKind.PROMOTION,
                            help_text="Rollback policies decide only rollbacks; promotion policies everything else.")
    published_by = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="policy_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PromotionState(models.TextChoices):
    WAITING_FOR_EVIDENCE = "waiting_for_evidence", "Waiting for evidence"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    PROMOTED = "promoted", "Promoted"
    BLOCKED = "blocked", "Blocked by gates"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


OPEN_PROMOTION_STATES = (PromotionState.WAITING_FOR_EVIDENCE, PromotionState.AWAITING_APPROVAL,
                         PromotionState.APPROVED)


class PromotionRequest(models.Model):
    """A request to move a version into a stage, decided by its policy's gates and approvers."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.PROTECT, related_name="promotions")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="promotions")
    target_stage = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=PromotionKind.choices, default=PromotionKind.PROMOTION)
    reason = models.TextField(max_length=2000)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    requester = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    idempotency_key = models.CharField(max_length=128, blank=True)
    policy = models.ForeignKey(PromotionPolicy, null=True, on_delete=models.PROTECT, related_name="requests")
    state = models.CharField(max_length=24, choices=PromotionState.choices)
    decision = models.JSONField(default=dict, help_text="The latest gate evaluation (governance.gates.Decision).")
    receipt = models.TextField(blank=True, help_text="Signed decision receipt (a signed note) once final.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["model", "target_stage"],
                                    condition=models.Q(state__in=[s.value for s in OPEN_PROMOTION_STATES]),
                                    name="one_open_promotion_per_stage"),
            models.UniqueConstraint(fields=["requested_by", "idempotency_key"],
                                    condition=~models.Q(idempotency_key=""), name="promotion_idempotency_key"),
        ]
        # The two partial unique indexes above guard integrity. A prepared statement's generic plan
        # can use them only where the query names their constants literally: the compiled lookup
        # of "the open request for this stage, or my earlier request with this key" does
        # (governance.queries.inline_constants). These plain indexes serve every other reader,
        # whose ``state IN ($1, $2, $3)`` or ``idempotency_key = $4`` arrive as parameters;
        # without them such a read walked every request of the model or of the account.
        indexes = [models.Index(fields=["model", "target_stage", "state"], name="promotion_open_lookup"),
                   models.Index(fields=["requested_by", "idempotency_key"], name="promotion_replay_lookup")]

    def __str__(self) -> str:
        return f"promotion #{self.pk}: {self.version} to {self.target_stage}"


class Approval(models.Model):
    """One person's decision on a promotion request (their latest decision counts)."""

    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    roles = models.JSONField(default=list)
    decision = models.CharField(max_length=16, choices=[("approved", "Approved"), ("rejected", "Rejected")])
    comment = models.TextField(blank=True, max_length=4000)
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["decided_at", "id"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="one_decision_per_person")]


class Waiver(models.Model):
    """A compliance officer's exception for one failing gate of one version, until it expires."""

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="waivers")
    gate = models.CharField(max_length=200, help_text="The gate's key, e.g. 'validation_metric:accuracy>=0.85'.")
    justification = models.TextField(max_length=4000)
    expires_at = models.DateTimeField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        default_permissions = ("view",)


class WebhookEndpoint(models.Model):
    """A URL told about promotion decisions, with the secret its deliveries are signed with.

    The secret is needed in clear to compute each HMAC, so it cannot be hashed like a token: it is
    stored encrypted (Fernet, a key derived from SECRET_KEY; ``governance.notifications``) and
    shown once, when created or rotated. ``team`` set: only decisions on that team's models.
    """

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(max_length=2000)
    secret_encrypted = models.TextField(help_text="Fernet token of the signing secret; never shown.")
    events = models.JSONField(default=list, help_text="Event types delivered, e.g. ['promotion.promoted'].")
    active = models.BooleanField(default=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="webhooks",
                             help_text="Only decisions on this team's models; empty: every model.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.name


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact bytes to POST and how the attempts went.

    Saved in the decision's transaction, sent after commit by a worker. ``next_attempt_at`` is
    when a worker may try next (also a lease while an attempt is in flight); None once final.
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    payload = models.BinaryField(help_text="The canonical JSON body, identical on every attempt.")
    status = models.CharField(max_length=16, choices=WebhookDeliveryStatus.choices,
                              default=WebhookDeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="one_delivery_per_event")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id} ({self.status})"
