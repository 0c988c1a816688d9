"""Dev log groups whose last write is older than the retention.

The last write is the newest stream's ``lastEventTimestamp`` (AWS updates it lazily, within hours:
nothing at the scale of a 30-day retention), else the newest creation time of the group or a stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bot.errors import AwsUnavailable
from jobs.dev_cleanup.guards import default_log_prefixes, has_dev_tag, has_keep_tag
from jobs.dev_cleanup.model import (
    KEEP_TAG,
    LOOKS_FOREIGN,
    NO_ENV_TAG,
    TOO_NEW,
    ItemError,
    Resource,
    Scope,
    Survey,
    Tally,
    delete_each,
    tag_map,
)


def _millis(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


class LogGroups:
    kind = "log_groups"
    label = "Log groups"
    usd_per_gib_month = 0.03

    def survey(self, scope: Scope) -> Survey:
        tally = Tally(self.kind)
        groups: dict[str, dict[str, Any]] = {}
        for prefix in default_log_prefixes(scope.env, scope.options):
            for group in scope.aws.paginate(
                "logs", "describe_log_groups", "logGroups", logGroupNamePrefix=prefix
            ):
                groups.setdefault(str(group["logGroupName"]), group)
        for name, group in sorted(groups.items()):
            if scope.names.looks_foreign(name):
                tally.spare(LOOKS_FOREIGN)
                continue
            try:
                tags = self._tags(scope, group)
                last_write = self._last_write(scope, group)
            except (ClientError, AwsUnavailable) as exc:
                tally.fail(name, exc)
                tally.total += 1
                continue
            if scope.options.require_env_tag and not has_dev_tag(tags):
                tally.spare(NO_ENV_TAG)
            elif has_keep_tag(tags):
                tally.spare(KEEP_TAG)
            elif last_write is None or last_write > scope.cutoff:
                tally.spare(TOO_NEW)
            else:
                stored = int(group.get("storedBytes") or 0)
                tally.take(
                    Resource(
                        kind=self.kind,
                        id=name,
                        label=f"{name} (last write {last_write:%Y-%m-%d})",
                        size_bytes=stored,
                    )
                )
        return tally.survey()

    @staticmethod
    def _tags(scope: Scope, group: dict[str, Any]) -> dict[str, str]:
        arn = str(group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*"))
        return tag_map(scope.aws.call("logs", "list_tags_for_resource", resourceArn=arn).get("tags"))

    @staticmethod
    def _last_write(scope: Scope, group: dict[str, Any]) -> datetime | None:
        streams = (
            scope.aws.call(
                "logs",
                "describe_log_streams",
                logGroupName=group["logGroupName"],
                orderBy="LastEventTime",
                descending=True,
                limit=1,
            ).get("logStreams")
            or []
        )
        stream = streams[0] if streams else {}
        last_event = _millis(stream.get("lastEventTimestamp"))
        if last_event is not None:
            return last_event
        created = [t for t in (_millis(group.get("creationTime")), _millis(stream.get("creationTime"))) if t]
        return max(created) if created else None

    def delete(self, scope: Scope, resources: Sequence[Resource]) -> tuple[list[Resource], list[ItemError]]:
        return delete_each(
            scope,
            resources,
            self.kind,
            lambda r: scope.aws.call("logs", "delete_log_group", logGroupName=r.id),
        )
