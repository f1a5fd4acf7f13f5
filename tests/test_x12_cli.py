"""`q2c einvoice validate` checks X12 files with q2c's validator, without the EN 16931 rules."""

from __future__ import annotations

from pathlib import Path

from test_x12_writer import BIGBOX_810

from q2c.cli import main


def test_validate_passes_a_good_810_and_names_the_broken_segment_of_a_bad_one(
    tmp_path: Path, capsys, monkeypatch
):
    monkeypatch.setenv("Q2C_EINVOICE_RULES", str(tmp_path / "no-rules"))  # X12 needs none
    good = tmp_path / "good.x12"
    good.write_text("".join(f"{segment}~\n" for segment in BIGBOX_810))
    broken = [segment if not segment.startswith("SE*") else "SE*99*0003"
              for segment in BIGBOX_810]
    bad = tmp_path / "bad.x12"
    bad.write_text("".join(f"{segment}~\n" for segment in broken))

    code = main(["einvoice", "validate", str(good), str(bad)])

    out = capsys.readouterr().out
    assert code == 1
    assert f"{good}: valid (X12)" in out
    assert f"{bad}: rejected (X12)" in out
    se_position = len(BIGBOX_810) - 2  # SE is followed only by GE and IEA
    assert f"se01-count SE (segment {se_position}, SE01)" in out
    assert "1 of 2 files valid" in out
