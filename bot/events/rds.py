"""RDS events, as EventBridge sends them and as an RDS event subscription does."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from bot.events.aws_fields import (
    _arn_account,
    _arn_resource_name,
    _envelope_region,
    _region_code,
    _str,
    _time,
    _url,
)
from bot.events.event import Event

_RDS_SOURCES = {
    "db-instance",
    "db-cluster",
    "db-snapshot",
    "db-cluster-snapshot",
    "db-parameter-group",
    "db-cluster-parameter-group",
    "db-security-group",
    "db-proxy",
    "blue-green-deployment",
    "custom-engine-version",
}


def _rds_eventbridge(data: dict[str, Any], detail: dict[str, Any]) -> Event:
    source_arn = _str(detail.get("SourceArn")) or next(
        (r for r in data.get("resources") or [] if isinstance(r, str)), None
    )
    ident = _str(detail.get("SourceIdentifier")) or _arn_resource_name(source_arn) or "?"
    region = _envelope_region(data, source_arn)
    event_id = _str(detail.get("EventID"))
    source_type = _str(detail.get("SourceType")) or "DB_INSTANCE"
    message = _str(detail.get("Message"))
    return Event(
        kind="rds",
        key=f"rds:{ident}",
        title=f"RDS {ident}: {message or event_id or 'event'}",
        state=event_id,
        reason=message,
        at=_time(detail.get("Date")) or _time(data.get("time")),
        region=region,
        account=_arn_account(source_arn) or _str(data.get("account")),
        resource=ident,
        console_url=_rds_url(region, ident, cluster="CLUSTER" in source_type.upper()),
        raw=data,
        names=(ident,),
    )


def _rds_subscription(data: dict[str, Any]) -> Event | None:
    source = str(data.get("Event Source") or "")
    event_ref = str(data.get("Event ID") or "")
    link = _str(data.get("Identifier Link"))
    if source not in _RDS_SOURCES and "RDS-EVENT" not in event_ref and "/rds/" not in (link or ""):
        return None  # DMS and friends use the same shape: posted as generic
    ident = _str(data.get("Source ID") or data.get("SourceId")) or "?"
    region = None
    if link:
        query = parse_qs(urlsplit(link).query)
        regions = query.get("region")
        region = _region_code(regions[0] if regions else None)
    match = re.search(r"RDS-EVENT-\d+", event_ref)
    message = _str(data.get("Event Message"))
    at = _time(data.get("Event Time"))
    return Event(
        kind="rds",
        key=f"rds:{ident}",
        title=f"RDS {ident}: {message or 'event'}",
        state=match.group(0) if match else None,
        reason=message,
        at=at,
        region=region,
        resource=ident,
        console_url=_rds_url(region, ident, cluster="cluster" in source) or link,
        raw=data,
        names=(ident,),
    )


def _rds_url(region: str | None, ident: str, *, cluster: bool) -> str | None:
    if ident == "?":
        return None
    flag = "true" if cluster else "false"
    return _url(region, f"rds/home?region={region}#database:id={quote(ident, safe='')};is-cluster={flag}")
