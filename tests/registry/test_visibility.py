"""Who sees which model and dataset: our one-query check against django-guardian's own answer.

``registry.selectors`` and ``governance.access`` read guardian's permission tables and the
user's grants with hand-written SQL (one query each, instead of guardian's and Django's ORM
chains). These tests hold them to the libraries they replace on the read path, for every caller
of the shared cast and for grants made directly to a user, to another group, and withdrawn.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm

from governance.access import Principal, access_of
from governance.roles import CAPABILITIES, capability_perm
from registry import selectors
from registry.models import Dataset, RegisteredModel
from tests.factories import Cast, DatasetFactory, ModelFactory

GUARDED = [(RegisteredModel, "registry.view_registeredmodel", selectors.model_list),
           (Dataset, "registry.view_dataset", selectors.dataset_list)]


def _guardian_view(user: Any, model: type, perm: str) -> set[int]:
    return set(get_objects_for_user(user, perm, klass=model.objects.all(), accept_global_perms=False,
                                    with_superuser=False).values_list("pk", flat=True))


def _fresh(user: Any) -> Any:
    """A new user object: nothing remembered from an earlier check."""
    return type(user).objects.get(pk=user.pk)


def _assert_same_view(user: Any) -> None:
    principal = Principal(user=_fresh(user))
    for model, perm, lister in GUARDED:
        ours = set(lister(principal=principal).values_list("pk", flat=True))
        if principal.can("view_models") and not principal.sees_all:
            assert ours == _guardian_view(user, model, perm), (user.username, model.__name__)
        elif principal.sees_all:
            assert ours == set(model.objects.values_list("pk", flat=True))
        else:
            assert ours == set()


def test_every_caller_sees_what_guardian_says(cast: Cast) -> None:
    ModelFactory(name="alpha-two", team=cast.teams["alpha"])
    DatasetFactory(team=cast.teams["beta"], name="beta-two")
    for user in cast.users.values():
        _assert_same_view(user)


def test_grants_to_a_user_or_another_group_and_their_withdrawal(cast: Cast) -> None:
    beta_viewer = cast.users["beta_viewer"]
    alpha_model, alpha_ds = cast.models["alpha"], cast.datasets["alpha"]
    assign_perm("registry.view_registeredmodel", beta_viewer, alpha_model)
    _assert_same_view(beta_viewer)
    assert alpha_model.pk in set(selectors.model_list(principal=Principal(user=_fresh(beta_viewer)))
                                 .values_list("pk", flat=True))
    outsiders = Group.objects.create(name="outsiders")
    beta_viewer.groups.add(outsiders)
    assign_perm("registry.view_dataset", outsiders, alpha_ds)
    _assert_same_view(beta_viewer)
    assert selectors.dataset_get(principal=Principal(user=_fresh(beta_viewer)), pk=alpha_ds.pk) == alpha_ds
    # A different permission on the object is not "view".
    remove_perm("registry.view_registeredmodel", beta_viewer, alpha_model)
    assign_perm("registry.change_registeredmodel", beta_viewer, alpha_model)
    _assert_same_view(beta_viewer)
    with pytest.raises(Exception, match="No model named"):
        selectors.model_get(principal=Principal(user=_fresh(beta_viewer)), name=alpha_model.name)


def _assert_lookups_match_the_lists(principal: Principal) -> None:
    """The compiled lookups by name and id (``selectors._Visible``) find exactly what the lists show."""
    from registry.models import ModelVersion

    seen_models = set(selectors.model_list(principal=principal).values_list("pk", flat=True))
    for model in RegisteredModel.objects.all():
        try:
            found = selectors.model_get(principal=principal, name=model.name)
        except Exception as exc:  # NotFound
            assert model.pk not in seen_models and "No model named" in str(exc), model.name
        else:
            assert found == model and model.pk in seen_models and found.team == model.team
    for version in ModelVersion.objects.select_related("model"):
        try:
            found = selectors.version_by_name(principal=principal, name=version.model.name, number=version.version)
        except Exception:
            assert version.model_id not in seen_models
        else:
            assert found == version and found.model == version.model and version.model_id in seen_models
    seen_datasets = set(selectors.dataset_list(principal=principal).values_list("pk", flat=True))
    every = sorted(Dataset.objects.values_list("pk", flat=True))
    for ids in ([every[0]], every[:2], every[:4], every):  # compiled up to 4 ids; the ORM beyond
        assert set(selectors.datasets_by_id(principal=principal, ids=set(ids))) == seen_datasets & set(ids)


def test_lookups_by_name_and_id_match_the_lists_for_every_caller_and_token_scope(cast: Cast) -> None:
    from governance.models import ApiToken

    DatasetFactory(team=cast.teams["beta"], name="beta-two")
    DatasetFactory(team=cast.teams["alpha"], name="alpha-two")
    DatasetFactory(team=cast.teams["alpha"], name="alpha-three")
    assign_perm("registry.view_registeredmodel", cast.users["beta_viewer"], cast.models["alpha"])
    from django.contrib.auth import get_user_model

    nobody = get_user_model().objects.create_user("no-roles")  # sees nothing: no view_models
    scopes = set()
    for user in [*cast.users.values(), nobody]:
        for team in (None, cast.teams["alpha"], cast.teams["beta"]):
            token = ApiToken(user=user, team=team) if team is not None else None
            principal = Principal(user=_fresh(user), token=token)
            found = selectors._scope_of(principal)
            scopes.add(found[0] if found else None)
            _assert_lookups_match_the_lists(principal)
    _assert_lookups_match_the_lists(Principal.of_system("test"))
    assert scopes == {None, "all", "team", "granted", "granted_in_team"}  # every cut was exercised


def test_capabilities_match_djangos_permission_check(cast: Cast) -> None:
    for user in cast.users.values():
        fresh = _fresh(user)
        for capability in CAPABILITIES:
            assert Principal(user=fresh).can(capability) == _fresh(user).has_perm(capability_perm(capability)), \
                (user.username, capability)


def test_a_direct_grant_and_superuser_count_like_django(cast: Cast) -> None:
    from django.contrib.auth.models import Permission

    viewer = cast.users["viewer"]
    viewer.user_permissions.add(Permission.objects.get(codename="grant_waiver"))
    assert Principal(user=_fresh(viewer)).can("grant_waiver") is True
    viewer.is_superuser = True
    viewer.save(update_fields=["is_superuser"])
    assert Principal(user=_fresh(viewer)).can("manage_roles") is True
    viewer.is_active = False
    viewer.save(update_fields=["is_active"])
    assert Principal(user=_fresh(viewer)).can("view_models") is False


def test_the_token_lookup_brings_the_same_access_as_access_of(cast: Cast, django_assert_num_queries: Any) -> None:
    """``token_authenticate`` reads the user's access in its own statement; nothing is read after."""
    from django.contrib.auth.models import Permission

    from governance.services import token_authenticate, token_create

    cast.users["viewer"].user_permissions.add(Permission.objects.get(codename="grant_waiver"))  # a direct grant
    for user in cast.users.values():
        if not user.is_active:
            continue
        _, secret = token_create(actor=Principal(user=user), name=f"t-{user.username}", user=user)
        token_authenticate(secret=secret)  # the first use also records last_used_at
        with django_assert_num_queries(1):  # the token, its user and team, and the access: one read
            token = token_authenticate(secret=secret)
            assert token is not None
            via_token = access_of(token.user)
            Principal(user=token.user, token=token).snapshot()
        assert via_token == access_of(_fresh(user)), user.username


def test_access_is_read_once_per_user_object(cast: Cast, django_assert_num_queries: Any) -> None:
    user = _fresh(cast.users["ml_engineer"])
    principal = Principal(user=user)
    with django_assert_num_queries(1):
        for capability in CAPABILITIES:
            principal.can(capability)
        assert access_of(user).roles == ("ml_engineer",)
        assert principal.snapshot()["roles"] == ["ml_engineer"]
        assert cast.teams["alpha"].group_id in access_of(user).group_ids


def test_the_filter_holds_inside_a_subquery(cast: Cast) -> None:
    """``model__in=model_list(...)``: Django renames the inner table; the filter must not care."""
    from governance import selectors as gov_selectors
    from governance.models import PromotionRequest

    for user in cast.users.values():
        principal = Principal(user=_fresh(user))
        if not principal.can("view_models") or principal.sees_all:
            continue
        seen_models = _guardian_view(user, RegisteredModel, "registry.view_registeredmodel")
        expected = set(PromotionRequest.objects.filter(model__in=seen_models).values_list("pk", flat=True))
        got = set(gov_selectors.promotion_list(principal=principal).values_list("pk", flat=True))
        assert got == expected, user.username
        assert expected or user.username.startswith("beta"), "the cast has promotions on alpha's models"
