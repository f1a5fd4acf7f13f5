"""The content registry: versions, approvals, integrity, the sandbox and the label texts."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from babel.numbers import format_currency
from jinja2 import TemplateNotFound
from jinja2.exceptions import SecurityError

from q2c.content.formatting import money
from q2c.content.registry import (
    ContentIntegrityError,
    ContentNotFoundError,
    ContentRegistryError,
    load_registry,
)
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
    """Copy the newest version of an entry to the next version with a changed main file.

    Returns:
        The new version number.
    """
    data = _registry_data(root)
    base = max((e for e in data["entries"] if e["id"] == content_id), key=lambda e: e["version"])
    version = base["version"] + 1
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

    for content_id, kind, version in [
        ("invoice", "template", 2),
        ("default", "theme", 2),
        ("invoice_labels", "texts", 2),
        ("invoice_email_html", "template", 1),
        ("invoice_email_text", "template", 1),
    ]:
        entry = registry.get(content_id)
        assert (entry.version, entry.status, entry.kind) == (version, "approved", kind)
        assert entry.approved_by and entry.approved_at
        for name, recorded in entry.sha256.items():
            actual = hashlib.sha256(entry.file_path(name).read_bytes()).hexdigest()
            assert actual == recorded, f"{entry.ref} {name}"


def test_replaced_versions_are_retired_with_their_files_unchanged():
    registry = load_registry(CONTENT_DIR)

    for content_id in ("invoice", "default", "invoice_labels"):
        statuses = [(e.version, e.status) for e in registry.versions(content_id)]
        assert statuses == [(1, "retired"), (2, "approved")], content_id
        # v2 replaces v1 on every date v1 covered, so pinned past runs still resolve.
        v1, v2 = registry.versions(content_id)
        assert v2.effective_from == v1.effective_from == dt.date(2018, 1, 1)
        assert registry.get(content_id, on=dt.date(2018, 1, 1)).version == 2
    registry.verify_all()


def test_theme_has_stylesheet_colors_logo_and_fonts():
    registry = load_registry(CONTENT_DIR)
    theme = registry.get("default")
    settings = registry.read_yaml(theme, "theme.yaml")

    assert set(theme.sha256) == {"theme.css", "theme.yaml", "logo.svg"}
    assert settings["colors"]["primary"].startswith("#")
    assert settings["fonts"] == {"body": "DejaVu Sans", "japanese": "Noto Sans CJK JP"}
    assert theme.file_path("logo.svg").read_text().startswith("<svg")


def test_get_picks_the_newest_approved_version_in_effect(content_copy: Path):
    current = load_registry(content_copy).get("invoice").version
    future = _add_version(content_copy, "invoice", "approved", "2030-01-01", "future")
    draft = _add_version(content_copy, "invoice", "draft", "2018-01-01", "draft")
    registry = load_registry(content_copy)

    assert (current, future, draft) == (2, 3, 4)
    assert registry.get("invoice", on=dt.date(2029, 12, 31)).version == current
    assert registry.get("invoice", on=dt.date(2030, 1, 1)).version == future
    assert registry.get("invoice", status="draft").version == draft
    assert registry.get_preview("invoice").version == draft
    assert registry.get_preview("default").version == 2


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
    stylesheet = content_copy / "themes/default/v2/theme.css"
    stylesheet.write_text(stylesheet.read_text().replace("A4", "letter"))

    with pytest.raises(
        ContentIntegrityError, match=r"theme\.css.*approved content default@v2.*\(v3\)"
    ):
        registry.get("default")
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
        ContentRegistryError, match=rf"entry {index + 1} \(`default`\).*effective_from"
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
    assert entry.ref == "invoice_labels@v2"


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
