"""Checks on a provider's pages, so a malformed or looping answer stops the pull clearly.

A page that is not the provider's documented shape (a JSON array where an object belongs,
a record without its id or its updated-at time) stops the pull with a ProviderError naming
the provider, the stream and what was wrong, instead of a KeyError deep in the flattening.
A paging cursor that comes back (Stripe's `starting_after`, HubSpot's `after`, Salesforce's
`nextRecordsUrl`, a QuickBooks STARTPOSITION answered with a page already seen) means the
provider's paging does not advance: following it would fetch the same page forever, so the
pull stops with the repeated cursor in the message. Pages landed before stay committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from q2c.sources.connectors.errors import ProviderError
from q2c.sources.connectors.flatten import cursor_text, parse_instant


def _kind(value: Any) -> str:
    if value is None:
        return "an empty body"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a JSON {type(value).__name__}"


class PageCheck:
    """What one stream's pages must hold, and the cursors it has followed."""

    def __init__(self, provider: str, stream: str) -> None:
        self.provider = provider
        self.stream = stream
        self._cursors: set[str] = set()

    def fail(self, what: str) -> ProviderError:
        return ProviderError(
            self.provider, f"{self.provider}: stream {self.stream}: {what}; the answer is not "
            f"the shape q2c reads, so the pull stops (check the base URL and API version)",
        )

    def body(self, data: Any, where: str) -> dict[str, Any]:
        """The page's JSON object."""
        if not isinstance(data, dict):
            raise self.fail(f"{where} answered {_kind(data)} where a JSON object belongs")
        return data

    def items(self, body: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
        """The list of records under `key` (none when absent), each a JSON object."""
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"`{key}` in the answer of {where} is {_kind(value)}, not a list")
        for number, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                raise self.fail(f"record {number} of `{key}` in the answer of {where} is "
                                f"{_kind(item)}, not an object")
        return value

    def text(self, record: dict[str, Any], name: str, where: str, number: int) -> str:
        """A field every record has (its id) as text."""
        value = record.get(name)
        if value is None or value == "" or isinstance(value, dict | list | bool):
            raise self.fail(f"record {number} in the answer of {where} has no `{name}`")
        return str(value)

    def moment(self, value: Any, name: str, where: str, number: int) -> str:
        """A record's updated-at or created time as cursor text."""
        try:
            return cursor_text(parse_instant(value))
        except (TypeError, ValueError, OverflowError, OSError):
            shown = "no value" if value is None else f"{str(value)[:40]!r}"
            raise self.fail(f"record {number} in the answer of {where} has {shown} for "
                            f"`{name}`, not a time") from None

    def follow(self, cursor: str, what: str) -> None:
        """Note a page cursor about to be followed; one seen before stops the pull."""
        if cursor in self._cursors:
            self.repeated(f"the provider answered the {what} {cursor!r} a second time")
        self._cursors.add(cursor)

    def repeated(self, detail: str) -> None:
        """Stop a pull whose paging goes round: `detail` names the repeated cursor."""
        raise ProviderError(
            self.provider,
            f"{self.provider}: stream {self.stream}: {detail}, so its paging does not "
            "advance; the pull stops rather than fetch the same page forever. The pages "
            "landed before are kept; run the pull again later or report it to the provider",
        )

    def forget_cursors(self) -> None:
        """Start a new walk (a query run again from a new mark), where cursors recur."""
        self._cursors.clear()

    @contextmanager
    def reading(self, where: str) -> Iterator[None]:
        """Nested parts of an answer (lines, associations, stages) read inside this block:
        a missing key or a value of the wrong JSON type stops the pull with a message."""
        try:
            yield
        except KeyError as exc:
            raise self.fail(f"the answer of {where} has no `{exc.args[0]}`") from None
        except (TypeError, AttributeError) as exc:
            raise self.fail(f"a value in the answer of {where} has the wrong JSON type "
                            f"({exc})") from None
