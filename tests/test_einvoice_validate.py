"""The validator runs the official rules and names the rule an invoice breaks.

It is checked three ways: on real documents (a valid Peppol invoice passes, a copy with a
wrong payable amount is rejected by BR-CO-16 and nothing else), on the CEN project's own
unit tests for the UBL rules (each vefa test set says which rule must fire or stay silent
on each fragment), and on a missing rules folder (the error says where the releases are
and which variable points q2c at them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from q2c.einvoice.validate import (
    CEN_UBL_XSLT,
    FATAL,
    RULES_ENV_VAR,
    WARNING,
    EInvoiceValidator,
    RulesNotFoundError,
    validator_for,
)
from q2c.settings import PROJECT_ROOT, load_settings

EXAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "einvoice-examples"
BASE_EXAMPLE = EXAMPLES / "peppol-bis3-examples" / "base-example.xml"
CII_EXAMPLE = EXAMPLES / "en16931-cii-examples" / "CII_example4.xml"
RULE_TESTS = EXAMPLES / "en16931-ubl-invoice-rule-tests"
VEFA = "{http://difi.no/xsd/vefa/validator/1.0}"

# The rule families the brief asks for, each of which must be among the test sets run.
REQUIRED_RULE_SETS = (
    "BR-CO-10", "BR-CO-13", "BR-CO-14", "BR-CO-15", "BR-CO-16",
    "BR-S-01", "BR-S-08-1", "BR-S-09", "BR-AE-01", "BR-AE-02", "BR-AE-08", "BR-AE-10",
)  # fmt: skip


@pytest.fixture(scope="module")
def validator() -> EInvoiceValidator:
    return validator_for(load_settings().einvoice_rules_dir)


def test_a_valid_peppol_invoice_has_no_fatal_finding(validator):
    report = validator.validate_ubl(BASE_EXAMPLE.read_bytes())
    assert report.checked == (
        "ubl21/maindoc/UBL-Invoice-2.1.xsd",
        "en16931/EN16931-UBL-validation.xslt",
        "peppol/PEPPOL-EN16931-UBL.xslt",
    )
    assert report.fatal == []
    assert report.ok


def test_a_wrong_payable_amount_is_rejected_by_br_co_16(validator):
    original = BASE_EXAMPLE.read_bytes()
    payable = b'<cbc:PayableAmount currencyID="EUR">1656.25</cbc:PayableAmount>'
    assert original.count(payable) == 1
    broken = original.replace(payable, payable.replace(b"1656.25", b"1600.00"))

    report = validator.validate_ubl(broken)

    assert not report.ok
    assert [(f.rule, f.severity) for f in report.findings] == [("BR-CO-16", FATAL)]
    (finding,) = report.fatal
    assert "Amount due for payment (BT-115)" in finding.message
    assert finding.location.endswith("*:LegalMonetaryTotal[namespace-uri()="
                                     "'urn:oasis:names:specification:ubl:schema:xsd:"
                                     "CommonAggregateComponents-2'][1]")
    assert "BR-CO-16" in report.summary()


def test_a_wrong_payable_amount_in_cii_is_rejected_by_br_co_16(validator):
    original = CII_EXAMPLE.read_bytes()
    payable = b"<ram:DuePayableAmount>4675</ram:DuePayableAmount>"
    assert original.count(payable) == 1
    report = validator.validate_cii(original.replace(payable, payable.replace(b"4675", b"4600")))
    assert report.rules() == {"BR-CO-16"}


def test_a_misplaced_element_is_an_xsd_finding_with_its_line(validator):
    original = BASE_EXAMPLE.read_bytes()
    moved = original.replace(
        b"<cbc:ID>Snippet1</cbc:ID>", b"<cbc:ID>Snippet1</cbc:ID><cbc:Note>early</cbc:Note>"
    )
    line = moved[: moved.index(b"<cbc:Note>early")].count(b"\n") + 1

    report = validator.validate_ubl(moved)

    xsd = [f for f in report.findings if f.rule == "XSD"]
    assert len(xsd) == 1
    assert (xsd[0].severity, xsd[0].location) == (FATAL, f"line {line}")
    assert "Note': This element is not expected" in xsd[0].message


def test_a_warning_does_not_reject(validator):
    original = BASE_EXAMPLE.read_bytes()
    with_uuid = original.replace(
        b"<cbc:ID>Snippet1</cbc:ID>", b"<cbc:ID>Snippet1</cbc:ID><cbc:UUID>1f3a</cbc:UUID>"
    )
    report = validator.validate_ubl(with_uuid)
    assert [(f.rule, f.severity) for f in report.findings] == [("UBL-CR-005", WARNING)]
    assert report.ok
    assert report.rules(WARNING) == {"UBL-CR-005"}


def test_not_xml_and_the_wrong_syntax_are_findings_not_crashes(validator):
    assert validator.validate_ubl(b"<Invoice>").rules() == {"XML"}
    assert validator.validate_ubl(CII_EXAMPLE.read_bytes()).rules() == {"ROOT"}
    assert validator.validate_cii(BASE_EXAMPLE.read_bytes()).rules() == {"ROOT"}


def test_a_missing_rules_folder_says_where_to_get_the_rules(tmp_path):
    with pytest.raises(RulesNotFoundError) as raised:
        EInvoiceValidator(tmp_path / "no-such-folder")
    message = str(raised.value)
    assert RULES_ENV_VAR == "Q2C_EINVOICE_RULES"
    assert "Q2C_EINVOICE_RULES" in message
    assert str(tmp_path / "no-such-folder") in message
    assert "https://github.com/ConnectingEurope/eInvoicing-EN16931/releases" in message
    assert "OpenPEPPOL/peppol-bis-invoice-3" in message
    assert "https://docs.oasis-open.org/ubl/os-UBL-2.1/" in message


def test_an_empty_rules_folder_names_the_missing_file(tmp_path):
    validator = EInvoiceValidator(tmp_path)
    with pytest.raises(RulesNotFoundError, match="UBL-Invoice-2.1.xsd is missing"):
        validator.validate_ubl(BASE_EXAMPLE.read_bytes())
    with pytest.raises(RulesNotFoundError, match="EN16931-CII-validation.xslt is missing"):
        validator.validate_cii(CII_EXAMPLE.read_bytes())


def test_one_validator_per_rules_folder(validator):
    rules_dir = load_settings().einvoice_rules_dir
    assert validator_for(str(rules_dir)) is validator
    assert validator_for(Path(rules_dir) / ".." / rules_dir.name) is validator


# --- the CEN project's unit tests for the UBL rules ------------------------------------


def rule_test_cases(path: Path) -> list[tuple[bytes, str, str]]:
    """(fragment, 'success'|'error'|'warning', rule) for every test in a vefa test set."""
    cases = []
    for test in etree.parse(str(path)).getroot().iter(f"{VEFA}test"):
        (fragment,) = [c for c in test if isinstance(c.tag, str) and not c.tag.startswith(VEFA)]
        for expected in test.find(f"{VEFA}assert"):
            outcome = etree.QName(expected).localname
            if outcome in ("success", "error", "warning"):
                cases.append((etree.tostring(fragment), outcome, expected.text.strip()))
    return cases


RULE_TEST_FILES = sorted(RULE_TESTS.glob("*.xml"))


def test_the_rule_test_sets_cover_the_required_rules():
    names = {path.stem for path in RULE_TEST_FILES}
    assert set(REQUIRED_RULE_SETS) <= names
    assert len(RULE_TEST_FILES) == 206


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.stem)
def test_cen_ubl_rules_agree_with_the_cen_rule_tests(path: Path, validator):
    cases = rule_test_cases(path)
    assert cases, f"{path.name} has no test"
    disagreements = []
    for index, (fragment, outcome, rule) in enumerate(cases):
        findings = validator.run_stylesheet(CEN_UBL_XSLT, fragment)
        fired = {(f.rule, f.severity) for f in findings}
        if outcome == "success":
            agrees = rule not in {f.rule for f in findings}
        else:
            agrees = (rule, FATAL if outcome == "error" else WARNING) in fired
        if not agrees:
            disagreements.append((index, outcome, rule, sorted(fired)))
    assert disagreements == []


def test_the_validate_command_passes_good_files_and_names_the_broken_rule(
    tmp_path, capsys, monkeypatch
):
    from q2c.cli import main

    broken = tmp_path / "broken.xml"
    broken.write_bytes(BASE_EXAMPLE.read_bytes().replace(
        b'<cbc:PayableAmount currencyID="EUR">', b'<cbc:PayableAmount currencyID="EUR">9', 1))
    monkeypatch.delenv("Q2C_EINVOICE_RULES", raising=False)

    assert main(["einvoice", "validate", str(BASE_EXAMPLE), str(CII_EXAMPLE)]) == 0
    assert "2 of 2 files valid" in capsys.readouterr().out
    assert main(["einvoice", "validate", str(BASE_EXAMPLE), str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"{broken}: rejected" in out and "fatal BR-CO-16" in out
    assert "1 of 2 files valid" in out

    monkeypatch.setenv("Q2C_EINVOICE_RULES", str(tmp_path / "none"))
    assert main(["einvoice", "validate", str(BASE_EXAMPLE)]) == 2
    assert "Q2C_EINVOICE_RULES" in capsys.readouterr().err
