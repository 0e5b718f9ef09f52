"""Reads on audit packs: only for those who may have packs (see ``services.require_pack_reader``)."""
from __future__ import annotations

from django.db.models import QuerySet

from audits.packs.models import AuditPack
from audits.packs.services import require_pack_reader
from governance.access import Principal
from governance.errors import NotFound


def pack_list(*, principal: Principal, action: str = "audits.pack.read") -> QuerySet[AuditPack]:
    """``action`` names what a refused caller attempted, in the refusal's audit event."""
    require_pack_reader(principal, action=action)
    return AuditPack.objects.all()


def pack_get(*, principal: Principal, pk: int, action: str = "audits.pack.read") -> AuditPack:
    pack = pack_list(principal=principal, action=action).filter(pk=pk).first()
    if pack is None:
        raise NotFound(f"No audit pack {pk}.", code="pack_not_found")
    return pack
