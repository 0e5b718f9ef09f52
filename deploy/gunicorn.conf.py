"""gunicorn settings for production: sync workers behind a TLS-terminating proxy."""
import gc
import multiprocessing
import os

bind = os.environ.get("GOVAUDIT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GOVAUDIT_WORKERS", multiprocessing.cpu_count() * 2 + 1))
timeout = 120
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# Load the application once, in the master, before the workers fork (see when_ready). A code
# change then needs a restart, not a HUP: systemd's restart does that (deploy/systemd).
preload_app = True


def when_ready(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Finish importing in the master, then freeze the heap, so that every worker starts warm.

    Django imports the URL conf, and through it the views, pandas and the report code, on the
    first request a process serves: without this, each fresh worker spent its first requests
    importing (43 % of the workers' samples when load met a just-started server). Imported here,
    the modules are shared copy-on-write. ``gc.freeze`` moves the 160,000 objects those imports
    leave into the permanent generation: a full collection no longer walks them (about 100 ms
    each time, a pause that landed on whichever request triggered it), and collections do not
    touch, and so copy, the shared pages. No database connection is opened here; any that were
    are closed, so no worker inherits a socket.
    """
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - evaluated for its imports
    connections.close_all()
    gc.freeze()
