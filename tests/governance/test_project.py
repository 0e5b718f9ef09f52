"""Project-level guarantees: production settings pass the deploy check; the API schema is valid and complete."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from django.urls import get_resolver

ROOT = Path(__file__).resolve().parents[2]


def _run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOVAUDIT_ENV="production", SECRET_KEY="x" * 20 + "a-long-random-production-secret-0123456789-" * 2,
               ALLOWED_HOSTS="governance.example.org", GOVAUDIT_DATA_DIR=str(tmp_path))
    result = _run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOVAUDIT_ENV="production", ALLOWED_HOSTS="x.example.org", GOVAUDIT_DATA_DIR=str(tmp_path))
    result = _run_manage(["check"], env)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_openapi_schema_is_valid_and_names_every_endpoint(client: Any) -> None:
    from openapi_spec_validator import validate

    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate(schema)
    documented = set(schema["paths"])
    routes = set()
    for pattern in _routes(get_resolver()):
        if pattern.startswith("api/v1/"):
            routes.add("/" + pattern.replace("<str:", "{").replace("<int:", "{").replace("<slug:", "{")
                       .replace(">", "}").replace("{pk}", "{id}"))
    assert routes and routes <= documented, sorted(routes - documented)


def _routes(resolver: Any, prefix: str = "") -> list[str]:
    from django.urls import URLPattern, URLResolver

    out = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            out += _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            out.append(prefix + str(entry.pattern))
    return out


def test_interactive_docs_are_served_without_a_cdn(client: Any) -> None:
    page = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr" not in page and "/static/" in page
