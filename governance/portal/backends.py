"""Sign-in lockout (django-axes) for requests; other callers of ``authenticate`` pass through.

django-axes counts failures per request (address and name) and refuses a locked-out sign-in
before the password is checked. ``authenticate()`` without a request (the test client's
``login``, a shell) has no address to rate-limit; axes would raise an error there, so this
backend steps aside and the next backend checks the password as usual. Every web sign-in
(the portal's login form) passes its request.
"""
from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
