"""The seed (over moto in-process) and the embedded simulator (moto's server over HTTP)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.aws import AwsGateway
from bot.config import Config, load_config
from bot.render import render_text
from bot.simulator import SeedReport, Simulator, seed_environments, set_rollout
from bot.status import status
from tests.conftest import REGION, Platform

# The seed's sizes and tags, oldest revision first (dev's first revision runs a commit SHA).
_EXPECTED_TASKS = {
    "dev": (("feature-login", "develop"), "512", "1024"),
    "staging": (("PR-41", "PR-42", "main"), "512", "1024"),
    "prod": (("v1.4.1", "v1.4.2", "v1.5.0"), "1024", "2048"),
}


class TestSeed:
    """Read-only checks of what the seed creates, sharing one seeded moto."""

    def test_ecr_holds_every_tag_with_distinct_digests(self, platform: Platform) -> None:
        aws, _ = platform
        images = aws.paginate("ecr", "describe_images", "imageDetails", repositoryName="menotime-backend")
        by_tag = {tag: image["imageDigest"] for image in images for tag in image.get("imageTags", [])}

        expected = {"develop", "feature-login", "main", "PR-41", "PR-42", "v1.4.1", "v1.4.2", "v1.5.0"}
        sha_tags = set(by_tag) - expected
        assert expected <= set(by_tag)
        assert len(sha_tags) == 1 and len(next(iter(sha_tags))) == 12
        assert all(c in "0123456789abcdef" for c in next(iter(sha_tags)))
        assert len(set(by_tag.values())) == len(by_tag)  # one digest per tag
        manifest = aws.call(
            "ecr", "batch_get_image", repositoryName="menotime-backend", imageIds=[{"imageTag": "v1.5.0"}]
        )["images"][0]["imageManifest"]
        assert json.loads(manifest)["schemaVersion"] == 2

    def test_task_definitions_newest_runs_the_current_tag(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        for env, (tags, cpu, memory) in _EXPECTED_TASKS.items():
            family = config.env(env).task_family
            arns = aws.paginate(
                "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, sort="ASC"
            )
            assert len(arns) >= 3 and tuple(arns) == seeded.env(env).task_definition_arns

            images = []
            for arn in arns:
                taskdef = aws.call("ecs", "describe_task_definition", taskDefinition=arn)["taskDefinition"]
                assert (taskdef["cpu"], taskdef["memory"]) == (cpu, memory), env
                assert taskdef["requiresCompatibilities"] == ["FARGATE"]
                containers = {c["name"]: c for c in taskdef["containerDefinitions"]}
                assert (
                    containers["app"]["essential"] is True and containers["log-router"]["essential"] is False
                )
                assert containers["app"]["image"].startswith(
                    f"{seeded.account_id}.dkr.ecr.{REGION}.amazonaws.com/"
                )
                images.append(containers["app"]["image"].rsplit(":", 1)[1])
            assert tuple(images[-len(tags) :]) == tags, env
            assert images[-1] == seeded.env(env).current_tag

    def test_services_scaling_databases_and_alarms(self, platform: Platform, config: Config) -> None:
        aws, seeded = platform
        for env in config.environments.values():
            service = aws.call(
                "ecs", "describe_services", cluster=env.cluster, services=[env.service], include=["TAGS"]
            )["services"][0]
            assert service["desiredCount"] == env.tasks.default
            assert service["taskDefinition"] == seeded.env(env.name).task_definition_arns[-1]
            assert {"key": "Environment", "value": env.name} in service["tags"]

            db = aws.call("rds", "describe_db_instances", DBInstanceIdentifier=env.rds_instance)[
                "DBInstances"
            ][0]
            assert (db["Engine"], db["DBInstanceClass"], db["DBName"]) == (
                "postgres",
                "db.m7g.large",
                env.database,
            )
            assert {"Key": "Environment", "Value": env.name} in db["TagList"]

        storage = {
            name: aws.call(
                "rds", "describe_db_instances", DBInstanceIdentifier=config.env(name).rds_instance
            )["DBInstances"][0]["AllocatedStorage"]
            for name in ("dev", "staging", "prod")
        }
        assert storage == {"dev": 100, "staging": 500, "prod": 1000}

        targets = aws.paginate(
            "application-autoscaling", "describe_scalable_targets", "ScalableTargets", ServiceNamespace="ecs"
        )
        assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
            ("service/menotime-prod-cluster/menotime-prod-service", 2, 4)
        ]

        alarms = aws.paginate("cloudwatch", "describe_alarms", "MetricAlarms", AlarmNamePrefix="menotime-")
        states = {a["AlarmName"]: a["StateValue"] for a in alarms}
        assert {"menotime-prod-api-5xx", "menotime-prod-rds-cpu-high", "menotime-staging-api-latency"} <= set(
            states
        )
        assert [name for name, state in states.items() if state == "ALARM"] == ["menotime-prod-api-5xx"]
        assert set(states.values()) == {"OK", "ALARM"}
        assert seeded.env("prod").alarms_in_alarm == ("menotime-prod-api-5xx",)


def test_environment_names_come_from_the_configuration(tmp_path: Path, aws: AwsGateway) -> None:
    extra = tmp_path / "menotime.yaml"
    extra.write_text(
        """
environments:
  qa:
    cluster: menotime-qa-cluster
    service: menotime-qa-service
    task_family: menotime-backend-qa
    rds_instance: menotime-qa
    database: menotime_qa
    tasks: {default: 1, min: 1, max: 3}
    autoscaling: true
    image_tags: {rule: "main or PR-<n>", patterns: ['main', 'PR-[0-9]+']}
    deploy_gate: roles
    rollback: fast
    budget: {monthly_usd: 100}
""",
        encoding="utf-8",
    )
    config = load_config(extra)

    report = seed_environments(aws, config)

    assert [e.name for e in report.envs] == ["dev", "staging", "prod", "qa"]
    assert report.env("qa").current_tag == "main" and report.env("qa").autoscaled
    qa = status(envs=[config.env("qa")], aws=aws, asked_by="U1", at=datetime.now(UTC), last_deploys={}).envs[
        0
    ]
    assert qa.service is not None and qa.service.image_tag == "main"
    assert qa.scaling.label == "autoscaling 1–3"


def test_set_rollout_moves_the_simulated_service(aws: AwsGateway, config: Config, seeded: SeedReport) -> None:
    dev = config.env("dev")
    set_rollout(region=REGION, cluster=dev.cluster, service=dev.service, state="IN_PROGRESS")
    service = aws.call("ecs", "describe_services", cluster=dev.cluster, services=[dev.service])["services"][0]
    assert [d["status"] for d in service["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    set_rollout(region=REGION, cluster=dev.cluster, service=dev.service, state="COMPLETED")
    service = aws.call("ecs", "describe_services", cluster=dev.cluster, services=[dev.service])["services"][0]
    assert len(service["deployments"]) == 1 and service["deployments"][0]["rolloutState"] == "COMPLETED"
    assert (service["runningCount"], service["pendingCount"]) == (1, 0)
    assert service["events"][0]["message"].endswith("has reached a steady state.")

    with pytest.raises(LookupError):
        set_rollout(region=REGION, cluster=dev.cluster, service="no-such-service", state="COMPLETED")


def test_simulator_serves_seed_and_status_over_http(config: Config) -> None:
    environ_before = dict(os.environ)

    with Simulator() as sim:
        assert sim.endpoint_url.startswith("http://127.0.0.1:")
        report = sim.seed(config)
        gateway = sim.gateway(max_attempts=1)
        result = status(
            envs=[config.env("prod"), config.env("dev")],
            aws=gateway,
            asked_by="U0ONCALL1",
            at=datetime.now(UTC),
            last_deploys={},
        )
        endpoint = sim.endpoint_url

    assert all(e.settled for e in report.envs)
    prod, dev = result.envs
    assert prod.service is not None and prod.service.image_tag == "v1.5.0" and prod.service.desired == 2
    assert [a.name for a in prod.alarms] == ["menotime-prod-api-5xx"]
    assert prod.scaling.label == "autoscaling 2–4"
    assert (
        dev.service is not None and dev.service.image_tag == "develop" and dev.scaling.label == "manual 1–2"
    )
    assert "2 running / 2 desired / 0 pending" in render_text(result)

    assert dict(os.environ) == environ_before
    with pytest.raises(urllib.error.URLError):  # the server is gone
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
