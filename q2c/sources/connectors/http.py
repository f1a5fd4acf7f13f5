"""The HTTP client every pull connector shares: timeouts, pacing, retries, clear errors.

A 429 or a 5xx answer, a timeout or a dropped connection is retried with exponential backoff
and jitter; when the provider says how long to wait (`Retry-After`, in seconds or as an HTTP
date) that wait is used instead. A 401 or 403 stops at once with what to fix. JSON numbers
with a fraction are parsed as Decimal, so an amount is never a float.
Requests and errors are logged by method and path only: no query string (it may hold a
filter on customer data), no header (it holds the token), no body. Header values are checked
when the client is built (a line break in a token would end its header and start another);
an error of the HTTP library is reported by its class name only, never its text (which can
quote a header), and no error is chained to it. A token the provider echoes back is masked
in any letter case and URL-encoded.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import requests

from q2c.sources.connectors.errors import (
    AuthError,
    ConfigurationError,
    ConnectorError,
    ProviderError,
    TransientError,
)
from q2c.sources.connectors.rate_limit import RateLimiter

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    The wait after the n-th failure is drawn from [d/2, d] with d = base * 2**(n-1), capped
    at `max_delay` ("equal jitter"), so clients that failed together do not return together.
    A provider asking to wait longer than `max_retry_after` makes the pull stop with that
    wait in the message, rather than hold a run for an hour.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass
class Reply:
    """A successful answer: status, headers and the JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    data: Any


def _default_error_text(data: Any, text: str) -> str:
    return text[:300] if text else "no error text"


@dataclass
class HttpClient:
    """Requests to one provider's API, with its credentials and its error format.

    Attributes:
        provider: The name used in messages ("HubSpot").
        base_url: Scheme and host (and a path prefix) that relative paths are joined to.
        headers: Sent with every request (authorization, API version).
        auth_hint: What to do when the credentials are refused (which variable to set).
        error_text: Turns a provider's error body into its message.
        classify: Picks the error class for a provider's error code where the HTTP status
            alone misleads (a 403 that is a daily request limit, not a permission);
            None keeps the default by status.
        secrets: Values blanked out of any message (the tokens).
    """

    provider: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    auth_hint: str = "check the credentials"
    error_text: Callable[[Any, str], str] = _default_error_text
    classify: Callable[[int, Any], type[ConnectorError] | None] = lambda status, data: None
    secrets: Iterable[str] = ()
    timeout: tuple[float, float] = (10.0, 60.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: RateLimiter | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.secrets = tuple(s for s in self.secrets if s)
        for name, value in self.headers.items():
            if any(ord(c) < 32 or ord(c) == 127 or ord(c) > 255 for c in str(value)):
                raise ConfigurationError(
                    self.provider,
                    f"{self.provider}: the {name} header would carry a line break, a control "
                    "character or a character HTTP headers cannot hold; check the setting it "
                    "comes from for stray characters (the value is not shown)",
                )

    def url(self, path: str) -> str:
        """The absolute URL of `path`; a link to another host is refused, so the token is
        only ever sent to the provider's API."""
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        url = urljoin(base, path)
        if urlsplit(url)[:2] != urlsplit(base)[:2]:
            raise ProviderError(
                self.provider,
                f"{self.provider}: a page link points to {urlsplit(url).netloc}, not to "
                f"{urlsplit(base).netloc}; q2c does not send the token to another host",
            )
        return url

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Reply:
        return self.request("POST", path, body=body)

    def request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply:
        """One call, retried while the failure is transient; returns the parsed JSON."""
        url = self.url(path)
        where = f"{method} {urlsplit(url).path}"
        failures = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            response, failure = self._send(method, url, params, body)
            if response is None:
                failures += 1
                error = TransientError(
                    self.provider,
                    f"{self.provider}: {where} failed ({failure}); the service could not be "
                    "reached",
                )
                self._wait_or_raise(error, failures, where, None)
                continue
            if response.status_code < 400:
                return self._reply(response, where)
            error = self._error(response, where)
            if not isinstance(error, TransientError):
                raise error
            failures += 1
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            self._wait_or_raise(error, failures, where, wait)

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None,
              body: Any) -> tuple[requests.Response | None, str]:
        """The response, or None and the name of the failure when the connection failed.

        Any other error of the HTTP library stops the pull as a ProviderError that carries
        only the error's class name: the library's own text can quote a header (the token).
        """
        failure = None
        try:
            response = self.session.request(
                method, url, params=params, json=body, headers=dict(self.headers),
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            return None, type(exc).__name__
        except (requests.RequestException, ValueError, UnicodeError) as exc:
            failure = type(exc).__name__
        if failure is not None:
            # Raised outside the except block, so no traceback shows the library's error.
            raise ProviderError(
                self.provider,
                f"{self.provider}: {method} {urlsplit(url).path} could not be sent "
                f"({failure}); check the base URL and the credential settings for stray "
                "characters",
            )
        return response, ""

    def _reply(self, response: requests.Response, where: str) -> Reply:
        try:
            data = _json(response)
        except ValueError as exc:
            raise ProviderError(
                self.provider,
                f"{self.provider}: {where} answered HTTP {response.status_code} with a body "
                "that is not JSON; check the base URL points at the API",
                response.status_code,
            ) from exc
        return Reply(response.status_code, response.headers, data)

    def _wait_or_raise(
        self, error: TransientError, failures: int, where: str, retry_after: float | None
    ) -> None:
        if failures >= self.retry.max_attempts:
            raise TransientError(
                self.provider,
                f"{error} (gave up after {failures} attempts); run the pull again later, it "
                "resumes from the last committed cursor",
                error.status,
            ) from error
        if retry_after is not None and retry_after > self.retry.max_retry_after:
            raise TransientError(
                self.provider,
                f"{error}; the provider asks to wait {retry_after:.0f} s, longer than "
                f"{self.retry.max_retry_after:.0f} s: run the pull again after that",
                error.status,
            ) from error
        wait = retry_after if retry_after is not None else self.retry.backoff(failures,
                                                                             self.rng)
        log.warning(
            "%s: %s answered %s; retrying in %.2f s (attempt %d of %d)",
            self.provider, where, error.status or "no response", wait, failures + 1,
            self.retry.max_attempts,
        )
        self.sleep(wait)

    def _error(self, response: requests.Response, where: str) -> ConnectorError:
        status = response.status_code
        try:
            data = _json(response)
        except ValueError:
            data = None
        text = self._clean(self.error_text(data, response.text or ""))
        kind = self.classify(status, data)
        if kind is not None and kind is not TransientError:
            return kind(self.provider, f"{self.provider}: {where} answered HTTP {status}: "
                        f"{text}", status)
        if status in RETRY_STATUSES or kind is TransientError:
            return TransientError(
                self.provider, f"{self.provider}: {where} answered HTTP {status}: {text}", status
            )
        if status in (401, 403):
            what = "refused the credentials" if status == 401 else "denied access"
            return AuthError(
                self.provider,
                f"{self.provider} {what} on {where} (HTTP {status}: {text}). "
                + self.auth_hint,
                status,
            )
        return ProviderError(
            self.provider, f"{self.provider} rejected {where} (HTTP {status}: {text})", status
        )

    def _clean(self, text: str) -> str:
        """`text` with every token masked, as sent or echoed back changed: in another letter
        case, URL-encoded, or with its slashes escaped as JSON may write them."""
        for secret in self.secrets:
            forms = {secret, quote(secret, safe=""), quote_plus(secret),
                     secret.replace("/", "\\/")}
            for form in sorted(forms, key=len, reverse=True):
                text = re.sub(re.escape(form), "***", text, flags=re.IGNORECASE)
        return text


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    return response.json(parse_float=Decimal)
