"""``pipeline.run`` with the arguments distilabel users pass for big batches: the file-system
hand-over switches are accepted and the rows are the same."""

from __future__ import annotations

from pathlib import Path

from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts


def test_file_system_hand_over_arguments_give_the_same_rows(tmp_path: Path) -> None:
    with Pipeline(name="fs-hand-over", cache_dir=tmp_path / "cache") as pipeline:
        load = LoadDataFromDicts(data=[{"text": f"row {i}", "extra": i} for i in range(120)])
        load >> KeepColumns(columns=["text"])
    plain = list(pipeline.run(use_cache=False)["default"]["train"])
    handed = pipeline.run(
        use_cache=False,
        use_fs_to_pass_data=True,
        storage_parameters={"path": str(tmp_path / "batches")},
    )
    assert list(handed["default"]["train"]) == plain
    assert len(plain) == 120
