"""X12 control numbers: per partner, never reused, idempotent per document, and safe when
two runs in two processes allocate at the same time."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from q2c.x12 import ControlNumbers, Controls, load_partners

PARTNERS = load_partners()
BIGBOX = PARTNERS["bigbox-retail"]
LAKESIDE = PARTNERS["lakeside-distribution"]


def test_numbers_run_per_partner_and_repeat_for_the_same_document(tmp_path: Path):
    numbers = ControlNumbers(tmp_path / "ops.sqlite")

    assert numbers.allocate(BIGBOX, "key-a", "INV-1") == Controls(1, 1, 1)
    assert numbers.allocate(BIGBOX, "key-b", "INV-2") == Controls(2, 2, 2)
    assert numbers.allocate(LAKESIDE, "key-a", "INV-1") == Controls(1, 1, 1)
    # Re-rendering INV-1 for the retailer repeats its numbers instead of spending new ones.
    assert numbers.allocate(BIGBOX, "key-a", "INV-1") == Controls(1, 1, 1)
    assert numbers.allocate(BIGBOX, "key-c", "INV-3") == Controls(3, 3, 3)

    # A second ControlNumbers on the same store (another run) continues the sequence.
    again = ControlNumbers(tmp_path / "ops.sqlite")
    assert again.allocate(BIGBOX, "key-d", "INV-4") == Controls(4, 4, 4)


def test_a_document_key_belongs_to_one_invoice(tmp_path: Path):
    numbers = ControlNumbers(tmp_path / "ops.sqlite")
    numbers.allocate(BIGBOX, "key-a", "INV-1")
    with pytest.raises(ValueError, match="document key 'key-a' was issued X12 control numbers "
                                         "for invoice INV-1, not INV-9"):
        numbers.allocate(BIGBOX, "key-a", "INV-9")


def test_lookup_finds_the_document_a_997_acknowledges(tmp_path: Path):
    numbers = ControlNumbers(tmp_path / "ops.sqlite")
    numbers.allocate(BIGBOX, "key-a", "INV-1")
    numbers.allocate(BIGBOX, "key-b", "INV-2")
    numbers.allocate(LAKESIDE, "key-c", "INV-3")

    [issued] = numbers.lookup("bigbox-retail", 2)
    assert (issued.partner, issued.isa, issued.gs, issued.st, issued.document_key,
            issued.invoice_number) == ("bigbox-retail", 2, 2, 2, "key-b", "INV-2")
    assert issued.issued_at.tzinfo is not None
    assert [i.document_key for i in numbers.lookup("bigbox-retail", 2, 2)] == ["key-b"]
    assert numbers.lookup("bigbox-retail", 2, 3) == []
    assert [i.document_key for i in numbers.lookup("lakeside-distribution", 1)] == ["key-c"]
    assert numbers.lookup("bigbox-retail", 9) == []


def test_the_nine_digit_counters_wrap_to_one_after_999999999(tmp_path: Path):
    numbers = ControlNumbers(tmp_path / "ops.sqlite")
    assert numbers.allocate(BIGBOX, "first", "INV-1") == Controls(1, 1, 1)
    numbers.start_at("bigbox-retail", Controls(999_999_998, 999_999_998, 999_999_998))

    assert numbers.allocate(BIGBOX, "k1", "INV-2") == Controls(999_999_998, 999_999_998,
                                                                999_999_998)
    assert numbers.allocate(BIGBOX, "k2", "INV-3") == Controls(999_999_999, 999_999_999,
                                                                999_999_999)
    assert numbers.allocate(BIGBOX, "k3", "INV-4") == Controls(1, 1, 1)
    # After a wrap a number has two issues; lookup returns both, newest first.
    assert [i.invoice_number for i in numbers.lookup("bigbox-retail", 1, 1)] == [
        "INV-4", "INV-1"]


def test_numbering_never_moves_back(tmp_path: Path):
    numbers = ControlNumbers(tmp_path / "ops.sqlite")
    numbers.start_at("bigbox-retail", Controls(500, 40, 40))
    assert numbers.allocate(BIGBOX, "k", "INV-1") == Controls(500, 40, 40)
    with pytest.raises(ValueError, match="would reuse numbers"):
        numbers.start_at("bigbox-retail", Controls(500, 41, 41))
    with pytest.raises(ValueError, match="outside 1..999999999"):
        numbers.start_at("bigbox-retail", Controls(1_000_000_000, 41, 41))


# --- two processes ------------------------------------------------------------------------


def _allocate_many(store: str, partner_fields: dict, keys: list[str], barrier, queue) -> None:
    """Child process: wait for the other one, then allocate a number for every key."""
    from q2c.x12.profiles import TradingPartner

    partner = TradingPartner(**partner_fields)
    numbers = ControlNumbers(Path(store))
    barrier.wait()
    issued = {key: dataclasses.astuple(numbers.allocate(partner, key, f"INV-{key}"))
              for key in keys}
    queue.put(issued)


def test_two_processes_allocating_at_once_never_share_a_number(tmp_path: Path):
    store = tmp_path / "ops.sqlite"
    ControlNumbers(store)
    # Run A renders documents 0..149, run B documents 100..249: 50 documents both runs touch.
    keys_a = [f"doc-{n:03d}" for n in range(0, 150)]
    keys_b = [f"doc-{n:03d}" for n in range(100, 250)]
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    fields = dataclasses.asdict(BIGBOX)
    runs = [context.Process(target=_allocate_many, args=(str(store), fields, keys, barrier,
                                                         queue))
            for keys in (keys_a, keys_b)]
    for run in runs:
        run.start()
    results = [queue.get(timeout=300) for _ in runs]
    for run in runs:
        run.join(timeout=60)
        assert run.exitcode == 0

    first, second = results
    # A document both runs rendered got one set of numbers, seen by both.
    shared = set(first) & set(second)
    assert len(shared) == 50
    assert all(first[key] == second[key] for key in shared)
    issued = first | second
    assert len(issued) == 250
    for index in range(3):  # ISA13, GS06, ST02: each unique across all 250 documents
        values = [controls[index] for controls in issued.values()]
        assert len(set(values)) == 250
    # Every allocation committed and none failed, so the counters handed out 1..250.
    assert {controls[0] for controls in issued.values()} == set(range(1, 251))

    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("select count(*), count(distinct isa) from x12_issued_controls "
                            "where partner = 'bigbox-retail'").fetchone()
        next_isa = conn.execute("select next_isa from x12_control_counters "
                                "where partner = 'bigbox-retail'").fetchone()[0]
    finally:
        conn.close()
    assert rows == (250, 250)
    assert next_isa == 251
