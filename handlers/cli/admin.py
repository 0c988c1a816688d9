"""`migrate`, `config check` and `iam-policy`: what an operator runs before starting the bot."""

from __future__ import annotations

import click

from handlers.cli.invocation import friendly, load_settings


@click.command()
@friendly
def migrate() -> None:
    """Apply database migrations (Alembic) to DATABASE_URL."""
    settings = load_settings()
    from bot.store import migrate as migrations
    from bot.store.db import Database

    db = Database(settings.database_url)
    before = migrations.current_revision(db)
    migrations.upgrade(db)
    after = migrations.current_revision(db)
    click.echo(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    db.dispose()


@click.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@friendly
def config_check() -> None:
    """Validate the configuration; print the environments and the role matrix in effect."""
    settings = load_settings()
    from bot.config import Role, load_config
    from bot.policy import Policy
    from bot.sns import ALARM_PATH_CLOSED, allowed_topics

    cfg = load_config(settings.menotime_config)
    policy = Policy(cfg)
    click.echo(f"configuration OK ({settings.menotime_config or 'shipped defaults'})\n")
    click.echo("Settings:")
    for key, value in settings.describe().items():
        click.echo(f"  {key:<26} {value}")
    click.echo("\nEnvironments:")
    for env in cfg.environments.values():
        bounds = f"{env.tasks.min}-{env.tasks.max} ({'autoscaling' if env.autoscaling else 'manual'})"
        click.echo(
            f"  {env.name:<8} {env.cluster}/{env.service}  family {env.task_family}  db {env.rds_instance}"
        )
        click.echo(
            f"           tasks {env.tasks.default}, allowed {bounds}; tags: {env.image_tags.rule}; "
            f"gate {env.deploy_gate}; alerts {env.alerts_channel or '-'}; "
            f"retention {f'{env.retention_days} days' if env.retention_days else 'indefinite'}"
        )
    topics = allowed_topics(settings=settings, config=cfg)
    click.echo("\nSNS alarm path (SNS_TOPIC_ARNS plus each environment's alarm_topics):")
    click.echo(
        "".join(f"  {topic}\n" for topic in sorted(topics)) if topics else f"  CLOSED: {ALARM_PATH_CLOSED}\n",
        nl=False,
    )
    click.echo(f"\nSchedules ({cfg.jobs.timezone}; only the replica holding the scheduler lease runs them):")
    for job, expr in cfg.jobs.schedules.items():
        click.echo(f"  {job:<16} {expr or '(off)'}")
    click.echo("\nRole membership:")
    for role in Role:
        members = cfg.roles.get(role)
        people = ", ".join(
            [
                *(members.users if members else ()),
                *(f"group {g}" for g in (members.groups if members else ())),
            ]
        )
        click.echo(f"  {role.value:<16} {people or '(nobody)'}")
    click.echo("\nPermission matrix (admin may do everything but approve their own request):")
    click.echo(f"  {'action':<11}" + "".join(f" {e:<44}" for e in cfg.env_names))
    for action in cfg.permissions:
        cells = [
            ",".join(r for r in policy.roles_allowed(action, e) if r != "admin") or "-" for e in cfg.env_names
        ]
        click.echo(f"  {action:<11}" + "".join(f" {c:<44}" for c in cells))


@click.command("iam-policy")
@click.option("--env", "env_name", default=None, help="Only this environment's resources (default: all).")
@friendly
def iam_policy(env_name: str | None) -> None:
    """Print the least-privilege IAM policy of the bot's task role, built from what every verb, job
    and worker declares, as JSON."""
    import json

    from bot import iam
    from bot.config import load_config
    from bot.verbs import build_registry
    from jobs import all_jobs

    settings = load_settings()
    config = load_config(settings.menotime_config)
    if env_name is not None and env_name not in config.environments:
        choices = ", ".join(config.env_names)
        raise click.BadParameter(
            f"{env_name[:40]} is not an environment; choose {choices}.", param_hint="--env"
        )
    policy = iam.policy_for(
        settings=settings, config=config, verbs=build_registry(), jobs=all_jobs(), env=env_name
    )
    click.echo(json.dumps(policy, indent=2))
