"""Post a message to Slack: an incoming webhook, or a bot token + channel (chat.postMessage).

slack-sdk's retry handlers retry connection errors, 429 (after Retry-After) and 5xx, a couple of
times each, well inside the Lambda timeout; anything beyond that is the caller's (the state
machine's Retry on the notifier task). Errors never carry the webhook URL or the token.

Imports only the stdlib and slack_sdk: installed as `nightcopy_notifier.slack_post` and also
loaded as the Lambda's top-level module `slack_post`.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

# slack_sdk logs request URLs (the webhook URL is the secret) at DEBUG: keep it above that even
# when someone turns the root logger up for debugging.
logging.getLogger("slack_sdk").setLevel(logging.INFO)

RETRIES = 2
TIMEOUT_SECONDS = 10


class SlackPostError(RuntimeError):
    """Slack did not accept the message (the text names the status, never the URL/token)."""


class AnyServerErrorRetryHandler(RetryHandler):
    """Retry every 5xx; slack-sdk's ServerErrorRetryHandler only retries 500 and 503."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers() -> list[RetryHandler]:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        ConnectionErrorRetryHandler(max_retry_count=RETRIES, interval_calculator=backoff),
        RateLimitErrorRetryHandler(max_retry_count=RETRIES),
        AnyServerErrorRetryHandler(max_retry_count=RETRIES, interval_calculator=backoff),
    ]


def post_report(message: dict, *, webhook_url: str | None = None, bot_token: str | None = None,
                channel: str | None = None, base_url: str | None = None) -> None:
    """Send `{"text", "blocks"}`. Give webhook_url, or bot_token and channel.

    base_url points WebClient at another API root (tests use a local server).
    """
    text, blocks = message.get("text", ""), message.get("blocks")
    if webhook_url:
        client = WebhookClient(webhook_url, timeout=TIMEOUT_SECONDS,
                               retry_handlers=retry_handlers())
        try:
            resp = client.send(text=text, blocks=blocks)
        except Exception as exc:  # urllib errors can quote the URL: report only the kind
            raise SlackPostError(f"Slack webhook unreachable ({type(exc).__name__})") from None
        if resp.status_code != 200:
            raise SlackPostError(
                f"Slack webhook refused the message: HTTP {resp.status_code} {resp.body[:200]}")
        return
    if bot_token and channel:
        kwargs = {"base_url": base_url} if base_url else {}
        web = WebClient(token=bot_token, timeout=TIMEOUT_SECONDS,
                        retry_handlers=retry_handlers(), **kwargs)
        try:
            web.chat_postMessage(channel=channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            raise SlackPostError(f"Slack API refused the message: {error}") from None
        except Exception as exc:
            raise SlackPostError(f"Slack API unreachable ({type(exc).__name__})") from None
        return
    raise SlackPostError("no Slack destination: set slack_webhook_url, or slack_bot_token "
                         "and slack_channel")
