"""Issue an API token from the command line (operators; pipelines' service accounts).

The secret is printed once and never stored; the command acts as the system principal and the
token creation is audited like any other.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import services
from governance.access import Principal
from governance.errors import DomainError
from governance.models import Team


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--team", help="Limit the token to this team (slug).")
        parser.add_argument("--days", type=int, default=90)

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        team = None
        if options["team"]:
            team = Team.objects.filter(slug=options["team"]).first()
            if team is None:
                raise CommandError(f"No team {options['team']!r}.")
        try:
            token, secret = services.token_create(actor=Principal.of_system("create_token"), user=user,
                                                  name=options["name"], expires_in_days=options["days"], team=team)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(secret)
        self.stderr.write(f"token {token.name} ({token.prefix}…) for {user.get_username()}, expires "
                          f"{token.expires_at:%Y-%m-%d}; the secret above is not shown again.")
