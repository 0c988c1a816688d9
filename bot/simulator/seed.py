"""The seed: MenoTime's environments created in a fresh simulator, as the environments specification
describes them (one ECR repository, and per environment a cluster, a task-definition family with a few
revisions, the service, its scaling target where autoscaled, the RDS instance and alarms)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.config import Config, EnvironmentConfig
from bot.simulator.images import REPOSITORY, _put_image
from bot.simulator.rollouts import set_rollout

APP_CONTAINER = "app"
SIDECAR_CONTAINER = "log-router"
_FLUENT_BIT_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"


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
