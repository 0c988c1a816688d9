"""The AWS gateway: boto3 clients from an injected session, adaptive retries, full pagination.

Every AWS call of the bot goes through :meth:`AwsGateway.call` or :meth:`AwsGateway.paginate`, so
that connection failures become one user sentence ("AWS did not answer …; nothing was changed")
and every IAM action the code uses is recorded in one place (``iam_actions``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from bot.errors import AwsUnavailable

_SERVICE_NAMES = {
    "ecs": "ECS",
    "ecr": "ECR",
    "rds": "RDS",
    "cloudwatch": "CloudWatch",
    "application-autoscaling": "Application Auto Scaling",
    "logs": "CloudWatch Logs",
    "ec2": "EC2",
    "ce": "Cost Explorer",
    "sqs": "SQS",
    "sts": "STS",
    "secretsmanager": "Secrets Manager",
}

# Credentials that AWS will not take: as unavailable to us as a dead endpoint.
_CREDENTIALS_REFUSED = {
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "RequestExpired",
}

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


# API operations whose IAM action has another name.
_IAM_NAMES = {("s3", "ListObjectsV2"): "ListBucket"}


def iam_action(service: str, api_name: str) -> str:
    """``ecs``, ``DescribeServices`` → ``ecs:DescribeServices``; ``s3``, ``ListObjectsV2`` → ``s3:ListBucket``."""
    return f"{service}:{_IAM_NAMES.get((service, api_name), api_name)}"


class AwsGateway:
    def __init__(
        self,
        *,
        session: boto3.session.Session,
        region: str,
        endpoint_url: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        self._session = session
        self.region = region
        self._endpoint_url = endpoint_url
        # Where calls go: a region, or the endpoint standing in for AWS (a simulator, a proxy).
        self.source = f"{region}@{endpoint_url}" if endpoint_url else region
        self._config = BotoConfig(
            region_name=region,
            retries={"mode": "adaptive", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.iam_actions: set[str] = set()

    def client(self, service: str) -> Any:
        # Client creation is not thread-safe in boto3; using a client is.
        with self._lock:
            if service not in self._clients:
                kwargs: dict[str, Any] = {"config": self._config}
                if self._endpoint_url:
                    kwargs["endpoint_url"] = self._endpoint_url
                self._clients[service] = self._session.client(service, **kwargs)
            return self._clients[service]

    def iam_action(self, service: str, operation: str) -> str:
        """The IAM action of a boto3 method, spelled as AWS does (``rds:DescribeDBInstances``)."""
        api_name = self.client(service).meta.method_to_api_mapping.get(operation)
        if api_name is None:
            raise AttributeError(f"{service} has no operation {operation!r}")
        return iam_action(service, api_name)

    def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        """One API call; ClientErrors other than throttling propagate for the caller to interpret.

        Positional-only, because AWS has parameters named ``service`` (ECS UpdateService)."""
        with _translated(service):
            self.iam_actions.add(self.iam_action(service, operation))
            answer: dict[str, Any] = getattr(self.client(service), operation)(**params)  # boto3 is untyped
            return answer

    def paginate(self, service: str, operation: str, result_key: str, /, **params: Any) -> list[Any]:
        """Every item of ``result_key`` across all pages."""
        with _translated(service):
            self.iam_actions.add(self.iam_action(service, operation))
            items: list[Any] = []
            for page in self.client(service).get_paginator(operation).paginate(**params):
                items.extend(page.get(result_key, []))
            return items


@contextmanager
def _translated(service: str) -> Iterator[None]:
    """Failures that mean "AWS is not there for us" become AwsUnavailable with a user sentence."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in _THROTTLING:
            raise AwsUnavailable(_unavailable(service, "it kept throttling the bot")) from exc
        if error_code(exc) in _CREDENTIALS_REFUSED:
            raise AwsUnavailable(_unavailable(service, "it refused the bot's credentials")) from exc
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise AwsUnavailable(_unavailable(service, "no AWS credentials are configured")) from exc
    except NoRegionError as exc:
        raise AwsUnavailable(_unavailable(service, "no AWS region is configured")) from exc
    except BotoConnectionError as exc:
        raise AwsUnavailable(_unavailable(service, "could not connect")) from exc
    except BotoCoreError as exc:
        raise AwsUnavailable(_unavailable(service, type(exc).__name__)) from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(service: str, why: str) -> str:
    return f"AWS did not answer ({_SERVICE_NAMES.get(service, service)}: {why}); nothing was changed."


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def new_session(**options: Any) -> boto3.session.Session:
    """A boto3 session (``options`` as boto3's) that shares the process's one botocore data loader.

    A fresh botocore session parses the service models (megabytes of JSON per service) again for
    its first client; the loader caches them, so sharing it parses each model once per process. The
    models are read-only data; credentials, region and configuration stay the session's own.
    """
    core = botocore.session.get_session()
    core.register_component("data_loader", _shared_loader())
    return boto3.session.Session(botocore_session=core, **options)


def gateway_from_settings(settings: Any, session: boto3.session.Session | None = None) -> AwsGateway:
    """The production gateway: the standard credential chain unless a session is injected."""
    return AwsGateway(
        session=session or new_session(region_name=settings.aws_region),
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        max_attempts=settings.aws_max_attempts,
    )
