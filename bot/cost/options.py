"""The `jobs.options.cost` section, shared by the monthly report, the weekly digest and `/menotime cost`.

It lives in the core (not in ``jobs/``) because the `cost` verb answers from the same options.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bot.config import Config


class CostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cache_ttl_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 31,
        description="how long a Cost Explorer answer is reused (each request costs $0.01)",
    )
    tag_key: str = Field(
        default="Environment",
        min_length=1,
        max_length=128,
        description="the cost-allocation tag whose value names the environment",
    )
    patients: int | None = Field(default=None, ge=0, description="prod's active patients, as a fixed number")
    patients_dsn: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the database that counts prod's active patients"
    )
    patients_query: str | None = Field(
        default=None, min_length=1, description="SQL returning one number: the active patients"
    )
    forecast: Literal["cost_explorer", "run_rate", "off"] = Field(
        default="cost_explorer",
        description="month-end forecast: Cost Explorer's GetCostForecast, the month-to-date run rate, or none",
    )
    top_n: int = Field(default=5, ge=1, le=20, description="services listed as top drivers and top movers")
    spike_ratio: float = Field(
        default=1.25, gt=1, description="a day is a spike above this many times its trailing average"
    )
    trailing_days: int = Field(default=14, ge=3, le=60, description="days in the trailing average")

    @model_validator(mode="after")
    def _one_patient_source(self) -> CostOptions:
        if (self.patients_dsn is None) != (self.patients_query is None):
            raise ValueError("patients_dsn and patients_query go together: give both or neither")
        if self.patients is not None and self.patients_dsn is not None:
            raise ValueError("give either patients (a number) or patients_dsn with patients_query, not both")
        return self


OPTIONS_KEY = "cost"


def cost_options(config: Config) -> CostOptions:
    """The validated section; a bad one is a ConfigError naming the field."""
    from pydantic import ValidationError

    from bot.errors import ConfigError

    raw = config.jobs.options.get(OPTIONS_KEY, {}) or {}
    try:
        return CostOptions.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(section)"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"jobs.options.{OPTIONS_KEY}.{where}: {message}") from None
