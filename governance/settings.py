"""Settings, read from the environment (12-factor).

Two modes, chosen by ``GOVAUDIT_ENV``:

* ``development`` (default): an SQLite file under the data folder, a secret key generated once and
  kept in that folder, tasks run in-process unless ``CELERY_BROKER_URL`` is set.
* ``production``: ``SECRET_KEY`` and ``ALLOWED_HOSTS`` are required, cookies are secure, HTTPS is
  enforced, and ``manage.py check --deploy`` reports nothing.

Every variable is listed in ``docs/configuration.md``.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


GOVAUDIT_ENV = _env("GOVAUDIT_ENV", "development")
if GOVAUDIT_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("GOVAUDIT_ENV must be 'development' or 'production'")
PRODUCTION = GOVAUDIT_ENV == "production"

DATA_DIR = Path(_env("GOVAUDIT_DATA_DIR", str(BASE_DIR / "var"))).resolve()
STORAGE_DIR = Path(_env("GOVAUDIT_STORAGE_DIR", str(DATA_DIR / "storage"))).resolve()
KEY_DIR = Path(_env("GOVAUDIT_KEY_DIR", str(DATA_DIR / "keys"))).resolve()


def _secret_key() -> str:
    """Production demands the key from the environment; development keeps a generated one."""
    key = _env("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when GOVAUDIT_ENV=production")
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DEBUG", False) and not PRODUCTION

_hosts = _env("ALLOWED_HOSTS")
if PRODUCTION and not _hosts:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when GOVAUDIT_ENV=production")
ALLOWED_HOSTS = [h.strip() for h in (_hosts or "127.0.0.1,localhost,testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in (_env("CSRF_TRUSTED_ORIGINS") or "").split(",") if o.strip()]

INSTALLED_APPS = [
    "governance.portal",  # the compliance portal; before the admin, whose base template it extends
    "governance.portal.admin_config.PortalAdminConfig",  # django.contrib.admin with the portal as its site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_celery_beat",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "governance",
    "audits",
    "registry",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "governance.middleware.CSPMiddleware",  # django-csp's, its headers built once
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "governance.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "governance.portal.middleware.PortalSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the lockout page
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "governance" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
_default_db = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(_env("DATABASE_URL", _default_db), conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE takes the write lock at BEGIN, so two writers never both read the chain's head and
    # then race to extend it; WAL (switched on once per file, see governance.signals) lets readers
    # proceed while one writer holds that lock.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool("DATABASE_SERVER_SIDE_BINDING", True):
    # Server-side binding sends parameters apart from the statement text, so every execution of a
    # query shape is the same statement, and psycopg prepares a shape after its fifth run on a
    # connection: PostgreSQL then skips parsing and planning it. Measured in-process on the
    # pipeline's register + promote: 16.5 + 24.5 ms -> 13 + 20.5 ms (docs/benchmarks/promotions.md).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "governance.portal.backends.LockoutBackend",  # django-axes: refuses locked-out sign-ins first
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # guardian: no anonymous object permissions, deny by default

SESSION_COOKIE_AGE = _env_int("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # __Host- cookies: only over HTTPS, only for this exact host, path /.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- Portal sign-in and pages (docs/portal.md) ---------------------------------------------------
# django-axes: this many failed sign-ins for one name from one address lock that pair out for a
# while (the failures and the lockout are in the audit log). Addresses are REMOTE_ADDR.
AXES_FAILURE_LIMIT = _env_int("GOVAUDIT_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env_int("GOVAUDIT_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are recorded in the audit log
AXES_LOCKOUT_TEMPLATE = "portal/locked_out.html"
AXES_VERBOSE = False  # no log lines of its own: the audit log has every attempt
AXES_ENABLE_ADMIN = False  # lockouts lift after the cool-off (or manage.py axes_reset), never by an admin form
# Members of these roles (comma-separated names) must pass a TOTP second factor; anyone who set one
# up is asked for it too. A session ends after this long idle, and SESSION_COOKIE_AGE after sign-in.
GOVAUDIT_OTP_REQUIRED_ROLES = [r.strip() for r in (_env("GOVAUDIT_OTP_REQUIRED_ROLES") or "").split(",") if r.strip()]
OTP_TOTP_ISSUER = _env("GOVAUDIT_OTP_ISSUER", "govaudit")
GOVAUDIT_SESSION_IDLE_SECONDS = _env_int("GOVAUDIT_SESSION_IDLE_SECONDS", 30 * 60)
# Content-Security-Policy (django-csp): our own scripts, styles and images only; nothing inline
# (charts are inline SVG with presentation attributes, which CSP does not restrict).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Internationalisation / static --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# WhiteNoise serves the admin's and the API docs' assets from the app itself (no CDN, no nginx
# needed); production serves the collected, compressed files, development straight from the apps.
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(STORAGE_DIR)}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "governance.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "govaudit API",
    "DESCRIPTION": "Model registry, gated promotions and tamper-evident audit log.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the machine has no CDN to load Swagger UI from.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Several models have a "kind" field with different choices; name each enum after its meaning.
    "ENUM_NAME_OVERRIDES": {
        "PromotionKindEnum": "governance.models.PromotionKind",
        "ReportKindEnum": "monitoring.models.ReportKind",
    },
}
# Request bodies larger than this answer 413 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = _env_int("GOVAUDIT_MAX_JSON_BYTES", 1024 * 1024)
GOVAUDIT_MAX_UPLOAD_BYTES = _env_int("GOVAUDIT_MAX_UPLOAD_BYTES", 2 * 1024**3)

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = _env("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = _env("CELERY_RESULT_BACKEND")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Installed into django-celery-beat's tables at beat start-up; editable in the admin afterwards.
CELERY_BEAT_SCHEDULE = {
    "audit-sequence": {"task": "audits.sequence", "schedule": 5.0},
    "audit-checkpoint": {"task": "audits.checkpoint_if_due", "schedule": 10.0},
    "report-reaper": {"task": "monitoring.reap_stuck_reports", "schedule": 300.0},
    "promotion-expiry": {"task": "governance.expire_promotions", "schedule": 3600.0},
    "webhook-retries": {"task": "governance.deliver_due_webhooks", "schedule": 60.0},
}
# A task whose worker died is handed to another worker after this long (longer than any report).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 3600)}
GOVAUDIT_REPORT_DEADLINE_SECONDS = _env_int("GOVAUDIT_REPORT_DEADLINE_SECONDS", 3600)

# --- Audit log ----------------------------------------------------------------------------------
AUDIT_LOG_ORIGIN = _env("AUDIT_LOG_ORIGIN", "govaudit.local/audit-log")
AUDIT_SIGNING_KEY = _env("AUDIT_SIGNING_KEY")  # "PRIVATE+KEY+name+id+base64"; else a key file
AUDIT_CHECKPOINT_EVERY_EVENTS = _env_int("AUDIT_CHECKPOINT_EVERY_EVENTS", 1000)
AUDIT_CHECKPOINT_EVERY_SECONDS = _env_int("AUDIT_CHECKPOINT_EVERY_SECONDS", 300)

# --- Audit packs (docs/audit-packs.md) ----------------------------------------------------------
# Generated packs are kept here; scheduled exports to a local folder may write only under the
# export root (S3 destinations take credentials from the usual AWS_* variables, never the DB).
GOVAUDIT_PACK_DIR = Path(_env("GOVAUDIT_PACK_DIR", str(DATA_DIR / "packs"))).resolve()
GOVAUDIT_PACK_EXPORT_ROOT = Path(_env("GOVAUDIT_PACK_EXPORT_ROOT", str(DATA_DIR / "exports"))).resolve()
# The organisation's X.509 certificate (PEM, intermediates after the leaf) and private key (PEM)
# that sign each pack's PDF. Required in production; development generates a self-signed one
# into GOVAUDIT_KEY_DIR/pack-signing/ on first use. Extra trusted certificates (comma-separated
# PEM paths) keep packs signed before a certificate change verifiable.
GOVAUDIT_PACK_SIGNING_CERT = _env("GOVAUDIT_PACK_SIGNING_CERT")
GOVAUDIT_PACK_SIGNING_KEY = _env("GOVAUDIT_PACK_SIGNING_KEY")
GOVAUDIT_PACK_SIGNING_KEY_PASSWORD = _env("GOVAUDIT_PACK_SIGNING_KEY_PASSWORD")
GOVAUDIT_PACK_TRUSTED_CERTS = _env("GOVAUDIT_PACK_TRUSTED_CERTS", "")
# Default retention of scheduled exports (six years; HIPAA schedules may not go below it).
GOVAUDIT_PACK_RETENTION_DAYS = _env_int("GOVAUDIT_PACK_RETENTION_DAYS", 2192)
# Audit events listed in the PDF; all of them are always in the pack's evidence files.
GOVAUDIT_PACK_PDF_EVENT_ROWS = _env_int("GOVAUDIT_PACK_PDF_EVENT_ROWS", 2000)
# Largest pack the verify endpoint accepts as an upload.
GOVAUDIT_PACK_MAX_UPLOAD_BYTES = _env_int("GOVAUDIT_PACK_MAX_UPLOAD_BYTES", 512 * 1024**2)
# Full verification on PostgreSQL splits a log of at least this many events over this many
# processes (checking a leaf costs several times reading it; see docs/benchmarks/audit_log.md).
AUDIT_VERIFY_WORKERS = _env_int("AUDIT_VERIFY_WORKERS", min(os.cpu_count() or 1, 4))
AUDIT_VERIFY_PARALLEL_MIN_EVENTS = _env_int("AUDIT_VERIFY_PARALLEL_MIN_EVENTS", 100_000)

# --- Notifications on promotion decisions (docs/notifications.md) ----------------------------------
# Webhook POSTs: seconds per connect and per read; attempts before a delivery is marked failed;
# the first retry's delay (doubling each time, capped at an hour, jittered). Plain http:// URLs
# are refused in production unless allowed (payloads describe models and decisions).
GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS = _env_int("GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS", 10)
GOVAUDIT_WEBHOOK_MAX_ATTEMPTS = _env_int("GOVAUDIT_WEBHOOK_MAX_ATTEMPTS", 10)
GOVAUDIT_WEBHOOK_RETRY_BASE_SECONDS = _env_int("GOVAUDIT_WEBHOOK_RETRY_BASE_SECONDS", 30)
GOVAUDIT_WEBHOOK_ALLOW_HTTP = _env_bool("GOVAUDIT_WEBHOOK_ALLOW_HTTP", not PRODUCTION)
# Webhook secrets are stored encrypted under a key derived from SECRET_KEY; after rotating it, list
# the old key(s) here (comma-separated) so those secrets (and sessions, signed values) still read.
SECRET_KEY_FALLBACKS = [k.strip() for k in (_env("SECRET_KEY_FALLBACKS") or "").split(",") if k.strip()]
# E-mail to approvers: printed to the console in development, SMTP in production.
EMAIL_BACKEND = _env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION
                     else "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = _env("EMAIL_HOST", "localhost")
EMAIL_PORT = _env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = _env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = _env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = _env("GOVAUDIT_EMAIL_FROM", "govaudit@localhost")
# Where people reach this service (e.g. https://governance.example.org): links in e-mails and payloads.
GOVAUDIT_PUBLIC_URL = (_env("GOVAUDIT_PUBLIC_URL", "") or "").rstrip("/")

# --- Logging: no secrets, no bodies -------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "axes": {"level": "WARNING"}},
}
