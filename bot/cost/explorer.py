"""Cost Explorer through the AWS gateway, with every answer cached in the database.

Each Cost Explorer request costs $0.01, so an answer is kept in ``cost_cache`` under the hash of
(operation, query) and reused while fresh. Queries end today (exclusive): the figures run through
yesterday, which is as far as Cost Explorer's daily data is settled enough to report.

moto answers ``GetCostAndUsage`` from results queued through its injection endpoint and does not
implement ``GetCostForecast``; the forecast therefore goes through one injectable function
(``forecast_call``) that tests stub and the simulator replaces with a run-rate estimate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsGateway, error_code
from bot.clock import Clock
from bot.errors import AwsUnavailable
from bot.store.db import Database, stored_utc
from bot.store.models import CostCacheEntry

Granularity = Literal["DAILY", "MONTHLY"]
USAGE, FORECAST = "GetCostAndUsage", "GetCostForecast"
METRIC = "UnblendedCost"
RDS_SERVICE = "Amazon Relational Database Service"
IAM_ACTIONS = ("ce:GetCostAndUsage", "ce:GetCostForecast")
_MAX_PAGES = 50

ForecastCall = Callable[[dict[str, Any]], dict[str, Any]]


class CostQueryFailed(Exception):
    """Cost Explorer did not give this answer; ``reason`` says why in words fit for the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CostLine:
    start: date  # first day of the period (day or month)
    env: str | None  # the tag's value; None for spend without the tag
    service: str
    amount: float


@dataclass(frozen=True)
class Usage:
    lines: tuple[CostLine, ...]
    periods: tuple[date, ...]  # every period Cost Explorer answered for, with or without cost
    estimated: bool

    @property
    def total(self) -> float:
        return sum(line.amount for line in self.lines)


def usage_query(*, start: date, end: date, granularity: Granularity, tag_key: str) -> dict[str, Any]:
    """Built the same way every time: moto (and the cache) match queries by their exact body."""
    return {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": granularity,
        "Metrics": [METRIC],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    }


def forecast_query(*, start: date, end: date, tag_key: str, env: str) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Metric": "UNBLENDED_COST",
        "Granularity": "MONTHLY",
        "Filter": {"Tags": {"Key": tag_key, "Values": [env], "MatchOptions": ["EQUALS"]}},
    }


def cache_key(operation: str, query: dict[str, Any], *, source: str = "") -> str:
    """The query's identity; ``source`` (the AWS endpoint it went to) keeps a simulator's answers
    and the real account's apart in one database."""
    canonical = json.dumps(
        {"operation": operation, "query": query, "source": source}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_usage(answer: dict[str, Any]) -> Usage:
    lines: list[CostLine] = []
    periods: list[date] = []
    estimated = False
    for period in answer.get("ResultsByTime", []):
        start = date.fromisoformat(period["TimePeriod"]["Start"])
        periods.append(start)
        estimated = estimated or bool(period.get("Estimated"))
        for group in period.get("Groups", []):
            keys = group.get("Keys", [])
            tag = keys[0].partition("$")[2] if keys else ""
            service = keys[1] if len(keys) > 1 else "(unknown service)"
            amount = float(group.get("Metrics", {}).get(METRIC, {}).get("Amount", 0) or 0)
            lines.append(CostLine(start=start, env=tag or None, service=service, amount=amount))
    return Usage(lines=tuple(lines), periods=tuple(sorted(set(periods))), estimated=estimated)


class CostExplorer:
    def __init__(
        self,
        *,
        aws: AwsGateway,
        db: Database,
        clock: Clock,
        ttl: timedelta,
        forecast_call: ForecastCall | None = None,
    ) -> None:
        self._aws, self._db, self._clock, self._ttl = aws, db, clock, ttl
        self._forecast_call = forecast_call or (
            lambda query: self._aws.call("ce", "get_cost_forecast", **query)
        )

    def usage(self, *, start: date, end: date, granularity: Granularity, tag_key: str) -> Usage:
        query = usage_query(start=start, end=end, granularity=granularity, tag_key=tag_key)
        return parse_usage(self._cached(USAGE, query, lambda: self._all_pages(query)))

    def forecast(self, *, start: date, end: date, tag_key: str, env: str) -> float:
        """Cost Explorer's forecast of ``env``'s spend over [start, end)."""
        query = forecast_query(start=start, end=end, tag_key=tag_key, env=env)
        answer = self._cached(FORECAST, query, lambda: self._forecast_call(query))
        try:
            return float(answer["Total"]["Amount"])
        except (KeyError, TypeError, ValueError):
            raise CostQueryFailed("Cost Explorer's forecast answer had no total") from None

    def _all_pages(self, query: dict[str, Any]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            page = self._aws.call(
                "ce", "get_cost_and_usage", **query, **({"NextPageToken": token} if token else {})
            )
            results.extend(page.get("ResultsByTime", []))
            token = page.get("NextPageToken")
            if not token:
                break
        return {"ResultsByTime": _merge_periods(results)}

    def _cached(
        self, operation: str, query: dict[str, Any], fetch: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        key, now = cache_key(operation, query, source=self._aws.source), self._clock.now()
        with self._db.session(write=False) as session:
            row = session.get(CostCacheEntry, key)
            if row is not None and stored_utc(row.expires_at) > now:
                return dict(row.answer)
        answer = _guarded(fetch)
        with self._db.session() as session:
            # merge: a concurrent report may have cached the same query a moment ago; the newer wins.
            session.merge(
                CostCacheEntry(
                    key=key,
                    operation=operation,
                    query=query,
                    answer=answer,
                    fetched_at=now,
                    expires_at=now + self._ttl,
                )
            )
        return answer


def _merge_periods(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pages may split one period's groups: join them by period start."""
    merged: dict[str, dict[str, Any]] = {}
    for period in results:
        start = period["TimePeriod"]["Start"]
        if start in merged:
            merged[start]["Groups"] = [*merged[start].get("Groups", []), *period.get("Groups", [])]
            merged[start]["Estimated"] = bool(merged[start].get("Estimated")) or bool(period.get("Estimated"))
        else:
            merged[start] = {**period, "Groups": list(period.get("Groups", []))}
    return [merged[k] for k in sorted(merged)]


def _guarded(fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One Cost Explorer answer, or CostQueryFailed saying why (retries already spent by the gateway)."""
    try:
        answer = fetch()
    except AwsUnavailable as exc:
        raise CostQueryFailed(exc.message) from exc
    except ClientError as exc:
        code = error_code(exc)
        if code == "DataUnavailableException":
            raise CostQueryFailed("Cost Explorer has no data for that period yet") from exc
        raise CostQueryFailed(f"Cost Explorer refused the query ({code or 'error'})") from exc
    except BotoCoreError as exc:
        raise CostQueryFailed(f"Cost Explorer did not answer ({type(exc).__name__})") from exc
    stored: dict[str, Any] = json.loads(json.dumps(answer, default=str))  # what the JSON column will hold
    return stored
