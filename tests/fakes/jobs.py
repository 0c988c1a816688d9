"""Fake scheduled jobs, for the scheduler, `jobs` CLI and `/menotime jobs` tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.answers import ChangeResult
from bot.job import Attachment, JobContext, JobSpec


@dataclass(frozen=True)
class FakeReport(ChangeResult):
    """A job report rendered with the `change` template."""

    outcome: str = "succeeded"
    summary: str = ""
    removed: tuple[str, ...] = ()


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NeedsBucket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bucket: str


@dataclass
class Calls:
    """What the fake jobs saw, per job name."""

    contexts: dict[str, list[JobContext]] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return len(self.contexts.get(name, []))


class FakeJobs:
    """``tidy`` (dev) posts progress, attaches a file and succeeds; ``boom`` (staging) raises;
    ``slow`` (dev) waits for ``release``; ``picky`` needs options it is not given; ``clusters``
    (dev) lists the ECS clusters it can see."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.started = threading.Event()
        self.release = threading.Event()

    def _seen(self, name: str, ctx: JobContext) -> None:
        self.calls.contexts.setdefault(name, []).append(ctx)

    def tidy(self, ctx: JobContext) -> FakeReport:
        self._seen("tidy", ctx)
        ctx.progress(ChangeResult(headline="tidy: step 1 of 2"))
        ctx.progress(ChangeResult(headline="tidy: step 2 of 2"))
        ctx.attach(Attachment(filename="tidy.png", content=b"\x89PNG fake", title="What tidy saw"))
        verb = "would remove" if ctx.dry_run else "removed"
        return FakeReport(
            headline=f"tidy {verb} 3 things", summary=f"{verb} 3 things", removed=("a", "b", "c")
        )

    def boom(self, ctx: JobContext) -> FakeReport:
        self._seen("boom", ctx)
        raise RuntimeError("disk on fire")

    def slow(self, ctx: JobContext) -> FakeReport:
        self._seen("slow", ctx)
        self.started.set()
        if not self.release.wait(20):
            raise TimeoutError("the test never released the slow job")
        return FakeReport(headline="slow done", summary="took its time")

    def picky(self, ctx: JobContext) -> FakeReport:
        self._seen("picky", ctx)
        return FakeReport(headline="picky ran", summary="ran")

    def clusters(self, ctx: JobContext) -> FakeReport:
        self._seen("clusters", ctx)
        arns = ctx.aws.call("ecs", "list_clusters")["clusterArns"]
        names = sorted(a.rsplit("/", 1)[-1] for a in arns)
        return FakeReport(
            headline=f"{len(names)} clusters: {', '.join(names)}", summary=f"{len(names)} clusters"
        )

    @property
    def specs(self) -> tuple[JobSpec, ...]:
        def spec(name: str, env: str, run: Any, model: type[BaseModel] = NoOptions, **kw: Any) -> JobSpec:
            return JobSpec(
                name=name,
                summary=f"the {name} job",
                env=env,
                run=run,
                options_model=model,
                options_key=name,
                **kw,
            )

        return (
            spec("tidy", "dev", self.tidy, supports_override=True),
            spec("boom", "staging", self.boom),
            spec("slow", "dev", self.slow),
            spec("picky", "dev", self.picky, NeedsBucket),
            spec("clusters", "dev", self.clusters),
        )
