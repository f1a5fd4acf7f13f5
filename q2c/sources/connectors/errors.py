"""What can go wrong when q2c pulls from a provider's API, in classes a caller can act on.

`TransientError` is worth retrying (rate limits, 5xx, dropped connections); the HTTP client
retries it with backoff and raises it only when the attempts are spent. Every other
`ConnectorError` is terminal: retrying cannot help until a person fixes the cause, which the
message names. Messages never carry a credential.
"""

from __future__ import annotations


class ConnectorError(RuntimeError):
    """A pull that cannot go on. `provider` is the API's name, `status` the HTTP status."""

    def __init__(self, provider: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class TransientError(ConnectorError):
    """The provider is busy or failing for now; the same request may succeed later."""


class AuthError(ConnectorError):
    """The provider refused the credentials (HTTP 401, or 403 for a missing scope)."""


class ProviderError(ConnectorError):
    """The provider rejected the request itself (a bad query, an unknown object)."""


class ConfigurationError(ConnectorError):
    """A connector setting is missing or malformed; the message names the variable."""
