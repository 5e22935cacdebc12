"""A stage asked to write over its own input refuses in one line (its output is also its resume state)."""

import pandas as pd
import pytest

from kinema.data.table import read_table, write_table


@pytest.mark.parametrize("stage", [("info",), ("scenes",), ("score", "blur")])
def test_stage_with_output_equal_to_input_refuses_and_leaves_the_table(tmp_path, kinema_cli, stage):
    table = tmp_path / "t.csv"
    write_table(pd.DataFrame({"path": [str(tmp_path / "missing.mp4")]}), table)
    before = table.read_bytes()
    for output in (table, tmp_path / "." / "t.csv"):
        result = kinema_cli("data", *stage, table, "-o", output, "--workers", 1, "--no-progress")
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: -o ") and "is the input table" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert table.read_bytes() == before


def test_filter_in_place_rewrites_the_table(tmp_path, kinema_cli):
    table = tmp_path / "t.csv"
    write_table(pd.DataFrame({"path": ["/a.mp4", "/b.mp4"], "num_frames": [4, 40]}), table)
    result = kinema_cli("data", "filter", table, "-o", table, "--fmin", 10)
    assert result.exit_code == 0, result.output
    assert read_table(table)["path"].tolist() == ["/b.mp4"]
