"""`menotime-bot`: one click group, its commands registered here, in the order `--help` lists them."""

from __future__ import annotations

import click

from handlers.cli.admin import config, iam_policy, migrate
from handlers.cli.anonymize import anonymize, synthetic_db
from handlers.cli.audit import audit
from handlers.cli.jobs import jobs_group
from handlers.cli.servers import serve, socket
from handlers.cli.tour import console, demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """MenoTime Ops: run MenoTime's AWS environments from Slack."""


for command in (
    serve,
    socket,
    demo,
    console,
    jobs_group,
    migrate,
    config,
    iam_policy,
    audit,
    anonymize,
    synthetic_db,
):
    cli.add_command(command)


def main() -> None:
    cli()


__all__ = ["cli", "main"]
