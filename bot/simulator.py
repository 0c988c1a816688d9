"""The embedded AWS simulator: moto's server in a thread, seeded with MenoTime's environments.

``menotime-bot demo``, ``console --simulate`` and the end-to-end tests run the bot against it, so
everything the bot does goes through real boto3 calls over HTTP. The seed follows the environments
specification: one ECR repository, and per environment a cluster, a task-definition family with a
few revisions, the service, its scaling target (where autoscaled), the RDS instance and alarms.

moto's ECS never advances a deployment (a new service stays ``IN_PROGRESS`` with no running task
forever), so :func:`set_rollout` moves the in-process simulated service the way ECS would. Nothing
else here reaches into moto's internals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code, new_session
from bot.config import Config, EnvironmentConfig

DEFAULT_REGION = "us-west-1"
REPOSITORY = "menotime-backend"
APP_CONTAINER = "app"
SIDECAR_CONTAINER = "log-router"
_FLUENT_BIT_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"

_AMI_SETTING = "MOTO_EC2_LOAD_DEFAULT_AMIS"

RolloutState = Literal["IN_PROGRESS", "COMPLETED", "FAILED"]


# --------------------------------------------------------------------------------------------
# What the seed creates


@dataclass(frozen=True)
class _Profile:
    """One environment's seed data. Chosen by which tags the environment's rule accepts, so the
    seed follows the configuration instead of hard-coding environment names."""

    tags: tuple[str, ...]  # oldest first: one task-definition revision each, the last one is live
    cpu: int
    memory: int
    storage_gb: int
    alarm_in_alarm: str | None  # suffix of the alarm left in ALARM, if any


_PROFILES: tuple[_Profile, ...] = (
    _Profile(
        tags=("3f9c2a1b7d4e", "feature-login", "develop"),
        cpu=512,
        memory=1024,
        storage_gb=100,
        alarm_in_alarm=None,
    ),
    _Profile(tags=("PR-41", "PR-42", "main"), cpu=512, memory=1024, storage_gb=500, alarm_in_alarm=None),
    _Profile(
        tags=("v1.4.1", "v1.4.2", "v1.5.0"), cpu=1024, memory=2048, storage_gb=1000, alarm_in_alarm="api-5xx"
    ),
)

# (suffix, namespace, metric, statistic or pNN, threshold, comparison); dimensions added per env.
_ALARMS: tuple[tuple[str, str, str, str, float, str], ...] = (
    ("api-5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", 10.0, "GreaterThanThreshold"),
    ("api-latency", "AWS/ApplicationELB", "TargetResponseTime", "p95", 0.5, "GreaterThanThreshold"),
    ("ecs-cpu-high", "AWS/ECS", "CPUUtilization", "Average", 80.0, "GreaterThanThreshold"),
    ("rds-cpu-high", "AWS/RDS", "CPUUtilization", "Average", 80.0, "GreaterThanThreshold"),
)


def _profile_for(env: EnvironmentConfig) -> _Profile:
    for profile in _PROFILES:
        if all(env.image_tags.accepts(tag) for tag in profile.tags):
            return profile
    # An environment the seed does not describe: the smallest sizing, and whichever known tags its
    # rule accepts (a generic tag when none does) so that status and deploy still have images.
    accepted = tuple(tag for p in _PROFILES for tag in p.tags if env.image_tags.accepts(tag))
    tags = accepted or (f"{env.name}-seed",)
    tags = (tags[0],) * (3 - len(tags)) + tags  # still a few revisions to roll back to
    return _Profile(tags=tags, cpu=512, memory=1024, storage_gb=100, alarm_in_alarm=None)


@dataclass(frozen=True)
class SeededEnv:
    name: str
    image_tags: tuple[str, ...]  # of the task-definition revisions, oldest first
    current_tag: str
    task_definition_arns: tuple[str, ...]  # oldest first; the last one is the service's
    autoscaled: bool
    alarms: tuple[str, ...]
    alarms_in_alarm: tuple[str, ...]
    settled: bool  # the service's rollout was moved to COMPLETED (in-process moto only)


@dataclass(frozen=True)
class SeedReport:
    account_id: str
    region: str
    repository_uri: str
    envs: tuple[SeededEnv, ...]

    def env(self, name: str) -> SeededEnv:
        for seeded in self.envs:
            if seeded.name == name:
                return seeded
        raise KeyError(name)


def seed_environments(gateway: AwsGateway, config: Config, *, at: datetime | None = None) -> SeedReport:
    """Create every environment of ``config`` in a fresh simulator (not meant to be run twice); the
    services' first rollouts completed at ``at`` (default: a day ago; give a time before the bot's clock)."""
    at = at or datetime.now(UTC) - timedelta(days=1)
    repository = _ensure_repository(gateway)
    account_id = str(repository["registryId"])
    seeded = tuple(
        _seed_env(gateway, env, repository_uri=str(repository["repositoryUri"]), account_id=account_id, at=at)
        for env in config.environments.values()
    )
    return SeedReport(
        account_id=account_id,
        region=gateway.region,
        repository_uri=str(repository["repositoryUri"]),
        envs=seeded,
    )


def _ensure_repository(gateway: AwsGateway) -> dict[str, Any]:
    repository: dict[str, Any]
    try:
        repository = gateway.call(
            "ecr",
            "create_repository",
            repositoryName=REPOSITORY,
            imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": "Project", "Value": "menotime"}],  # shared by every environment
        )["repository"]
    except ClientError as exc:
        if error_code(exc) != "RepositoryAlreadyExistsException":
            raise
        repository = gateway.call("ecr", "describe_repositories", repositoryNames=[REPOSITORY])[
            "repositories"
        ][0]
    return repository


def _seed_env(
    gateway: AwsGateway,
    env: EnvironmentConfig,
    *,
    repository_uri: str,
    account_id: str,
    at: datetime | None = None,
) -> SeededEnv:
    profile = _profile_for(env)
    tags = [{"key": "Environment", "value": env.name}]  # ECS spells tag keys in lower case
    for tag in dict.fromkeys(profile.tags):  # a tag may run in more than one revision
        _put_image(gateway, tag)

    gateway.call("ecs", "create_cluster", clusterName=env.cluster, tags=tags)
    arns = tuple(
        _register_task_definition(
            gateway, env, profile, image=f"{repository_uri}:{tag}", account_id=account_id
        )
        for tag in profile.tags
    )
    gateway.call(
        "ecs",
        "create_service",
        cluster=env.cluster,
        serviceName=env.service,
        taskDefinition=arns[-1],
        desiredCount=env.tasks.default,
        launchType="FARGATE",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        propagateTags="SERVICE",
        tags=tags,
    )
    settled = _settle(gateway, env, account_id=account_id, at=at)

    if env.autoscaling:
        _register_scaling(gateway, env)
    _create_database(gateway, env, profile)
    alarms, in_alarm = _create_alarms(gateway, env, profile)
    return SeededEnv(
        name=env.name,
        image_tags=profile.tags,
        current_tag=profile.tags[-1],
        task_definition_arns=arns,
        autoscaled=env.autoscaling,
        alarms=alarms,
        alarms_in_alarm=in_alarm,
        settled=settled,
    )


def image_manifest(tag: str) -> str:
    """A docker manifest v2 whose config and top layer depend on ``tag``: distinct digests per tag."""

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": digest(f"{REPOSITORY}:{tag}:config"),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 29126484,
                "digest": digest("python:3.11-slim base layer"),
            },
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 5242880,
                "digest": digest(f"{REPOSITORY}:{tag}:app"),
            },
        ],
    }
    return json.dumps(manifest, indent=3)


def _put_image(gateway: AwsGateway, tag: str) -> None:
    try:
        gateway.call(
            "ecr",
            "put_image",
            repositoryName=REPOSITORY,
            imageTag=tag,
            imageManifest=image_manifest(tag),
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
        )
    except ClientError as exc:
        if error_code(exc) != "ImageAlreadyExistsException":
            raise


def _register_task_definition(
    gateway: AwsGateway, env: EnvironmentConfig, profile: _Profile, *, image: str, account_id: str
) -> str:
    log_group = f"/ecs/{env.task_family}"
    response = gateway.call(
        "ecs",
        "register_task_definition",
        family=env.task_family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu=str(profile.cpu),
        memory=str(profile.memory),
        executionRoleArn=f"arn:aws:iam::{account_id}:role/menotime-{env.name}-task-execution",
        taskRoleArn=f"arn:aws:iam::{account_id}:role/menotime-{env.name}-task",
        containerDefinitions=[
            {
                "name": env.app_container or APP_CONTAINER,
                "image": image,
                "essential": True,
                "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
                "environment": [
                    {"name": "ENVIRONMENT", "value": env.name},
                    {"name": "DATABASE_NAME", "value": env.database},
                ],
                "logConfiguration": {"logDriver": "awsfirelens"},
            },
            {
                "name": SIDECAR_CONTAINER,
                "image": _FLUENT_BIT_IMAGE,
                "essential": False,
                "firelensConfiguration": {"type": "fluentbit"},
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": gateway.region,
                        "awslogs-stream-prefix": "firelens",
                    },
                },
            },
        ],
        tags=[{"key": "Environment", "value": env.name}],
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


def _settle(gateway: AwsGateway, env: EnvironmentConfig, *, account_id: str, at: datetime | None) -> bool:
    """The seeded platform is at rest: its first rollout finished long ago."""
    try:
        set_rollout(
            region=gateway.region,
            cluster=env.cluster,
            service=env.service,
            state="COMPLETED",
            account_id=account_id,
            at=at,
        )
    except LookupError:  # a moto server in another process: leave the service as moto made it
        return False
    return True


def _register_scaling(gateway: AwsGateway, env: EnvironmentConfig) -> None:
    resource_id = f"service/{env.cluster}/{env.service}"
    gateway.call(
        "application-autoscaling",
        "register_scalable_target",
        ServiceNamespace="ecs",
        ResourceId=resource_id,
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=env.tasks.min,
        MaxCapacity=env.tasks.max,
        Tags={"Environment": env.name},
    )
    # The seed's prod policy: target tracking on CPU at 60 %, slow to scale in.
    gateway.call(
        "application-autoscaling",
        "put_scaling_policy",
        PolicyName=f"menotime-{env.name}-cpu-target",
        ServiceNamespace="ecs",
        ResourceId=resource_id,
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 60.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
            "ScaleInCooldown": 600,
            "ScaleOutCooldown": 60,
        },
    )


def _create_database(gateway: AwsGateway, env: EnvironmentConfig, profile: _Profile) -> None:
    try:
        gateway.call(
            "rds",
            "create_db_instance",
            DBInstanceIdentifier=env.rds_instance,
            DBInstanceClass="db.m7g.large",
            Engine="postgres",
            EngineVersion="16.3",
            AllocatedStorage=profile.storage_gb,
            StorageType="gp3",
            DBName=env.database,
            MasterUsername="menotime_admin",
            ManageMasterUserPassword=True,  # no password in code, as in the real platform
            MultiAZ=False,
            PubliclyAccessible=False,
            StorageEncrypted=True,
            BackupRetentionPeriod=7,
            Tags=[{"Key": "Environment", "Value": env.name}],
        )
    except ClientError as exc:
        if error_code(exc) not in {"DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"}:
            raise


def _create_alarms(
    gateway: AwsGateway, env: EnvironmentConfig, profile: _Profile
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    prefix = env.alarm_name_prefix
    dimensions = {
        "AWS/ApplicationELB": [
            {"Name": "LoadBalancer", "Value": f"app/menotime-{env.name}-alb/50dc6c495c0c9188"}
        ],
        "AWS/ECS": [
            {"Name": "ClusterName", "Value": env.cluster},
            {"Name": "ServiceName", "Value": env.service},
        ],
        "AWS/RDS": [{"Name": "DBInstanceIdentifier", "Value": env.rds_instance}],
    }
    names: list[str] = []
    in_alarm: list[str] = []
    for suffix, namespace, metric, statistic, threshold, comparison in _ALARMS:
        name = f"{prefix}{suffix}"
        stat = {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
        gateway.call(
            "cloudwatch",
            "put_metric_alarm",
            AlarmName=name,
            AlarmDescription=f"MenoTime {env.name}: {metric} {comparison} {threshold:g}",
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dimensions[namespace],
            Period=300,
            EvaluationPeriods=2,
            Threshold=threshold,
            ComparisonOperator=comparison,
            TreatMissingData="notBreaching",
            Tags=[{"Key": "Environment", "Value": env.name}],
            **stat,
        )
        names.append(name)
        if suffix == profile.alarm_in_alarm:
            in_alarm.append(name)
            state, reason = (
                "ALARM",
                (
                    f"Threshold Crossed: 2 datapoints [37.0, 24.0] were greater than the threshold ({threshold:g})."
                ),
            )
        else:
            # Set explicitly: a new alarm is INSUFFICIENT_DATA in AWS and OK in moto.
            state, reason = (
                "OK",
                f"Threshold Crossed: no datapoints were greater than the threshold ({threshold:g}).",
            )
        gateway.call("cloudwatch", "set_alarm_state", AlarmName=name, StateValue=state, StateReason=reason)
    return tuple(names), tuple(in_alarm)


# --------------------------------------------------------------------------------------------
# Moving a simulated rollout (moto's ECS never does it by itself)


def set_rollout(
    *,
    region: str,
    cluster: str,
    service: str,
    state: RolloutState,
    reason: str | None = None,
    account_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """Put the in-process moto ECS service where ECS would be in ``state`` (at ``at``, default now).

    ``IN_PROGRESS``: a new PRIMARY deployment of the service's current task definition starts (the
    previous one becomes ACTIVE), no new task running yet. ``COMPLETED``: every desired task runs,
    old deployments are gone, a steady-state event is written. ``FAILED``: the PRIMARY deployment
    fails with ``reason`` (the circuit breaker's words by default).

    Works with ``mock_aws`` and with :class:`Simulator` (both keep moto's state in this process);
    raises LookupError when the service is not in this process's moto.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    simulated = backend.services.get(f"{cluster}:{service}")
    if simulated is None:
        raise LookupError(f"service {service} of cluster {cluster} is not in the in-process simulator")

    now = at or datetime.now(UTC)
    primary = next((d for d in simulated.deployments if d.get("status") == "PRIMARY"), None)
    if state == "IN_PROGRESS" or primary is None:
        for deployment in simulated.deployments:
            deployment["status"] = "ACTIVE"
        primary = {
            "id": f"ecs-svc/{random.randrange(10**18, 10**19)}",  # ECS's: unique in the account
            "status": "PRIMARY",
            "taskDefinition": simulated.task_definition,
            "desiredCount": simulated.desired_count,
            "pendingCount": simulated.desired_count,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "launchType": simulated.launch_type,
            "platformFamily": "FARGATE",
        }
        simulated.deployments.insert(0, primary)
    created = primary.get("createdAt")
    if at is not None and (not isinstance(created, datetime) or created.astimezone(UTC) > at):
        primary["createdAt"] = at  # moto stamps a new service's deployment with the wall clock
    primary["updatedAt"] = now
    primary["rolloutState"] = state
    if state == "COMPLETED":
        primary.update(
            taskDefinition=simulated.task_definition,
            desiredCount=simulated.desired_count,
            runningCount=simulated.desired_count,
            pendingCount=0,
        )
        primary["rolloutStateReason"] = reason or f"ECS deployment {primary['id']} completed."
        simulated.deployments[:] = [primary]
        simulated.running_count = simulated.desired_count
        simulated.pending_count = 0
        _add_event(simulated, f"(service {service}) has reached a steady state.", now)
    elif state == "FAILED":
        primary["rolloutStateReason"] = reason or ("ECS deployment circuit breaker: tasks failed to start.")
        _add_event(
            simulated,
            f"(service {service}) deployment {primary['id']} deployment failed: "
            f"{primary['rolloutStateReason']}",
            now,
        )
    else:
        primary["rolloutStateReason"] = reason or f"ECS deployment {primary['id']} in progress."
        _add_event(simulated, f"(service {service}) has started {simulated.desired_count} tasks.", now)


def _add_event(simulated: Any, message: str, at: datetime) -> None:
    # ECS lists events newest first and keeps the most recent 100.
    event_id = f"{int(at.timestamp() * 1_000_000):x}-{len(simulated.events)}"
    simulated.events.insert(0, {"id": event_id, "createdAt": at, "message": message})
    del simulated.events[100:]


def deploy_as_ci(
    gateway: AwsGateway,
    env: EnvironmentConfig,
    *,
    tag: str,
    at: datetime | None = None,
    outcome: RolloutState = "COMPLETED",
    account_id: str | None = None,
) -> str:
    """What MenoTime's CI/CD does, straight through the AWS API: a new revision of the family with
    the image ``tag`` (pushed first if missing), the service pointed at it, and (in-process moto)
    its deployment moved to ``outcome`` at ``at``. The new task-definition ARN."""
    try:
        gateway.call("ecr", "describe_images", repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        if error_code(exc) != "ImageNotFoundException":
            raise
        _put_image(gateway, tag)
    current = gateway.call("ecs", "describe_services", cluster=env.cluster, services=[env.service])[
        "services"
    ][0]
    base = gateway.call("ecs", "describe_task_definition", taskDefinition=current["taskDefinition"])[
        "taskDefinition"
    ]
    containers = []
    for container in base["containerDefinitions"]:
        if container.get("essential", True):
            container = {**container, "image": f"{container['image'].rsplit(':', 1)[0]}:{tag}"}
        containers.append(container)
    keep = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
    )
    arn = str(
        gateway.call(
            "ecs",
            "register_task_definition",
            containerDefinitions=containers,
            **{k: base[k] for k in keep if k in base},
        )["taskDefinition"]["taskDefinitionArn"]
    )
    gateway.call("ecs", "update_service", cluster=env.cluster, service=env.service, taskDefinition=arn)
    try:
        set_rollout(
            region=gateway.region,
            cluster=env.cluster,
            service=env.service,
            state="IN_PROGRESS",
            account_id=account_id,
            at=at,
        )
        if outcome != "IN_PROGRESS":
            set_rollout(
                region=gateway.region,
                cluster=env.cluster,
                service=env.service,
                state=outcome,
                account_id=account_id,
                at=at,
            )
    except LookupError:
        pass  # a moto server in another process: the service stays as moto left it
    return arn


# --------------------------------------------------------------------------------------------
# The server


class Simulator:
    """moto's server on 127.0.0.1 (a free port) for the length of a ``with`` block.

    moto keeps its state in this process, shared by every server and ``mock_aws`` in it: the state
    is reset when the simulator starts, so each simulator begins empty.
    """

    def __init__(self, *, region: str = DEFAULT_REGION, separate_process: bool = False) -> None:
        """``separate_process``: moto's server runs as a child process, so its CPU does not compete
        with this process's (the benchmarks). Its state is then out of reach of the helpers here that
        move simulated rollouts by hand (moto's ECS never does it by itself)."""
        self.region = region
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._werkzeug_level: int | None = None
        self.endpoint_url = ""
        self._separate = separate_process

    def __enter__(self) -> Simulator:
        if self._separate:
            return self._start_process()
        from moto.server import (
            ThreadedMotoServer,  # heavy import, only when a simulator is wanted
        )

        # werkzeug logs every request to stderr, which would bury the demo's console.
        werkzeug = logging.getLogger("werkzeug")
        self._werkzeug_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)

        # moto otherwise builds thousands of default AMIs whenever RDS touches EC2 (about a second).
        self._ami_setting = os.environ.get(_AMI_SETTING)
        os.environ.setdefault(_AMI_SETTING, "false")

        # Port 0: the operating system picks a free port (no guess-then-bind race with other processes).
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        try:
            host, port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
            request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_process(self) -> Simulator:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, _AMI_SETTING: os.environ.get(_AMI_SETTING, "false")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
                with urllib.request.urlopen(request, timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.endpoint_url = ""
        if self._werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
            self._werkzeug_level = None
        if getattr(self, "_ami_setting", "unset") is None:
            os.environ.pop(_AMI_SETTING, None)

    def session(self) -> boto3.session.Session:
        """Dummy credentials given explicitly: the process environment is never touched."""
        return new_session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )

    def gateway(
        self, *, connect_timeout: float = 3.0, read_timeout: float = 10.0, max_attempts: int = 3
    ) -> AwsGateway:
        if not self.endpoint_url:
            raise RuntimeError("the simulator is not running; use it in a `with` block")
        return AwsGateway(
            session=self.session(),
            region=self.region,
            endpoint_url=self.endpoint_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )

    def seed(self, config: Config, *, at: datetime | None = None) -> SeedReport:
        return seed_environments(self.gateway(), config, at=at)


def advance_rollouts(
    *,
    region: str,
    envs: list[EnvironmentConfig] | tuple[EnvironmentConfig, ...],
    account_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """One step of what ECS would do next, for every simulated service: a service whose task
    definition changed starts a deployment; a deployment in progress completes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    for env in envs:
        simulated = backend.services.get(f"{env.cluster}:{env.service}")
        if simulated is None:
            continue
        primary = next((d for d in simulated.deployments if d.get("status") == "PRIMARY"), None)
        if primary is None or primary.get("taskDefinition") != simulated.task_definition:
            set_rollout(
                region=region,
                cluster=env.cluster,
                service=env.service,
                state="IN_PROGRESS",
                account_id=account_id,
                at=at,
            )
        elif primary.get("rolloutState") == "IN_PROGRESS":
            set_rollout(
                region=region,
                cluster=env.cluster,
                service=env.service,
                state="COMPLETED",
                account_id=account_id,
                at=at,
            )


def autopilot(
    *,
    region: str,
    envs: list[EnvironmentConfig] | tuple[EnvironmentConfig, ...],
    pause: float = 0.05,
    clock: Any = None,
) -> Any:
    """A `sleep` for the bot's rollout follower that moves the simulated ECS on while it waits,
    so the demo and `console --simulate` see rollouts finish as they would on AWS (at ``clock``'s
    time, when given: one clock for the bot and the simulated AWS)."""
    import time

    def sleep(_seconds: float) -> None:
        time.sleep(pause)
        advance_rollouts(region=region, envs=envs, at=clock.now() if clock is not None else None)

    return sleep


# --------------------------------------------------------------------------------------------
# Alarm notifications, as CloudWatch publishes them to SNS (moto's CloudWatch does not publish)

_REGION_NAMES = {
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "us-east-1": "US East (N. Virginia)",
}


def alarm_notification(gateway: AwsGateway, *, name: str, state: str, reason: str, at: datetime) -> str:
    """The SNS ``Message`` CloudWatch would send for alarm ``name`` (read from the simulator)
    moving to ``state`` at ``at``; the alarm's state in the simulator moves too."""
    [alarm] = gateway.call("cloudwatch", "describe_alarms", AlarmNames=[name])["MetricAlarms"]
    gateway.call("cloudwatch", "set_alarm_state", AlarmName=name, StateValue=state, StateReason=reason)
    region = alarm["AlarmArn"].split(":")[3]
    trigger: dict[str, Any] = {
        "MetricName": alarm["MetricName"],
        "Namespace": alarm["Namespace"],
        "Dimensions": [{"name": d["Name"], "value": d["Value"]} for d in alarm.get("Dimensions", [])],
        "Period": alarm["Period"],
        "EvaluationPeriods": alarm["EvaluationPeriods"],
        "ComparisonOperator": alarm["ComparisonOperator"],
        "Threshold": alarm["Threshold"],
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
    }
    if alarm.get("Statistic"):
        trigger.update(StatisticType="Statistic", Statistic=alarm["Statistic"].upper())
    else:
        trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=alarm.get("ExtendedStatistic"))
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": alarm["AlarmArn"].split(":")[4],
            "NewStateValue": state,
            "NewStateReason": reason,
            "StateChangeTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": _REGION_NAMES.get(region, region),
            "AlarmArn": alarm["AlarmArn"],
            "OldStateValue": alarm["StateValue"],
            "Trigger": trigger,
        }
    )
