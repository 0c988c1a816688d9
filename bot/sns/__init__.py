"""Verification of SNS HTTP/S messages (DESIGN §6), independent of any web framework.

``SnsVerifier.accept`` is the one way in, for ``POST /sns`` and the SQS consumer alike: ``parse``
turns a body into an ``SnsMessage`` (400 when it is not an SNS envelope), ``check_topic`` refuses
topics outside the allow-list (``allowed_topics``: closed when empty), ``verify`` checks signature,
certificate and age (403 when anything is off). The caller logs ``SnsRejected.reason``, counts
``SnsRejected.kind`` and answers ``SnsRejected.status``: SNS does not retry a 4xx.

``bot.sns.envelope`` parses, ``bot.sns.certificates`` checks the URLs a message names and fetches
its certificate, ``bot.sns.verifier`` decides.
"""

from bot.sns.certificates import (
    FAILURE_TTL,
    FETCH_TIMEOUT_SECONDS,
    TRANSIENT_FAILURE_TTL,
    CertificateStore,
    ResponseTooLarge,
    check_sns_url,
    fetch_checked_url,
)
from bot.sns.envelope import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    UNSUBSCRIBE_CONFIRMATION,
    RefusalKind,
    SnsMessage,
    SnsRejected,
    parse,
    string_to_sign,
)
from bot.sns.verifier import ALARM_PATH_CLOSED, FUTURE_SKEW, CertificateNeeded, SnsVerifier, allowed_topics

__all__ = [
    "ALARM_PATH_CLOSED",
    "FAILURE_TTL",
    "FETCH_TIMEOUT_SECONDS",
    "FUTURE_SKEW",
    "NOTIFICATION",
    "SUBSCRIPTION_CONFIRMATION",
    "TRANSIENT_FAILURE_TTL",
    "UNSUBSCRIBE_CONFIRMATION",
    "CertificateNeeded",
    "CertificateStore",
    "RefusalKind",
    "ResponseTooLarge",
    "SnsMessage",
    "SnsRejected",
    "SnsVerifier",
    "allowed_topics",
    "check_sns_url",
    "fetch_checked_url",
    "parse",
    "string_to_sign",
]
