"""MenoTime's ECR repository in the simulator: an image manifest per tag, and pushing it."""

from __future__ import annotations

import hashlib
import json

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code

REPOSITORY = "menotime-backend"


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
