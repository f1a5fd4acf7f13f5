"""`q2c outbox`: counts, dead letters, requeue and the audit chain, from the command line.

Each test points Q2C_OPS_STORE at a real SQLite outbox in tmp_path, fills it through the
outbox itself, and calls `q2c.cli.main` the way the console script does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from outbox_support import (
    PortalStub,
    invoice_id,
    invoice_number,
    item,
    portal_send,
    recipient,
)

from q2c.cli import main
from q2c.delivery.envelope import PORTAL
from q2c.delivery.outbox import Outbox, document_key

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "ops.sqlite"
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_OPS_STORE", str(path))
    (tmp_path / "empty-q2c.yaml").write_text("")  # no settings beyond the environment
    monkeypatch.setenv("Q2C_CONFIG", str(tmp_path / "empty-q2c.yaml"))
    return path


@pytest.fixture
def outbox(store, tmp_path) -> Outbox:
    """Three portal invoices: INV-1 and INV-3 refused (dead letters), INV-2 sent."""
    box = Outbox(store)
    box.enqueue([item(n, (portal_send(n),)) for n in (1, 2, 3)], "run-1")
    refusing = PortalStub(tmp_path / "portal", refuse={recipient(1), recipient(3)})
    box.process({PORTAL: refusing}, "run-1")
    return box


def doc(n: int) -> str:
    return document_key(invoice_id(n))


def test_status_prints_every_status_with_its_count(outbox, capsys):
    assert main(["outbox", "status"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Outbox {outbox.store_path}: 3 documents"
    assert [line.split() for line in lines[1:]] == [
        ["queued", "0"], ["claimed", "0"], ["sent", "1"], ["failed_retry", "0"],
        ["dead_letter", "2"], ["cancelled", "0"]]


def test_status_without_a_store_says_nothing_was_queued_and_creates_nothing(store, capsys):
    assert main(["outbox", "status"]) == 0
    assert "nothing has been queued" in capsys.readouterr().err
    assert not store.exists()


def test_dead_letters_lists_number_plan_attempts_and_last_error(outbox, capsys):
    assert main(["outbox", "dead-letters"]) == 0
    table = capsys.readouterr().out.splitlines()

    assert table[0].split() == ["invoice", "plan", "attempts", "key", "last", "error"]
    rows = sorted(table[1:3])
    assert rows[0].split(maxsplit=4) == [
        invoice_number(1), "portal", "1", doc(1)[:12],
        f"no portal account for invoice {invoice_number(1)}"]
    assert rows[1].split(maxsplit=4)[:3] == [invoice_number(3), "portal", "1"]
    assert table[-1].startswith("2 dead letters. Fix the cause, then: q2c outbox requeue")


def test_dead_letters_as_json(outbox, capsys):
    assert main(["outbox", "dead-letters", "--json"]) == 0
    letters = sorted(json.loads(capsys.readouterr().out), key=lambda d: d["invoice_number"])

    assert [(d["invoice_number"], d["document_key"], d["plan"], d["attempts"],
             d["last_error"]) for d in letters] == [
        (invoice_number(n), doc(n), ["portal"], 1,
         f"no portal account for invoice {invoice_number(n)}") for n in (1, 3)]


def test_requeue_by_invoice_number_or_document_key_records_who_and_why(outbox, tmp_path,
                                                                        capsys):
    assert main(["outbox", "requeue", invoice_number(1), "--by", "ana",
                 "--reason", "portal account created"]) == 0
    assert main(["outbox", "requeue", doc(3), "--by", "ana", "--reason", "fixed"]) == 0

    out = capsys.readouterr().out
    assert f"Requeued {invoice_number(1)}: the next run sends it" in out
    assert outbox.dead_letters() == []
    assert outbox.status_counts()["queued"] == 2
    requeued = outbox.events(doc(1))[-1]
    assert (requeued.event, requeued.detail, requeued.run_id) == (
        "requeued", "by ana: portal account created", "manual:ana")
    report = outbox.process({PORTAL: PortalStub(tmp_path / "portal")}, "run-2")
    assert sorted(o.invoice_number for o in report.outcomes if o.status == "sent") == [
        invoice_number(1), invoice_number(3)]


def test_requeue_of_an_unknown_invoice_exits_2_with_a_hint(outbox, capsys):
    assert main(["outbox", "requeue", "INV-404", "--by", "ana", "--reason", "x"]) == 2
    err = capsys.readouterr().err
    assert "no document 'INV-404' in the outbox" in err
    assert "q2c outbox dead-letters" in err


def test_requeue_of_a_sent_invoice_exits_1_and_changes_nothing(outbox, capsys):
    assert main(["outbox", "requeue", invoice_number(2), "--by", "ana",
                 "--reason", "again"]) == 1
    assert "INV-2026-0002 is sent, not a dead letter" in capsys.readouterr().err
    assert outbox.status_counts()["sent"] == 1
    assert [e.event for e in outbox.events(doc(2))] == ["queued", "claimed", "sent"]


def test_requeue_needs_by_and_reason(outbox, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["outbox", "requeue", invoice_number(1)])
    assert exited.value.code == 2
    assert "--by" in capsys.readouterr().err
    assert main(["outbox", "requeue", invoice_number(1), "--by", "ana",
                 "--reason", " "]) == 1
    assert "needs who (by) and why (reason)" in capsys.readouterr().err


def test_verify_passes_an_intact_chain_and_lists_the_problems_of_an_edited_one(outbox,
                                                                               capsys):
    events = outbox.events()
    head = f"{events[-1].seq}:{events[-1].hash}"
    assert main(["outbox", "verify", "--head", head]) == 0
    assert capsys.readouterr().out.strip() == (
        f"Audit trail intact: {len(events)} events, each linked to the one before; "
        f"head {head}")

    raw = sqlite3.connect(outbox.store_path)
    raw.executescript("""
        drop trigger delivery_events_no_update;
        update delivery_events set detail = 'sent to someone else' where seq = 2;
    """)
    raw.commit()
    raw.close()

    assert main(["outbox", "verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Audit trail of {outbox.store_path} is BROKEN (1 problems):"
    assert out[1] == (f"  - event 2 ({events[1].event}, invoice {events[1].invoice_number}) "
                      "does not match its hash: it was changed after it was recorded")


def test_the_outbox_command_loads_no_dagster_dbt_gx_or_duckdb(outbox):
    script = (
        "import sys\n"
        "from q2c.cli import main\n"
        "codes = [main(['outbox', 'status']), main(['outbox', 'dead-letters']),\n"
        "         main(['outbox', 'verify'])]\n"
        "heavy = {'dagster', 'dbt', 'great_expectations', 'duckdb', 'pandas', 'weasyprint'}\n"
        "print(codes, sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=os.environ.copy(),
                            capture_output=True, text=True, check=False, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "[0, 0, 0] []"
