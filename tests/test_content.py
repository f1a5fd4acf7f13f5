"""The content registry: versions, approvals, targeting fields, the lock, the sandbox, texts."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from babel.numbers import format_currency
from content_support import SHIPPED_LANGUAGES
from content_support import invoice as make_invoice
from jinja2 import TemplateNotFound
from jinja2.exceptions import SecurityError

from q2c.content.formatting import money
from q2c.content.lock import ContentApprovalError, approve, check_lock
from q2c.content.registry import (
    ContentIntegrityError,
    ContentNotFoundError,
    ContentRegistryError,
    load_registry,
)
from q2c.content.selection import select_content
from q2c.documents.render import message_blocks, render_html
from q2c.money import Money

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
LANGUAGES = ("en", "de", "fr", "es", "nl", "ja")


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """A private copy of the content store that a test may change."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def _registry_data(root: Path) -> dict:
    return yaml.safe_load((root / "registry.yaml").read_text())


def _write_registry(root: Path, data: dict) -> None:
    (root / "registry.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _add_version(root: Path, content_id: str, status: str, effective_from: str, marker: str) -> int:
    """Copy the newest approved version to the next free version with a changed main file.

    Returns:
        The new version number.
    """
    data = _registry_data(root)
    versions = [e for e in data["entries"] if e["id"] == content_id]
    base = max((e for e in versions if e["status"] == "approved"), key=lambda e: e["version"])
    version = max(e["version"] for e in versions) + 1
    new_path = base["path"].replace(f"/v{base['version']}", f"/v{version}")
    shutil.copytree(root / base["path"], root / new_path)
    main = root / new_path / base["main"]
    main.write_text(main.read_text() + f"\n{{# {marker} #}}\n")
    entry = {
        **base,
        "version": version,
        "status": status,
        "effective_from": effective_from,
        "path": new_path,
        "sha256": {
            name: hashlib.sha256((root / new_path / name).read_bytes()).hexdigest()
            for name in base["sha256"]
        },
    }
    if status == "draft":
        entry.pop("approved_by"), entry.pop("approved_at")
    data["entries"].append(entry)
    _write_registry(root, data)
    return version


def test_registry_has_an_approved_version_of_every_content_item():
    registry = load_registry(CONTENT_DIR)

    for content_id, kind in [
        ("invoice", "template"),
        ("credit_note", "template"),
        ("payment_reminder", "template"),
        ("invoice_email_html", "template"),
        ("invoice_email_text", "template"),
        ("payment_reminder_email_html", "template"),
        ("payment_reminder_email_text", "template"),
        ("default", "theme"),
        ("invoice_labels", "texts"),
        ("credit_note_labels", "texts"),
        ("reminder_labels", "texts"),
        ("account_manager", "blocks"),
        ("reverse_charge_eu", "legal"),
        ("tax_exemption_non_eu", "legal"),
        ("late_payment_default", "legal"),
        ("late_payment_de", "legal"),
        ("late_payment_fr", "legal"),
        ("late_payment_nl", "legal"),
    ]:
        entry = registry.get(content_id, on=dt.date(2026, 6, 1))
        assert (entry.status, entry.kind) == ("approved", kind), content_id
        assert entry.approved_by and entry.approved_at
        for name, recorded in entry.sha256.items():
            actual = hashlib.sha256(entry.file_path(name).read_bytes()).hexdigest()
            assert actual == recorded, f"{entry.ref} {name}"


def test_replaced_versions_are_retired_with_their_files_unchanged():
    registry = load_registry(CONTENT_DIR)

    for content_id in ("invoice", "default", "invoice_labels"):
        v1 = registry.version(content_id, 1)
        assert v1.status == "retired", content_id
        # A later version replaces v1 on every date v1 covered, so pinned past runs still
        # resolve.
        replacement = registry.get(content_id, on=v1.effective_from)
        assert replacement.version > 1
        assert replacement.effective_from == v1.effective_from == dt.date(2018, 1, 1)
    registry.verify_all()


def test_theme_has_stylesheet_colors_logo_and_fonts():
    registry = load_registry(CONTENT_DIR)
    theme = registry.version("default", 2)
    settings = registry.read_yaml(theme, "theme.yaml")

    assert set(theme.sha256) == {"theme.css", "theme.yaml", "logo.svg"}
    assert settings["colors"]["primary"].startswith("#")
    assert settings["fonts"] == {"body": "DejaVu Sans", "japanese": "Noto Sans CJK JP"}
    assert theme.file_path("logo.svg").read_text().startswith("<svg")


def test_get_picks_the_newest_approved_version_in_effect(content_copy: Path):
    before = load_registry(content_copy)
    current = before.get("invoice").version
    newest = before.versions("invoice")[-1].version
    future = _add_version(content_copy, "invoice", "approved", "2030-01-01", "future")
    draft = _add_version(content_copy, "invoice", "draft", "2018-01-01", "draft")
    registry = load_registry(content_copy)

    assert (future, draft) == (newest + 1, newest + 2)
    assert registry.get("invoice", on=dt.date(2029, 12, 31)).version == current
    assert registry.get("invoice", on=dt.date(2030, 1, 1)).version == future
    assert registry.get("invoice", status="draft").version == draft
    assert registry.get_preview("invoice").version == draft


def test_a_retired_version_is_never_picked(content_copy: Path):
    current = load_registry(content_copy).get("invoice").version
    _add_version(content_copy, "invoice", "approved", "2020-01-01", "newer")
    data = _registry_data(content_copy)
    data["entries"][-1]["status"] = "retired"
    _write_registry(content_copy, data)

    assert load_registry(content_copy).get("invoice").version == current


def test_no_version_in_effect_is_a_clear_error():
    registry = load_registry(CONTENT_DIR)

    with pytest.raises(ContentNotFoundError, match="invoice.*2017-12-31"):
        registry.get("invoice", on=dt.date(2017, 12, 31))


def test_a_changed_approved_file_asks_for_a_new_version(content_copy: Path):
    registry = load_registry(content_copy)
    approved = registry.get("default")
    stylesheet = approved.file_path("theme.css")
    stylesheet.write_text(stylesheet.read_text() + "\n/* edited */\n")

    next_version = registry.versions("default")[-1].version + 1

    assert approved.status == "approved"
    with pytest.raises(
        ContentIntegrityError,
        match=rf"theme\.css.*approved content {approved.ref}.*\(v{next_version}\) of `default`",
    ):
        registry.verify(approved)
    with pytest.raises(ContentIntegrityError):
        load_registry(content_copy).verify_all()


def test_a_changed_retired_file_is_caught_too(content_copy: Path):
    stylesheet = content_copy / "themes/default/v1/theme.css"
    stylesheet.write_text(stylesheet.read_text().replace("A4", "letter"))

    with pytest.raises(ContentIntegrityError, match=r"theme\.css.*retired content default@v1"):
        load_registry(content_copy).verify_all()


def test_a_changed_template_is_caught_even_after_it_was_compiled(content_copy: Path):
    registry = load_registry(content_copy)
    entry = registry.get("invoice_email_text")
    registry.template(entry)
    template_file = entry.file_path()
    template_file.write_text(template_file.read_text() + "{{ 1 }}")

    with pytest.raises(ContentIntegrityError, match="invoice_email_text@v1"):
        registry.template(entry)


def test_a_draft_may_change_without_a_new_version(content_copy: Path):
    version = _add_version(content_copy, "invoice", "draft", "2018-01-01", "draft")
    registry = load_registry(content_copy)
    draft = registry.get("invoice", status="draft")
    draft.file_path().write_text(draft.file_path().read_text() + "<!-- edited -->")

    assert registry.get("invoice", status="draft").version == version


def test_a_registry_entry_without_a_required_field_names_entry_and_field(content_copy: Path):
    data = _registry_data(content_copy)
    index = next(i for i, e in enumerate(data["entries"]) if e["id"] == "default")
    del data["entries"][index]["effective_from"]
    _write_registry(content_copy, data)

    with pytest.raises(
        ContentRegistryError, match=rf"entry {index + 1} \(`default` v\d\).*effective_from"
    ):
        load_registry(content_copy)


def test_the_template_loader_serves_only_registered_files():
    environment = load_registry(CONTENT_DIR).environment

    for name in ("registry.yaml", "../pyproject.toml", "/etc/passwd"):
        with pytest.raises(TemplateNotFound):
            environment.get_template(name)


def test_the_sandbox_blocks_python_internals():
    environment = load_registry(CONTENT_DIR).environment
    template = environment.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}")

    with pytest.raises(SecurityError):
        template.render()


def test_html_templates_escape_and_text_templates_do_not():
    registry = load_registry(CONTENT_DIR)
    html = registry.template(registry.get("invoice_email_html"))
    text = registry.template(registry.get("invoice_email_text"))
    labels, _ = registry.labels("en")
    context = {
        "labels": labels,
        "locale": "en_US",
        "colors": {"soft": "#fff", "primary": "#000", "text": "#000", "accent": "#00f"},
        "customer_name": "Smith & <script>alert(1)</script>",
        "contact_name": "",
        "invoice_number": "INV-1",
        "issue_date": dt.date(2026, 1, 5),
        "due_date": dt.date(2026, 2, 4),
        "amount_due": Money(Decimal("10"), "USD"),
        "is_settled": False,
        "payment_reference": "INV-1",
        "seller_name": "Seller",
        "portal_url": "",
    }

    rendered_html = html.render(context)
    rendered_text = text.render(context)

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered_html
    assert "<script>" not in rendered_html
    assert "Hello Smith & <script>alert(1)</script>," in rendered_text
    assert "Amount due: $10.00, payable by Feb 4, 2026." in rendered_text


def test_every_language_has_every_label():
    registry = load_registry(CONTENT_DIR)
    entry = registry.get("invoice_labels")
    english = set(registry.read_yaml(entry, "en.yaml"))

    for language in LANGUAGES:
        keys = set(registry.read_yaml(entry, f"{language}.yaml"))
        assert keys == english, language


def test_labels_fall_back_to_english_for_an_unknown_language():
    registry = load_registry(CONTENT_DIR)

    german, entry = registry.labels("de")
    portuguese, _ = registry.labels("pt_BR")

    assert german["invoice_title"] == "Rechnung"
    assert portuguese["invoice_title"] == "Invoice"
    assert entry.ref == registry.get("invoice_labels").ref


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "digits"),
    [
        ("1190", "EUR", "de_DE", 2),
        ("12000", "JPY", "ja_JP", 0),
        ("1234.5", "KWD", "ar_KW", 3),
        ("1234.5", "KWD", "en_US", 3),
    ],
)
def test_money_uses_the_currency_minor_units(amount, currency, locale, digits):
    value = Decimal(amount)

    formatted = money(Money(value, currency), locale)

    assert formatted == format_currency(value, currency, locale=locale, currency_digits=True)
    if digits:
        assert str(value.quantize(Decimal(1).scaleb(-digits))).split(".")[1] in formatted
    else:
        assert "." not in formatted.replace(",", "")


def test_texts_blocks_and_legal_texts_have_every_shipped_language():
    registry = load_registry(CONTENT_DIR)
    ids = ["credit_note_labels", "reminder_labels"] + [
        e.id for e in registry.entries if e.kind in ("blocks", "legal")
    ]

    for content_id in ids:
        entry = registry.versions(content_id)[-1]
        assert set(entry.language_files()) == set(SHIPPED_LANGUAGES), content_id
        if entry.kind == "texts":
            english = set(registry.read_yaml(entry, "en.yaml"))
            for name in entry.language_files().values():
                assert set(registry.read_yaml(entry, name)) == english, (content_id, name)


# --- registry fields --------------------------------------------------------------------


def _with_entry(root: Path, **changes) -> None:
    data = _registry_data(root)
    block = next(e for e in data["entries"] if e["id"] == "account_manager")
    block.update(changes)
    _write_registry(root, data)


def test_targeting_effective_to_and_slots_are_read(content_copy: Path):
    _with_entry(content_copy, targeting={"segment": ["Enterprise", "mid_market"],
                                         "country": "de", "language": "de_at",
                                         "channel": ["PDF"]},
                effective_to="2027-06-30", slot="team_notice")
    entry = load_registry(content_copy).version("account_manager", 1)

    assert entry.targeting.describe() == (
        "segment=enterprise|mid_market; country=DE; language=de-AT; channel=pdf"
    )
    assert (entry.slot, entry.placement, entry.effective_to) == (
        "team_notice", "bottom", dt.date(2027, 6, 30)
    )
    assert entry.is_effective(dt.date(2027, 6, 30)) and not entry.is_effective(
        dt.date(2027, 7, 1)
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"targeting": {"region": "EMEA"}}, r"unknown field\(s\) region"),
        ({"targeting": {"country": "Germany"}}, r"targeting.country: Germany.*ISO 3166"),
        ({"targeting": {"channel": "fax"}}, r"targeting.channel: fax.*pdf, email"),
        ({"targeting": {"segment": []}}, r"targeting.segment` is empty"),
        ({"placement": "sidebar"}, r"needs `placement`, one of top, bottom"),
        ({"effective_to": "2017-12-31"}, r"`effective_to` \(2017-12-31\) is before"),
        ({"approved_by": None}, r"approved entry needs `approved_by` and `approved_at`"),
        ({"sha256": None}, r"field `sha256` is missing"),
    ],
)
def test_a_bad_registry_field_is_named_with_its_entry(content_copy: Path, changes, message):
    _with_entry(content_copy, **changes)

    with pytest.raises(ContentRegistryError, match=rf"\(`account_manager` v1\): .*{message}"):
        load_registry(content_copy)


def test_a_legal_text_needs_a_case_and_an_english_file(content_copy: Path):
    data = _registry_data(content_copy)
    legal = next(e for e in data["entries"] if e["id"] == "late_payment_de")
    del legal["case"]
    _write_registry(content_copy, data)
    with pytest.raises(ContentRegistryError, match="late_payment_de.*field `case`"):
        load_registry(content_copy)

    legal["case"] = "late_payment"
    del legal["sha256"]["en.txt"]
    legal["main"] = "de.txt"
    _write_registry(content_copy, data)
    with pytest.raises(ContentRegistryError, match="late_payment_de.*English file"):
        load_registry(content_copy)


def test_a_draft_without_hashes_consists_of_its_folder(content_copy: Path):
    shutil.copytree(content_copy / "blocks/account_manager/v1",
                    content_copy / "blocks/account_manager/v2")
    data = _registry_data(content_copy)
    data["entries"].append({
        "id": "account_manager", "version": 2, "kind": "blocks", "status": "draft",
        "effective_from": "2018-01-01", "path": "blocks/account_manager/v2",
        "placement": "bottom", "targeting": {"segment": "enterprise"},
    })
    _write_registry(content_copy, data)

    draft = load_registry(content_copy).version("account_manager", 2)

    assert draft.files == tuple(f"{language}.html" for language in sorted(SHIPPED_LANGUAGES))
    assert draft.sha256 == {}


# --- the lock ---------------------------------------------------------------------------


def test_the_shipped_content_folder_keeps_its_lock():
    assert [str(problem) for problem in check_lock(load_registry(CONTENT_DIR))] == []


def test_an_edited_approved_template_is_refused(content_copy: Path):
    template = content_copy / "templates/credit_note/v1/credit_note.html"
    data = bytearray(template.read_bytes())
    data[-2] = ord("X") if data[-2] != ord("X") else ord("Y")  # one byte
    template.write_bytes(bytes(data))
    registry = load_registry(content_copy)

    problems = check_lock(registry)

    assert [problem.path for problem in problems] == ["templates/credit_note/v1/credit_note.html"]
    assert "approved content credit_note@v1 changed after approval" in problems[0].message
    assert "put the change in a new version (v2) of `credit_note`" in problems[0].message
    doc = make_invoice()
    with pytest.raises(ContentIntegrityError, match="credit_note@v1"):
        select_content(registry, doc, document="credit_note", on=dt.date(2026, 6, 1))


def test_a_file_added_to_an_approved_version_breaks_the_lock(content_copy: Path):
    (content_copy / "legal/late_payment_de/v1/pt.txt").write_text("Juros de mora.\n")

    problems = check_lock(load_registry(content_copy))

    assert [p.path for p in problems] == ["legal/late_payment_de/v1/pt.txt"]
    assert "added to approved content late_payment_de@v1 after approval" in problems[0].message


def test_approved_content_may_not_use_a_draft(content_copy: Path):
    shutil.copytree(content_copy / "blocks/account_manager/v1",
                    content_copy / "blocks/account_manager/v2")
    data = _registry_data(content_copy)
    data["entries"].append({
        "id": "account_manager", "version": 2, "kind": "blocks", "status": "draft",
        "effective_from": "2018-01-01", "path": "blocks/account_manager/v2",
        "placement": "bottom",
    })
    # An approved template that includes the draft's file: add it as a new approved version.
    source = content_copy / "templates/credit_note/v1/credit_note.html"
    new_folder = content_copy / "templates/credit_note/v2"
    new_folder.mkdir()
    (new_folder / "credit_note.html").write_text(
        source.read_text() + '{% include "blocks/account_manager/v2/en.html" %}\n'
    )
    credit_v1 = next(e for e in data["entries"] if e["id"] == "credit_note")
    data["entries"].append({
        **credit_v1, "version": 2, "path": "templates/credit_note/v2",
        "sha256": {"credit_note.html": hashlib.sha256(
            (new_folder / "credit_note.html").read_bytes()).hexdigest()},
    })
    _write_registry(content_copy, data)

    problems = check_lock(load_registry(content_copy))

    assert [p.path for p in problems] == ["templates/credit_note/v2/credit_note.html"]
    assert "refers to draft account_manager@v2" in problems[0].message


# --- approving --------------------------------------------------------------------------


def _add_draft(root: Path) -> None:
    """credit_note v2 as a draft (no hashes yet), with a changed footer line."""
    shutil.copytree(root / "templates/credit_note/v1", root / "templates/credit_note/v2")
    template = root / "templates/credit_note/v2/credit_note.html"
    template.write_text(template.read_text().replace("</body>", "<p>v2</p>\n</body>"))
    with (root / "registry.yaml").open("a") as registry:
        registry.write(
            "  # Draft of the next credit note layout.\n"
            "  - id: credit_note\n"
            "    version: 2\n"
            "    kind: template\n"
            "    status: draft\n"
            '    description: "Credit note, v2 footer."\n'
            "    effective_from: 2027-01-01\n"
            "    texts: [invoice_labels, credit_note_labels]\n"
            "    path: templates/credit_note/v2\n"
            "    main: credit_note.html\n"
        )


def test_approve_records_hashes_approver_and_time_and_keeps_the_file(content_copy: Path):
    _add_draft(content_copy)
    before = (content_copy / "registry.yaml").read_text()
    at = dt.datetime(2026, 12, 3, 14, 30, tzinfo=dt.UTC)

    entry = approve(content_copy, "credit_note", 2, "Ana Müller (legal)", at=at)

    after = (content_copy / "registry.yaml").read_text()
    digest = hashlib.sha256(
        (content_copy / "templates/credit_note/v2/credit_note.html").read_bytes()
    ).hexdigest()
    assert (entry.status, entry.approved_by, entry.approved_at) == (
        "approved", "Ana Müller (legal)", at
    )
    assert dict(entry.sha256) == {"credit_note.html": digest}
    assert after.startswith(before.split("  # Draft of the next")[0])  # the rest unchanged
    assert "  # Draft of the next credit note layout.\n" in after
    assert after.endswith(
        "    status: approved\n"
        '    approved_by: "Ana Müller (legal)"\n'
        "    approved_at: 2026-12-03T14:30:00+00:00\n"
        '    description: "Credit note, v2 footer."\n'
        "    effective_from: 2027-01-01\n"
        "    texts: [invoice_labels, credit_note_labels]\n"
        "    path: templates/credit_note/v2\n"
        "    main: credit_note.html\n"
        "    sha256:\n"
        f"      credit_note.html: {digest}\n"
    )
    assert check_lock(load_registry(content_copy)) == []


def test_approve_refuses_anything_but_a_draft(content_copy: Path):
    before = (content_copy / "registry.yaml").read_text()

    with pytest.raises(ContentApprovalError, match=r"late_payment_de@v1 is approved, not a "
                       r"draft.*new version \(v2\)"):
        approve(content_copy, "late_payment_de", 1, "someone")
    assert (content_copy / "registry.yaml").read_text() == before


def test_a_change_after_approval_is_caught(content_copy: Path):
    _add_draft(content_copy)
    approve(content_copy, "credit_note", 2, "Ana")
    template = content_copy / "templates/credit_note/v2/credit_note.html"
    template.write_text(template.read_text().replace("<p>v2</p>", "<p>v2!</p>"))

    problems = check_lock(load_registry(content_copy))

    assert [p.path for p in problems] == ["templates/credit_note/v2/credit_note.html"]
    assert "(v3) of `credit_note`" in problems[0].message


def test_a_plain_text_block_prints_customer_data_escaped(content_copy: Path):
    folder = content_copy / "blocks" / "year_end_closure" / "v1"
    for old in folder.iterdir():
        old.unlink()
    (folder / "en.txt").write_text("Hello {{ doc.buyer.name }}\nSee you in January.\n")
    data = _registry_data(content_copy)
    block = next(e for e in data["entries"] if e["id"] == "year_end_closure")
    block.update(main="en.txt", sha256={
        "en.txt": hashlib.sha256((folder / "en.txt").read_bytes()).hexdigest()
    })
    _write_registry(content_copy, data)
    hostile = "<style>*{display:none}</style><b>pwn</b>"
    base = make_invoice(language="en", locale="en_US", issue_date=dt.date(2026, 12, 10))
    doc = replace(base, buyer=replace(base.buyer, name=hostile))

    html, selection = render_html(doc, load_registry(content_copy))
    block = next(b for b in message_blocks(
        load_registry(content_copy), selection, doc, {}
    ) if b["id"] == "year_end_closure")

    escaped = "&lt;style&gt;*{display:none}&lt;/style&gt;&lt;b&gt;pwn&lt;/b&gt;"
    assert str(block["html"]) == f"Hello {escaped}<br>\nSee you in January."
    assert block["text"] == f"Hello {hostile}\nSee you in January."
    assert f"Hello {escaped}<br>" in html
    assert "<b>pwn</b>" not in html and "<style>*{display:none}" not in html


def test_an_approval_dated_in_the_future_breaks_the_lock(content_copy: Path):
    registry_file = content_copy / "registry.yaml"
    text = registry_file.read_text()
    registry_file.write_text(text.replace("approved_at: 2026-12-04T21:00:00+00:00",
                                          "approved_at: 2999-01-01T00:00:00", 1))

    problems = check_lock(load_registry(content_copy))

    assert [p.message for p in problems if "in the future" in p.message] == [
        "approved_at 2999-01-01T00:00:00+00:00 is in the future: record when it was "
        "approved (q2c content approve does)"]
