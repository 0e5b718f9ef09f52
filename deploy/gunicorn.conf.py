"""gunicorn settings for production: sync workers behind a TLS-terminating proxy."""
import multiprocessing
import os

bind = os.environ.get("GOVAUDIT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GOVAUDIT_WORKERS", multiprocessing.cpu_count() * 2 + 1))
timeout = 120
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
