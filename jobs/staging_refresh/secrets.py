"""The restored copy's master password and the anonymization salt, kept in Secrets Manager.

Why stored rather than kept in memory: the staging service reads its database credentials from
Secrets Manager when its tasks start, so the new password has to be there for the forced deployment
after the swap; and a run resumed after a crash needs the password it already set. The run writes it
as the ``AWSPENDING`` version of the secret, with the run id as the version id (so a resumed run
finds it and re-putting it is idempotent), and promotes it to ``AWSCURRENT`` only at the swap: until
then the live staging tasks keep the password of the live staging instance. The value is never
logged, recorded in the store or reported.
"""

from __future__ import annotations

import json
import secrets

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from jobs.staging_refresh.rds import RefreshRefused

_PENDING, _CURRENT = "AWSPENDING", "AWSCURRENT"
_MISSING = {"ResourceNotFoundException"}


def version_token(run_id: str) -> str:
    # Secrets Manager wants 32-64 characters; run ids are 32 hex digits.
    return run_id.ljust(32, "0")[:64]


def pending_password(aws: AwsGateway, *, secret_id: str, run_id: str, username: str) -> str:
    """This run's password: the one already stored for it, else a new one stored as AWSPENDING."""
    token = version_token(run_id)
    try:
        stored = aws.call("secretsmanager", "get_secret_value", SecretId=secret_id, VersionId=token)
        return str(json.loads(stored["SecretString"])["password"])
    except ClientError as exc:
        if error_code(exc) not in _MISSING:
            raise
    password = secrets.token_urlsafe(30)  # RDS: 8-128 printable characters, no / @ " or space
    value = json.dumps({"username": username, "password": password, "engine": "postgres"})
    try:
        aws.call(
            "secretsmanager",
            "put_secret_value",
            SecretId=secret_id,
            ClientRequestToken=token,
            SecretString=value,
            VersionStages=[_PENDING],
        )
    except ClientError as exc:
        if error_code(exc) not in _MISSING:
            raise
        aws.call(
            "secretsmanager",
            "create_secret",
            Name=secret_id,
            ClientRequestToken=token,
            SecretString=value,
            Description="MenoTime staging database master credentials (written by the staging refresh)",
        )
    return password


def promote(aws: AwsGateway, *, secret_id: str, run_id: str) -> None:
    """Makes this run's version AWSCURRENT (the staging tasks read it on their next start)."""
    token = version_token(run_id)
    versions = aws.call("secretsmanager", "list_secret_version_ids", SecretId=secret_id)["Versions"]
    current = next((v["VersionId"] for v in versions if _CURRENT in v.get("VersionStages", [])), None)
    if current == token:
        return
    params = {"RemoveFromVersionId": current} if current else {}
    aws.call(
        "secretsmanager",
        "update_secret_version_stage",
        SecretId=secret_id,
        VersionStage=_CURRENT,
        MoveToVersionId=token,
        **params,
    )


def salt(aws: AwsGateway, *, secret_id: str) -> bytes:
    try:
        value: str = aws.call("secretsmanager", "get_secret_value", SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            raise RefreshRefused(
                f"the anonymization salt secret {secret_id} does not exist; create it "
                "(a long random string) or set jobs.options.staging-refresh.salt_secret_id"
            ) from None
        raise
    if len(value) < 16:
        raise RefreshRefused(f"the anonymization salt in {secret_id} is too short (16 characters at least)")
    return value.encode()
