"""Portal fixtures: the scenario, signed-in test clients per role, and one shared headless browser."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from governance import services as gov
from tests.factories import SYSTEM, Cast
from tests.portal.scenario import Scenario, build_scenario

# The browser tests always take their screenshots; they replace the ones in the docs only when
# asked (GOVAUDIT_UPDATE_SCREENSHOTS=1), so an ordinary test run leaves the checkout unchanged.
DOCS_IMAGES = (Path(__file__).resolve().parents[2] / "docs" / "images"
               if os.environ.get("GOVAUDIT_UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.mkdtemp(prefix="govaudit-screenshots-")))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Sign-ins are exercised here, not the hasher's strength: a cheap hash keeps each one fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def scenario(cast: Cast, tmp_path: Path, settings: Any) -> Scenario:
    settings.STORAGE_DIR = tmp_path / "storage"
    return build_scenario(cast, settings.STORAGE_DIR / "imports")


def add_portal_viewer(cast: Cast) -> Any:
    """A viewer of team alpha who was also given ``use_portal`` directly (no role grants it to viewers).

    The role table gives portal access only to roles that see every team; this person stands for a
    deployment that lets team members into the portal too, to show that the portal's pages then
    narrow everything to the person's team, as the API does.
    """
    user = gov.user_create(actor=SYSTEM, username="alpha_portal_viewer", roles=["viewer"], teams=[cast.teams["alpha"]])
    user.user_permissions.add(Permission.objects.get(content_type__app_label="governance", codename="use_portal"))
    cast.users["alpha_portal_viewer"] = user
    return user


@pytest.fixture
def portal_viewer(cast: Cast) -> Any:
    return add_portal_viewer(cast)


@pytest.fixture
def client_as(cast: Cast) -> Callable[[str], Client]:
    """A Django test client signed in (with a session) as the named cast member; "anonymous" is not."""
    cache: dict[str, Client] = {}

    def make(who: str) -> Client:
        if who not in cache:
            client = Client()
            if who != "anonymous":
                client.force_login(cast.users[who])
            cache[who] = client
        return cache[who]

    return make


@pytest.fixture(scope="module")
def browser_thread() -> Iterator[Any]:
    """One Chromium for the whole module (starting it costs about a second)."""
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; CI installs it)")
    from tests.portal.browser import BrowserThread

    thread = BrowserThread()
    yield thread
    thread.close()


@pytest.fixture
def new_page(browser_thread: Any) -> Iterator[Callable[[], Any]]:
    """Fresh browser contexts (own cookies) for one test; closed at its end."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser_thread.browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
