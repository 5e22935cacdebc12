from __future__ import annotations

import pandas as pd
import pytest

from kinema.core import KinemaError
from kinema.data import filters
from kinema.data.table import merge_tables, read_table, shard_table, write_table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_and_no_partial_files(tmp_path, suffix):
    table = pd.DataFrame({"path": ["/a.mp4", "/b.mp4"], "text": ["x", "y"], "num_frames": [16, 32]})
    path = write_table(table, tmp_path / f"meta{suffix}")
    pd.testing.assert_frame_equal(read_table(path), table)
    assert [p.name for p in tmp_path.iterdir()] == [f"meta{suffix}"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(KinemaError, match="does not exist"):
        read_table(tmp_path / "none.csv")
    with pytest.raises(KinemaError, match=r"\*.csv or \*.parquet"):
        read_table(tmp_path / "x.json")
    pd.DataFrame({"file": [1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(KinemaError, match="lacks column"):
        read_table(tmp_path / "t.csv")


def test_shards_concatenate_back():
    table = pd.DataFrame({"path": [f"/{i}" for i in range(10)]})
    parts = [shard_table(table, i, 3) for i in range(3)]
    assert [len(p) for p in parts] == [3, 3, 4]
    pd.testing.assert_frame_equal(merge_tables(parts), table)


def test_join_merge_adds_columns():
    a = pd.DataFrame({"path": ["/a", "/b"], "flow": [1.0, 2.0]})
    b = pd.DataFrame({"path": ["/b", "/a"], "ocr": [0.5, 0.0], "flow": [9.0, 9.0]})
    merged = merge_tables([a, b], join=True)
    assert merged.to_dict("list") == {"path": ["/a", "/b"], "flow": [1.0, 2.0], "ocr": [0.0, 0.5]}


def test_filters():
    table = pd.DataFrame({
        "path": ["/a", "/b", "/c", "/d"],
        "text": ["The video shows a cat.", "", "see https://x.y now", "a dog"],
        "num_frames": [10, 40, 80, 120],
        "aes": [4.0, 5.5, 6.0, None],
        "cmotion": ["static", "pan left", "unknown", "zoom in"],
        "flow_error": [None, None, "bad", None],
    })
    out, tags = filters.apply(table, fmin=20, aesmin=5.0)
    assert out["path"].tolist() == ["/b", "/c"] and tags == ["fmin20", "aesmin5"]
    assert filters.apply(table, drop_errors=True)[0]["path"].tolist() == ["/a", "/b", "/d"]
    assert filters.apply(table, remove_empty_caption=True, remove_url=True)[0]["path"].tolist() == ["/a", "/d"]
    assert filters.refine_llm_caption("The video shows a cat.") == "A cat."
    merged = filters.merge_cmotion(table)["text"].tolist()
    assert merged[0] == "The video shows a cat. The camera is static." and merged[2] == "see https://x.y now"
    with pytest.raises(KinemaError, match="run the stage"):
        filters.apply(table.drop(columns="aes"), aesmin=5)


def test_cli_convert_filter_split_merge(tmp_path, kinema_cli):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b.mp4", "a.webp", "notes.txt", "c.gif"):
        (folder / name).write_bytes(b"")
    assert kinema_cli("data", "convert", folder, "-o", tmp_path / "raw.parquet").exit_code == 0
    raw = read_table(tmp_path / "raw.parquet")
    assert [p.split("/")[-1] for p in raw["path"]] == ["a.webp", "b.mp4", "c.gif"]
    assert kinema_cli("data", "convert", tmp_path / "raw.parquet", "-o", tmp_path / "raw.csv").exit_code == 0
    result = kinema_cli("data", "split", tmp_path / "raw.csv", "-n", 2)
    assert result.exit_code == 0
    parts = sorted(tmp_path.glob("raw_part*of2.csv"))
    assert len(parts) == 2
    assert kinema_cli("data", "merge", *parts, "-o", tmp_path / "merged.csv").exit_code == 0
    pd.testing.assert_frame_equal(read_table(tmp_path / "merged.csv"), read_table(tmp_path / "raw.csv"))
    result = kinema_cli("data", "filter", tmp_path / "raw.csv", "--ext")
    assert result.exit_code == 0 and (tmp_path / "raw_ext.csv").exists()
