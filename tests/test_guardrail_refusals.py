"""Each guardrail against the seed's environments: where it lets a change through, where it refuses,
and the refusal sentence the requester reads (what rule, what the records show, what would satisfy it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Config, load_config
from bot.errors import BadInput, PolicyViolation
from bot.guardrails import in_window, not_frozen, soaked, tag_allowed, within_bounds, within_cadence
from bot.observe import SoakEvidence
from bot.render import when
from bot.store import migrate
from bot.store.changes import Freezes
from bot.store.db import Database
from bot.store.deploys import COMPLETED, FAILED, IN_PROGRESS, ROLLED_BACK, TIMED_OUT, DeployView

# Tuesday 2026-11-24, 10:00 in Los Angeles (inside prod's window, Mon–Fri 09:00–17:00 PT).
TUESDAY_10AM = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
DIGEST = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
GLASS = 'Use `--emergency "<reason>"` only if this cannot wait and you are on call.'
WHAT = "`v1.2.3` (digest 0123456789ab)"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def refusal(exc: pytest.ExceptionInfo[Exception]) -> str:
    return str(exc.value.message)  # type: ignore[attr-defined]


# -- image tags ---------------------------------------------------------------------------------------


def test_a_tag_the_environment_accepts_passes(config: Config) -> None:
    tag_allowed(env=config.env("dev"), tag="develop")
    tag_allowed(env=config.env("prod"), tag="v1.2.3")


def test_a_tag_the_environment_does_not_accept_is_refused_with_its_rule(config: Config) -> None:
    with pytest.raises(BadInput) as exc:
        tag_allowed(env=config.env("prod"), tag="develop")
    assert refusal(exc) == (
        "`develop` is not an image tag prod accepts: prod takes a release version vMAJOR.MINOR.PATCH, "
        "like v1.2.3."
    )


def test_a_long_tag_is_quoted_cut_to_sixty_characters(config: Config) -> None:
    tag = "x" * 59 + "yz" + "w" * 40
    with pytest.raises(BadInput) as exc:
        tag_allowed(env=config.env("staging"), tag=tag)
    assert refusal(exc).startswith(f"`{'x' * 59}y` is not an image tag staging accepts")


# -- freeze -------------------------------------------------------------------------------------------


@pytest.fixture
def freezes(tmp_path: Path) -> Iterator[Freezes]:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    migrate.upgrade(db)
    yield Freezes(db)
    db.dispose()


def test_an_unlocked_environment_passes(config: Config, freezes: Freezes) -> None:
    freezes.freeze(env="staging", reason="load test", by="U0OPS", at=TUESDAY_10AM)
    not_frozen(freezes=freezes, env=config.env("prod"), what="deploys")


def test_a_locked_environment_refuses_and_says_who_locked_it_why_and_how_to_unlock(
    config: Config, freezes: Freezes
) -> None:
    freezes.freeze(env="prod", reason="incident 42", by="U0OPS", at=TUESDAY_10AM)
    with pytest.raises(PolicyViolation) as exc:
        not_frozen(freezes=freezes, env=config.env("prod"), what="deploys")
    assert refusal(exc) == (
        f"prod is locked by <@U0OPS> since {when(TUESDAY_10AM)}: incident 42. "
        "No deploys until `/menotime unlock prod`; rollback still works."
    )


# -- change window ------------------------------------------------------------------------------------


def test_inside_the_window_passes(config: Config) -> None:
    in_window(env=config.env("prod"), now=TUESDAY_10AM, emergency=None)
    in_window(env=config.env("prod"), now=TUESDAY_10AM - timedelta(hours=1), emergency=None)  # 09:00


def test_outside_the_window_is_refused_with_the_window_and_the_local_time(config: Config) -> None:
    saturday = TUESDAY_10AM + timedelta(days=4)
    with pytest.raises(PolicyViolation) as exc:
        in_window(env=config.env("prod"), now=saturday, emergency=None)
    assert refusal(exc) == (
        "prod deploys are allowed Mon–Fri 09:00–17:00 PT; it is Sat 10:00 PST now. Wait for the window, "
        'or if this cannot wait and you are on call, add `--emergency "<reason>"`.'
    )
    with pytest.raises(PolicyViolation):  # 17:00 is the end: outside
        in_window(env=config.env("prod"), now=TUESDAY_10AM + timedelta(hours=7), emergency=None)


def test_break_glass_or_an_environment_without_window_passes_at_any_time(config: Config) -> None:
    sunday_night = TUESDAY_10AM - timedelta(days=2, hours=12)
    in_window(env=config.env("prod"), now=sunday_night, emergency="site down")
    in_window(env=config.env("staging"), now=sunday_night, emergency=None)


# -- soak ---------------------------------------------------------------------------------------------


def deployment(
    id: int, *, outcome: str, started: datetime, finished: datetime | None = None, tag: str = "v1.2.3"
) -> DeployView:
    return DeployView(
        id=id,
        env="staging",
        kind="deploy",
        requested_by="U0RELMGR",
        image_tag=tag,
        image_digest=DIGEST,
        from_revision=1,
        to_revision=2,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        detail=None,
        approval_id=None,
        emergency_reason=None,
        channel=None,
        message_ts=None,
    )


def evidence(*records: DeployView, rolled_back: frozenset[int] = frozenset()) -> SoakEvidence:
    return SoakEvidence(env="staging", records=records, rolled_back=rolled_back)


def soak_check(
    config: Config, proof: SoakEvidence, *, emergency: str | None = None, env: str = "prod"
) -> None:
    soaked(
        env=config.env(env),
        evidence=proof,
        tag="v1.2.3",
        digest=DIGEST,
        now=TUESDAY_10AM,
        emergency=emergency,
    )


def ago(hours: float) -> datetime:
    return TUESDAY_10AM - timedelta(hours=hours)


def test_a_deployment_completed_the_soak_hours_ago_or_earlier_passes(config: Config) -> None:
    soak_check(config, evidence(deployment(1, outcome=COMPLETED, started=ago(25), finished=ago(24))))
    # The earliest completed run counts, not the latest.
    soak_check(
        config,
        evidence(
            deployment(1, outcome=COMPLETED, started=ago(31), finished=ago(30)),
            deployment(2, outcome=COMPLETED, started=ago(2), finished=ago(1)),
        ),
    )


def test_a_deployment_not_soaked_long_enough_says_since_when_and_when_it_will_be(config: Config) -> None:
    since = ago(23)
    with pytest.raises(PolicyViolation) as exc:
        soak_check(config, evidence(deployment(1, outcome=COMPLETED, started=ago(23.5), finished=since)))
    assert refusal(exc) == (
        f"{WHAT} has been in staging since {when(since)}, 23 h; prod needs 24 h there: soaked at "
        f"{when(since + timedelta(hours=24))}. {GLASS}"
    )


def test_a_completed_deployment_rolled_back_afterwards_is_no_soak(config: Config) -> None:
    started = ago(48)
    proof = evidence(
        deployment(7, outcome=COMPLETED, started=started, finished=ago(47)), rolled_back=frozenset({7})
    )
    with pytest.raises(PolicyViolation) as exc:
        soak_check(config, proof)
    assert refusal(exc) == (
        f"{WHAT} was rolled back in staging (deployed {when(started)}), so it never soaked there; "
        f"prod needs a completed deployment there 24 h old. {GLASS}"
    )


def test_a_candidate_that_never_ran_in_the_soak_environment_says_to_deploy_it_there(config: Config) -> None:
    with pytest.raises(PolicyViolation) as exc:
        soak_check(config, evidence())
    assert refusal(exc) == (
        f"{WHAT} has not run in staging; prod needs it to run there 24 h first. Deploy it to staging "
        '(or let CI/CD do it), or use `--emergency "<reason>"` only if this cannot wait and you are on call.'
    )


def test_the_latest_attempt_says_why_there_is_no_soak(config: Config) -> None:
    failed, rolling = ago(30), ago(2)
    with pytest.raises(PolicyViolation) as exc:
        soak_check(
            config,
            evidence(
                deployment(1, outcome=FAILED, started=failed, finished=ago(29)),
                deployment(2, outcome=IN_PROGRESS, started=rolling),
            ),
        )
    assert refusal(exc) == (
        f"{WHAT} is rolling out in staging since {when(rolling)}; it is soaked 24 h after that deployment "
        f"completes; prod needs a completed deployment there 24 h old. {GLASS}"
    )
    with pytest.raises(PolicyViolation) as exc:
        soak_check(
            config,
            evidence(
                deployment(1, outcome=IN_PROGRESS, started=ago(40)),
                deployment(2, outcome=ROLLED_BACK, started=failed, finished=ago(29)),
            ),
        )
    assert refusal(exc).startswith(
        f"{WHAT} was rolled back in staging (deployed {when(failed)}), so it never"
    )
    with pytest.raises(PolicyViolation) as exc:
        soak_check(config, evidence(deployment(3, outcome=TIMED_OUT, started=failed, finished=ago(29))))
    assert refusal(exc) == (
        f"{WHAT} did not complete in staging (timed out, {when(failed)}); prod needs a completed "
        f"deployment there 24 h old. {GLASS}"
    )


def test_soak_hours_are_written_as_configured() -> None:
    config = load_config(overrides={"environments": {"prod": {"soak": {"env": "staging", "hours": 1.5}}}})
    with pytest.raises(PolicyViolation) as exc:
        soak_check(config, evidence())
    assert "prod needs it to run there 1.5 h first" in refusal(exc)


def test_break_glass_or_an_environment_without_soak_passes(config: Config) -> None:
    soak_check(config, evidence(), emergency="site down")
    soak_check(config, evidence(), env="staging")


# -- task bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 4])
def test_a_task_count_within_the_bounds_passes(config: Config, count: int) -> None:
    within_bounds(env=config.env("prod"), count=count)


@pytest.mark.parametrize("count", [0, 1, 5])
def test_a_task_count_outside_the_bounds_is_refused_with_the_range(config: Config, count: int) -> None:
    with pytest.raises(PolicyViolation) as exc:
        within_bounds(env=config.env("prod"), count=count)
    assert refusal(exc) == "prod allows 2–4 tasks; ask for a number in that range."


# -- cadence ------------------------------------------------------------------------------------------


def blocking_cadence(per_week: int) -> Config:
    return load_config(
        overrides={"environments": {"prod": {"cadence": {"per_week": per_week, "blocking": True}}}}
    )


def test_a_blocking_cadence_refuses_beyond_the_plan(config: Config) -> None:
    config = blocking_cadence(2)
    within_cadence(env=config.env("prod"), releases=1, emergency=None)
    with pytest.raises(PolicyViolation) as exc:
        within_cadence(env=config.env("prod"), releases=2, emergency=None)
    assert refusal(exc) == (
        "prod has had 2 releases this week; the plan is 2 a week. Wait for Monday, or if this cannot wait "
        'and you are on call, add `--emergency "<reason>"`.'
    )


def test_one_release_is_written_in_the_singular() -> None:
    with pytest.raises(PolicyViolation) as exc:
        within_cadence(env=blocking_cadence(1).env("prod"), releases=1, emergency=None)
    assert refusal(exc).startswith("prod has had 1 release this week; the plan is 1 a week.")


def test_a_cadence_that_only_informs_or_break_glass_never_refuses(config: Config) -> None:
    within_cadence(env=config.env("prod"), releases=9, emergency=None)  # the seed: blocking false
    within_cadence(env=blocking_cadence(2).env("prod"), releases=9, emergency="site down")
    within_cadence(env=config.env("staging"), releases=9, emergency=None)  # no cadence at all
