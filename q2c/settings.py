"""Configuration from the environment and an optional `q2c.yaml`.

Everything has an embedded default so that a fresh checkout runs the demo with no setup:
the warehouse is a DuckDB file, documents and the mail outbox are folders under `var/`.
An environment variable beats `q2c.yaml`, which beats the default.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from q2c.content.cms import CMS_SOURCES
from q2c.freshness import FreshnessSettings, parse_freshness
from q2c.sources.schema import DEFAULT_SOURCES, SOURCES

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Seller:
    """The legal entity that issues the invoices; printed on every document."""

    name: str = "Northwind Analytics GmbH"
    street: str = "Friedrichstrasse 68"
    postal_code: str = "10117"
    city: str = "Berlin"
    country: str = "DE"
    vat_id: str = "DE811907980"
    email: str = "billing@northwind.example"
    iban: str = "DE89370400440532013000"
    bic: str = "COBADEFFXXX"
    timezone: str = "Europe/Berlin"
    # Peppol participant id as "<EAS scheme>:<id>"; 9930 is the German VAT number scheme.
    peppol_id: str = "9930:DE811907980"
    phone: str = "+49 30 1234567"


@dataclass(frozen=True)
class Settings:
    home: Path
    landing_dir: Path
    warehouse_path: Path
    documents_dir: Path
    outbox_dir: Path
    dagster_home: Path
    content_dir: Path = PROJECT_ROOT / "content"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    as_of: dt.date | None = None
    mail_channel: str = "eml"
    mail_from: str = "Northwind Billing <billing@northwind.example>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    render_workers: int = 0
    ops_store_path: Path | None = None
    einvoice_outbound: str | None = None
    einvoice_rules_dir: Path = PROJECT_ROOT.parent / "shared" / "validators"
    portal_dir: Path | None = None
    portal_base_url: str = "http://127.0.0.1:8080"
    ses_region: str = "eu-central-1"
    ses_endpoint_url: str | None = None
    ses_configuration_set: str | None = None
    ses_bounce_queue_url: str | None = None
    s3_endpoint_url: str | None = None
    bounce_maildir: Path | None = None
    deliver_from: dt.date | None = None
    delivery_lookback_days: int = 45
    delivery_policy_file: Path | None = None
    review_policy_file: Path | None = None
    x12_partners_file: Path | None = None
    edi_inbound: str | None = None
    sftp_key_file: Path | None = None
    sftp_known_hosts: Path | None = None
    attachments_location: str | None = None
    attachment_rules_file: Path | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    cms_sources: tuple[str, ...] = ()
    pull_sources: tuple[str, ...] = ()
    dunning_policy_file: Path | None = None
    dunning_enabled: bool = False
    stripe_webhook_tolerance: int = 300
    seller: Seller = field(default_factory=Seller)
    alert_emails: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = None
    dagster_url: str = "http://127.0.0.1:3000"
    freshness: FreshnessSettings = field(default_factory=FreshnessSettings)
    finance_emails: tuple[str, ...] = ()
    nightly_at: dt.time = dt.time(2, 0)

    @property
    def first_delivery_start(self) -> dt.date:
        """The delivery start a first run fixes when `deliver_from` is not set.

        A first run would otherwise send the ERP's whole history. The day is kept in the
        operational store (`q2c.invoice_delivery.delivery_start`), so an invoice held or
        waiting for review longer than the look-back is still delivered later.
        """
        if self.deliver_from is not None:
            return self.deliver_from
        return self.run_date - dt.timedelta(days=self.delivery_lookback_days)

    @property
    def ops_store(self) -> Path:
        """The SQLite operational store (outbox, delivery events, review decisions)."""
        return Path(self.ops_store_path or self.home / "ops.sqlite")

    @property
    def cms_dir(self) -> Path:
        """Where CMS bodies are stored by hash and publish events wait (`inbox/<source>`)."""
        return self.home / "cms"

    @property
    def einvoice_target(self) -> str:
        """Where e-invoices are dropped for the access point: a folder or s3://bucket/prefix."""
        return self.einvoice_outbound or str(self.home / "edi-outbound")

    @property
    def edi_inbound_source(self) -> str:
        """Where trading partners' 997 acknowledgements arrive (folder, s3:// or sftp://)."""
        return self.edi_inbound or str(self.home / "edi" / "inbound")

    @property
    def attachments_repository(self) -> str:
        """Where supporting documents are looked up: a folder or s3://bucket/prefix."""
        return self.attachments_location or str(self.home / "attachments")

    @property
    def portal_store(self) -> Path:
        """The folder the portal reads published documents from."""
        return Path(self.portal_dir or self.home / "portal")

    @property
    def run_date(self) -> dt.date:
        """The business date of the run: `as_of` when pinned, else today in the seller's
        time zone (due dates are days there: an invoice due today is not overdue)."""
        return self.as_of or business_date(dt.datetime.now(dt.UTC), self.seller.timezone)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def business_date(moment: dt.datetime, timezone: str) -> dt.date:
    """The day `moment` (timezone-aware) falls on in `timezone`, e.g. the seller's.

    At 23:30 UTC on 14 March it is already 15 March in Berlin: that is the business day.
    """
    return moment.astimezone(ZoneInfo(timezone)).date()


def _sources(value: object) -> tuple[str, ...]:
    """The enabled sources: a list in q2c.yaml or a comma-separated `Q2C_SOURCES`."""
    if value is None or value == "":
        return DEFAULT_SOURCES
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = tuple(dict.fromkeys(str(n).strip().lower() for n in names if str(n).strip()))
    if not chosen:
        raise ConfigError(
            f"sources: {value!r} names no source; name at least one of {', '.join(SOURCES)} "
            "(or unset it for the default, salesforce and quickbooks)"
        )
    unknown = [name for name in chosen if name not in SOURCES]
    if unknown:
        raise ConfigError(
            f"sources: unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}"
        )
    return chosen


# The sources q2c has its own API pull connector for (q2c.sources.connectors.CONNECTORS).
PULL_CONNECTORS = ("hubspot", "salesforce", "stripe", "quickbooks")


def _pull_sources(value: object, sources: tuple[str, ...]) -> tuple[str, ...]:
    """The sources pulled through their API before each load (`Q2C_PULL_SOURCES`).

    Each must have a pull connector and be enabled in `sources`: a pull of a source that is
    not loaded would land files nobody reads.
    """
    if value is None or value == "":
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = tuple(dict.fromkeys(str(n).strip().lower() for n in names if str(n).strip()))
    unknown = [name for name in chosen if name not in PULL_CONNECTORS]
    if unknown:
        raise ConfigError(
            f"pull_sources (Q2C_PULL_SOURCES): no pull connector for {', '.join(unknown)}; "
            f"q2c pulls from {', '.join(PULL_CONNECTORS)}. Land other sources as files"
        )
    disabled = [name for name in chosen if name not in sources]
    if disabled:
        raise ConfigError(
            f"pull_sources (Q2C_PULL_SOURCES): {', '.join(disabled)} not among the enabled "
            f"sources ({', '.join(sources)}); add it to sources (Q2C_SOURCES) or remove it "
            "from pull_sources"
        )
    return chosen


def _cms_sources(value: object) -> tuple[str, ...]:
    """The CMS sources content is read from: a list in q2c.yaml or `Q2C_CMS_SOURCES`."""
    if value is None or value == "":
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = tuple(dict.fromkeys(str(n).strip().lower() for n in names if str(n).strip()))
    unknown = [name for name in chosen if name not in CMS_SOURCES]
    if unknown:
        raise ConfigError(
            f"cms_sources (Q2C_CMS_SOURCES): unknown source(s) {', '.join(unknown)}; choose "
            f"from {', '.join(CMS_SOURCES)}"
        )
    return chosen


def _env(name: str, config: dict, key: str, default: object) -> object:
    if name in os.environ and os.environ[name] != "":
        return os.environ[name]
    return config.get(key, default)


def _as_bool(value: object) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _seller(values: object, config_path: Path) -> Seller:
    """The seller from the `seller:` block, all of it or none of it.

    A partial block would print the demo seller's IBAN and VAT id on real invoices, so a
    block that leaves out any field, names one q2c does not know, or holds a value that
    cannot be right (an IBAN whose check digits fail) is refused. Without a `seller:` key
    the demo seller is used, and the run summary says so.
    """
    if values == {}:
        return Seller()
    if not isinstance(values, dict) or not values:
        raise ConfigError(
            f"the seller: block of {config_path} must list the seller's fields "
            f"({', '.join(f.name for f in fields(Seller))}), one per line"
        )
    known = [f.name for f in fields(Seller)]
    unknown = sorted(set(values) - set(known))
    missing = [name for name in known if name not in values
               or values[name] is None or not str(values[name]).strip()]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"unknown keys {', '.join(unknown)}")
        if missing:
            problems.append(f"missing or empty keys {', '.join(missing)}")
        raise ConfigError(
            f"the seller: block of {config_path} has {'; '.join(problems)}. Give every "
            f"field ({', '.join(known)}), so no demo value ends up on a real invoice"
        )
    seller = Seller(**{name: str(values[name]).strip() for name in known})
    wrong = _seller_problems(seller)
    if wrong:
        raise ConfigError(f"the seller: block of {config_path}: {'; '.join(wrong)}")
    return seller


def _seller_problems(seller: Seller) -> list[str]:
    problems = []
    if not re.fullmatch(r"[A-Z]{2}", seller.country):
        problems.append(f"country {seller.country!r} is not an ISO 3166 code such as DE")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", seller.email):
        problems.append(f"email {seller.email!r} is not an email address")
    if not _iban_ok(seller.iban):
        problems.append(f"iban {seller.iban!r} fails its check digits")
    if not re.fullmatch(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", seller.bic):
        problems.append(f"bic {seller.bic!r} is not 8 or 11 letters and digits")
    if not re.fullmatch(r"\d{4}:[^\s:]{1,50}", seller.peppol_id):
        problems.append(f"peppol_id {seller.peppol_id!r} is not '<scheme>:<id>', e.g. "
                        "9930:DE811907980")
    if not re.fullmatch(r"[A-Z]{2}[0-9A-Z+*.]{2,13}", seller.vat_id.replace(" ", "")):
        problems.append(f"vat_id {seller.vat_id!r} does not start with its country code")
    try:
        ZoneInfo(seller.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {seller.timezone!r} is not an IANA zone such as "
                        "Europe/Berlin")
    return problems


def _iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97."""
    text = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", text):
        return False
    digits = "".join(str(int(char, 36)) for char in text[4:] + text[:4])
    return int(digits) % 97 == 1


def _lookback(value: object) -> int:
    try:
        days = int(str(value))
    except ValueError:
        days = -1
    if days < 0:
        raise ConfigError(
            f"delivery_lookback_days (Q2C_DELIVERY_LOOKBACK_DAYS) is {value!r}; give a whole "
            "number of days, 0 or more"
        )
    return days


def _optional_date(value: object) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(
            f"deliver_from (Q2C_DELIVER_FROM) is {value!r}; write a day as YYYY-MM-DD"
        ) from exc


def _webhook_tolerance(value: object) -> int:
    """Seconds a webhook signature's timestamp may be from now (Stripe's libraries: 300)."""
    try:
        seconds = int(str(value))
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ConfigError(
            f"stripe_webhook_tolerance (Q2C_STRIPE_WEBHOOK_TOLERANCE) is {value!r}; give a "
            "whole number of seconds above 0 (Stripe's own libraries use 300)"
        )
    return seconds


def _optional_text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _optional_path(value: object) -> Path | None:
    return Path(str(value)) if value not in (None, "") else None


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file, the key and the fix."""


def _alert_emails(value: object) -> tuple[str, ...]:
    """Who hears of a failed run: a list in q2c.yaml or a comma-separated Q2C_ALERT_EMAIL."""
    if value is None or value == "":
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))


def _freshness(value: object) -> FreshnessSettings:
    try:
        return parse_freshness(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _finance_emails(value: object) -> tuple[str, ...]:
    """Where the reconciliation summary goes: a list in q2c.yaml or a comma-separated
    `Q2C_FINANCE_EMAIL`; every entry must be one bare address."""
    if value is None or value == "":
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = tuple(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
    wrong = [n for n in chosen if not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[A-Za-z]{2,}", n)]
    if wrong:
        raise ConfigError(
            f"finance_email (Q2C_FINANCE_EMAIL): {', '.join(map(repr, wrong))} is not an email "
            "address; give bare addresses such as finance@example.com, comma-separated"
        )
    return chosen


def _nightly_at(value: object) -> dt.time:
    """The time of day the nightly job starts, in the seller's time zone (`HH:MM`).

    YAML 1.1 reads an unquoted `02:00` as the base-60 number 120; that is taken as 02:00.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value // 60}:{value % 60:02d}"
    text = str(value).strip()
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if match is None:
        raise ConfigError(
            f"nightly_at (Q2C_NIGHTLY_AT) is {value!r}; give a time of day as HH:MM in the "
            "seller's time zone, e.g. 02:00"
        )
    return dt.time(int(match.group(1)), int(match.group(2)))


CONFIG_KEYS = frozenset("""
    home landing_dir warehouse_path documents_dir outbox_dir dagster_home as_of
    mail_channel mail_from smtp_host smtp_port smtp_user smtp_password smtp_starttls
    render_workers ops_store einvoice_outbound einvoice_rules portal_dir portal_base_url
    ses_region ses_endpoint_url ses_configuration_set ses_bounce_queue_url s3_endpoint_url
    bounce_maildir deliver_from delivery_lookback_days delivery_policy review_policy seller
    attachments attachment_rules
    x12_partners edi_inbound sftp_key_file sftp_known_hosts sources cms_sources pull_sources
    dunning_policy dunning_enabled
    stripe_webhook_tolerance
    alert_email alert_webhook_url alert_webhook_secret dagster_url freshness
    finance_email nightly_at
""".split())


def _read_config(config_path: Path, named: bool) -> dict:
    """The q2c.yaml mapping; a file named by Q2C_CONFIG must exist, keys must be known."""
    if not config_path.is_file():
        if named:
            raise ConfigError(
                f"Q2C_CONFIG names {config_path}, which is not a file: fix the path or unset "
                "Q2C_CONFIG"
            )
        return {}
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path} must be a mapping of settings (key: value)")
    unknown = sorted(set(map(str, config)) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(
            f"{config_path} has unknown keys {', '.join(unknown)}: the keys q2c reads are "
            f"{', '.join(sorted(CONFIG_KEYS))}"
        )
    return config


def load_settings(config_file: Path | None = None) -> Settings:
    """Build settings from `Q2C_*` environment variables and `q2c.yaml` (if present)."""
    named = "Q2C_CONFIG" in os.environ or config_file is not None
    config_path = Path(os.environ.get("Q2C_CONFIG", config_file or PROJECT_ROOT / "q2c.yaml"))
    config = _read_config(config_path, named)

    home = Path(str(_env("Q2C_HOME", config, "home", PROJECT_ROOT / "var"))).resolve()
    as_of = _env("Q2C_AS_OF", config, "as_of", None)
    seller_config = config.get("seller", {})
    sources = _sources(_env("Q2C_SOURCES", config, "sources", None))

    return Settings(
        home=home,
        landing_dir=Path(str(_env("Q2C_LANDING_DIR", config, "landing_dir", home / "landing"))),
        warehouse_path=Path(
            str(_env("Q2C_WAREHOUSE", config, "warehouse_path", home / "warehouse.duckdb"))
        ),
        documents_dir=Path(
            str(_env("Q2C_DOCUMENTS_DIR", config, "documents_dir", home / "documents"))
        ),
        outbox_dir=Path(str(_env("Q2C_OUTBOX_DIR", config, "outbox_dir", home / "outbox"))),
        dagster_home=Path(str(_env("DAGSTER_HOME", config, "dagster_home", home / "dagster"))),
        as_of=dt.date.fromisoformat(str(as_of)) if as_of else None,
        mail_channel=str(_env("Q2C_MAIL_CHANNEL", config, "mail_channel", "eml")),
        mail_from=str(
            _env("Q2C_MAIL_FROM", config, "mail_from", Settings.mail_from)
        ),
        smtp_host=str(_env("Q2C_SMTP_HOST", config, "smtp_host", "127.0.0.1")),
        smtp_port=int(_env("Q2C_SMTP_PORT", config, "smtp_port", 25)),
        smtp_user=_env("Q2C_SMTP_USER", config, "smtp_user", None),
        smtp_password=_env("Q2C_SMTP_PASSWORD", config, "smtp_password", None),
        smtp_starttls=_as_bool(_env("Q2C_SMTP_STARTTLS", config, "smtp_starttls", False)),
        render_workers=int(_env("Q2C_RENDER_WORKERS", config, "render_workers", 0)),
        ops_store_path=_optional_path(_env("Q2C_OPS_STORE", config, "ops_store", None)),
        einvoice_outbound=_env("Q2C_EINVOICE_OUTBOUND", config, "einvoice_outbound", None),
        einvoice_rules_dir=Path(
            str(_env("Q2C_EINVOICE_RULES", config, "einvoice_rules",
                     Settings.einvoice_rules_dir))
        ),
        portal_dir=_optional_path(_env("Q2C_PORTAL_DIR", config, "portal_dir", None)),
        portal_base_url=str(
            _env("Q2C_PORTAL_BASE_URL", config, "portal_base_url", Settings.portal_base_url)
        ),
        ses_region=str(_env("Q2C_SES_REGION", config, "ses_region", Settings.ses_region)),
        ses_endpoint_url=_env("Q2C_SES_ENDPOINT_URL", config, "ses_endpoint_url", None),
        ses_configuration_set=_env(
            "Q2C_SES_CONFIGURATION_SET", config, "ses_configuration_set", None
        ),
        ses_bounce_queue_url=_env(
            "Q2C_SES_BOUNCE_QUEUE_URL", config, "ses_bounce_queue_url", None
        ),
        s3_endpoint_url=_env("Q2C_S3_ENDPOINT_URL", config, "s3_endpoint_url", None),
        bounce_maildir=_optional_path(
            _env("Q2C_BOUNCE_MAILDIR", config, "bounce_maildir", None)
        ),
        deliver_from=_optional_date(_env("Q2C_DELIVER_FROM", config, "deliver_from", None)),
        delivery_lookback_days=_lookback(_env("Q2C_DELIVERY_LOOKBACK_DAYS", config,
                                              "delivery_lookback_days", 45)),
        delivery_policy_file=_optional_path(
            _env("Q2C_DELIVERY_POLICY", config, "delivery_policy", None)
        ),
        review_policy_file=_optional_path(
            _env("Q2C_REVIEW_POLICY", config, "review_policy", None)
        ),
        x12_partners_file=_optional_path(
            _env("Q2C_X12_PARTNERS", config, "x12_partners", None)
        ),
        edi_inbound=_env("Q2C_EDI_INBOUND", config, "edi_inbound", None),
        sftp_key_file=_optional_path(_env("Q2C_SFTP_KEY", config, "sftp_key_file", None)),
        sftp_known_hosts=_optional_path(
            _env("Q2C_SFTP_KNOWN_HOSTS", config, "sftp_known_hosts", None)
        ),
        sources=sources,
        pull_sources=_pull_sources(_env("Q2C_PULL_SOURCES", config, "pull_sources", None),
                                   sources),
        stripe_webhook_tolerance=_webhook_tolerance(_env(
            "Q2C_STRIPE_WEBHOOK_TOLERANCE", config, "stripe_webhook_tolerance", 300)),
        cms_sources=_cms_sources(_env("Q2C_CMS_SOURCES", config, "cms_sources", None)),
        attachments_location=_optional_text(
            _env("Q2C_ATTACHMENTS", config, "attachments", None)
        ),
        attachment_rules_file=_optional_path(
            _env("Q2C_ATTACHMENT_RULES", config, "attachment_rules", None)
        ),
        seller=_seller(seller_config, config_path),
        dunning_policy_file=_optional_path(
            _env("Q2C_DUNNING_POLICY", config, "dunning_policy", None)
        ),
        dunning_enabled=_as_bool(_env("Q2C_DUNNING_ENABLED", config, "dunning_enabled", False)),
        alert_emails=_alert_emails(_env("Q2C_ALERT_EMAIL", config, "alert_email", None)),
        alert_webhook_url=_optional_text(
            _env("Q2C_ALERT_WEBHOOK_URL", config, "alert_webhook_url", None)
        ),
        alert_webhook_secret=_optional_text(
            _env("Q2C_ALERT_WEBHOOK_SECRET", config, "alert_webhook_secret", None)
        ),
        dagster_url=str(_env("Q2C_DAGSTER_URL", config, "dagster_url", Settings.dagster_url)),
        freshness=_freshness(_env("Q2C_FRESHNESS", config, "freshness", None)),
        finance_emails=_finance_emails(_env("Q2C_FINANCE_EMAIL", config, "finance_email", None)),
        nightly_at=_nightly_at(_env("Q2C_NIGHTLY_AT", config, "nightly_at", "02:00")),
    )
