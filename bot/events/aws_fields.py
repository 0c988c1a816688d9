"""Reading the values AWS messages share, whatever their shape: strings and numbers that may be
missing, times in AWS's many formats, region codes and display names, ARNs, console URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bot.events.event import TEXT_LIMIT

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# CloudWatch puts the region's display name in "Region"; used only when no ARN tells the code.
_REGION_NAMES = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "Canada (Central)": "ca-central-1",
    "EU (Ireland)": "eu-west-1",
    "EU - Ireland": "eu-west-1",
    "Europe (Ireland)": "eu-west-1",
    "EU (London)": "eu-west-2",
    "Europe (London)": "eu-west-2",
    "EU (Paris)": "eu-west-3",
    "Europe (Paris)": "eu-west-3",
    "EU (Frankfurt)": "eu-central-1",
    "Europe (Frankfurt)": "eu-central-1",
    "EU (Stockholm)": "eu-north-1",
    "Europe (Stockholm)": "eu-north-1",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "South America (Sao Paulo)": "sa-east-1",
    "South America (São Paulo)": "sa-east-1",
    "AWS GovCloud (US-East)": "us-gov-east-1",
    "AWS GovCloud (US-West)": "us-gov-west-1",
    "AWS GovCloud (US)": "us-gov-west-1",
}


def _envelope_region(data: dict[str, Any], *arns: str | None) -> str | None:
    for arn in arns:
        region = _arn_region(arn)
        if region:
            return region
    return _region_code(data.get("region"))


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object as it is; anything else (missing, a list, a string) as an empty one."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _truncate(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _time(value: Any) -> datetime | None:
    """An aware UTC datetime from AWS's many time formats; None when there is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)  # "Sat, 05 Jun 2016 15:10:09 GMT"
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # RDS "Event Time" is UTC without a zone
    return moment.astimezone(UTC)


def _region_code(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _REGION.match(text):
        return text
    return _REGION_NAMES.get(text)


def _arn_parts(arn: str | None) -> list[str] | None:
    if not arn or not arn.startswith("arn:"):
        return None
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 else None


def _arn_region(arn: str | None) -> str | None:
    parts = _arn_parts(arn)
    return parts[3] if parts and _REGION.match(parts[3]) else None


def _arn_account(arn: str | None) -> str | None:
    parts = _arn_parts(arn)
    return parts[4] if parts and parts[4].isdigit() else None


def _arn_resource_name(arn: str | None) -> str | None:
    """The last name in an ARN's resource part: ``alarm:NAME``, ``cluster/NAME``, ``db:NAME``."""
    parts = _arn_parts(arn)
    if not parts:
        return None
    resource = parts[5]
    if resource.startswith(("alarm:", "db:", "cluster:")):
        return resource.split(":", 1)[1]
    return resource.rsplit("/", 1)[-1] or None


def _service_from_arn(arn: str | None) -> tuple[str | None, str | None]:
    parts = _arn_parts(arn)
    if not parts or not parts[5].startswith("service/"):
        return None, None
    path = parts[5].removeprefix("service/").split("/")
    if len(path) >= 2:
        return path[0], path[1]
    return None, path[0] or None  # the old ARN format has no cluster


def _url(region: str | None, path: str) -> str | None:
    if not region:
        return None
    host = "console.amazonaws-us-gov.com" if region.startswith("us-gov-") else "console.aws.amazon.com"
    return f"https://{region}.{host}/{path}"
