"""Column steps, used as distilabel's docs use them: standalone (``load()`` then ``process``)
and in pipelines, including fan-ins of two real branches."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.errors import StepError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import (
    CombineColumns,
    CombineOutputs,
    ExpandColumns,
    GroupColumns,
    KeepColumns,
    LoadDataFromDicts,
    MergeColumns,
    Step,
    StepInput,
)
from synthflow.steps.base import ROW_ID
from synthflow.steps.tasks import METADATA_COLUMN, TextGeneration


def rows_of(distiset: Any, name: str = "default") -> list[dict[str, Any]]:
    return list(distiset[name]["train"])


def first_batch(step: Any, *inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return list(next(step.process(*inputs)))


class Score(Step):
    """A branch that writes columns of its own (``score``, ``length``)."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["score", "length"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            row["score"] = len(row["instruction"]) % 3
            row["length"] = len(row["instruction"])
        yield inputs


# -- GroupColumns / CombineColumns ------------------------------------------------------------


def test_group_columns_standalone_as_in_distilabels_docs() -> None:
    group = GroupColumns(name="group_columns", columns=["generation", "model_name"])
    result = first_batch(
        group,
        [{"generation": "AI generated text"}, {"model_name": "my_model"}],
        [{"generation": "Other generated text", "model_name": "my_model"}],
    )
    assert result == [
        {
            "grouped_generation": ["AI generated text", "Other generated text"],
            "grouped_model_name": ["my_model"],
        }
    ]
    assert group.outputs == ["grouped_generation", "grouped_model_name"]


def test_group_columns_with_output_columns_in_a_pipeline_of_two_branches() -> None:
    with Pipeline(name="group") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(12)], batch_size=5)
        a = TextGeneration(name="a", llm=OfflineLLM(model="model-a", jitter=0.005))
        b = TextGeneration(name="b", llm=OfflineLLM(model="model-b", jitter=0.005))
        group = GroupColumns(
            name="group",
            columns=["generation", "model_name"],
            output_columns=["generations", "generation_models"],
        )
        load >> [a, b] >> group

    rows = rows_of(pipeline.run(progress=False))
    assert [r["instruction"] for r in rows] == [f"q{i}" for i in range(12)]
    for row in rows:
        assert row["generation_models"] == ["model-a", "model-b"]
        assert len(row["generations"]) == 2
        assert "generation" not in row and "model_name" not in row
        assert set(row[METADATA_COLUMN]) == {
            f"{entry}_{task}"
            for entry in ("statistics", "raw_output", "raw_input")
            for task in "ab"
        }


def test_combine_columns_is_group_columns_under_distilabel_1_4s_names() -> None:
    combine = CombineColumns(columns=["generation"])
    assert isinstance(combine, GroupColumns)
    assert combine.outputs == ["merged_generation"]
    result = first_batch(combine, [{"generation": "x", "n": 1}], [{"generation": "y", "n": 1}])
    assert result == [{"n": 1, "merged_generation": ["x", "y"]}]


def test_group_columns_needs_one_output_name_per_column() -> None:
    with pytest.raises(ValueError, match="one name per column"):
        GroupColumns(columns=["a", "b"], output_columns=["only_one"])


# -- CombineOutputs -------------------------------------------------------------------------


def test_combine_outputs_standalone_as_in_distilabels_docs() -> None:
    result = first_batch(
        CombineOutputs(),
        [{"a": 1, "b": 2}, {"a": 3, "b": 4}],
        [{"c": 5, "d": 6}, {"c": 7, "d": 8}],
    )
    assert result == [{"a": 1, "b": 2, "c": 5, "d": 6}, {"a": 3, "b": 4, "c": 7, "d": 8}]


def test_combine_outputs_joins_branches_that_wrote_different_columns() -> None:
    with Pipeline(name="combine") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q" * i} for i in range(1, 9)])
        gen = TextGeneration(name="gen", llm=OfflineLLM(model="m", jitter=0.005))
        score = Score(name="score")
        combine = CombineOutputs(name="combine")
        load >> [gen, score] >> combine

    rows = rows_of(pipeline.run(progress=False))
    assert [r["length"] for r in rows] == list(range(1, 9))
    assert all(r["generation"] and r["model_name"] == "m" for r in rows)
    assert all(r["score"] == r["length"] % 3 for r in rows)
    entries = {"statistics_gen", "raw_output_gen", "raw_input_gen"}
    assert all(set(r[METADATA_COLUMN]) == entries for r in rows)


# -- MergeColumns ---------------------------------------------------------------------------


def test_merge_columns_standalone_as_in_distilabels_docs() -> None:
    merge = MergeColumns(columns=["queries", "multiple_queries"], output_column="queries")
    result = first_batch(
        merge,
        [{"queries": "How are you?", "multiple_queries": ["What's up?", "Everything ok?"]}],
    )
    assert result == [{"queries": ["How are you?", "What's up?", "Everything ok?"]}]


def test_merge_columns_in_a_pipeline_with_its_default_name() -> None:
    with Pipeline(name="merge") as pipeline:
        load = LoadDataFromDicts(data=[{"a": 1, "b": [2, 3], "keep": "k"}])
        load >> MergeColumns(columns=["a", "b"])

    assert rows_of(pipeline.run(progress=False)) == [{"keep": "k", "merged_column": [1, 2, 3]}]


def test_merge_columns_names_a_missing_column() -> None:
    merge = MergeColumns(columns=["a", "missing"])
    merge.load()
    with pytest.raises(ValueError, match=r"no column 'missing' \(its columns: a\)"):
        next(merge.process([{"a": 1}]))


# -- ExpandColumns --------------------------------------------------------------------------


def test_expand_columns_standalone_as_in_distilabels_docs() -> None:
    expand = ExpandColumns(columns=["generation"])
    result = first_batch(
        expand, [{"instruction": "instruction 1", "generation": ["generation 1", "generation 2"]}]
    )
    assert result == [
        {"instruction": "instruction 1", "generation": "generation 1"},
        {"instruction": "instruction 1", "generation": "generation 2"},
    ]


def test_expand_columns_decodes_json_encoded_lists() -> None:
    for encoded in (True, ["generation"]):
        expand = ExpandColumns(columns=["generation"], encoded=encoded)
        result = first_batch(expand, [{"i": 1, "generation": '["g1", "g2"]'}])
        assert result == [{"i": 1, "generation": "g1"}, {"i": 1, "generation": "g2"}]


def test_expand_columns_with_a_dict_keeps_the_list_and_pairs_items_up() -> None:
    expand = ExpandColumns(columns={"generations": "generation", "models": "model"})
    assert expand.inputs == ["generations", "models"]
    assert expand.outputs == ["generation", "model"]
    result = first_batch(expand, [{"generations": ["g1", "g2", "g3"], "models": ["m1", "m2"]}])
    assert [(r["generation"], r["model"]) for r in result] == [
        ("g1", "m1"),
        ("g2", "m2"),
        ("g3", None),
    ]
    assert all(r["generations"] == ["g1", "g2", "g3"] for r in result)


def test_expand_columns_splits_statistics_so_totals_stay_right() -> None:
    expand = ExpandColumns(columns=["generation"], split_statistics=True)
    metadata = {
        "statistics_gen": {"input_tokens": 13, "output_tokens": [12]},
        "raw_output_gen": "raw",
    }
    result = first_batch(expand, [{"generation": ["a", "b", "c"], METADATA_COLUMN: metadata}])
    stats = [r[METADATA_COLUMN]["statistics_gen"] for r in result]
    assert stats == [
        {"input_tokens": 5, "output_tokens": [4]},
        {"input_tokens": 4, "output_tokens": [4]},
        {"input_tokens": 4, "output_tokens": [4]},
    ]
    assert all(r[METADATA_COLUMN]["raw_output_gen"] == "raw" for r in result)
    assert metadata["statistics_gen"]["input_tokens"] == 13  # the input row's dict is not changed


def test_expand_columns_in_a_pipeline_after_a_task_with_grouped_generations() -> None:
    with Pipeline(name="expand") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q0"}, {"instruction": "q1"}])
        gen = TextGeneration(
            name="gen", llm=OfflineLLM(model="m"), num_generations=3, group_generations=True
        )
        expand = ExpandColumns(name="expand", columns=["generation"], split_statistics=True)
        load >> gen >> expand

    rows = rows_of(pipeline.run(progress=False))
    assert [r["instruction"] for r in rows] == ["q0"] * 3 + ["q1"] * 3
    assert all(isinstance(r["generation"], str) for r in rows)


def test_expand_columns_one_line_errors() -> None:
    expand = ExpandColumns(columns=["generation"])
    expand.load()
    with pytest.raises(ValueError, match=r"'generation' must hold a list, got str.*encoded=True"):
        next(expand.process([{"generation": "not a list"}]))
    with pytest.raises(ValueError, match="no column 'generation'"):
        next(expand.process([{"other": []}]))
    with pytest.raises(ValueError, match="JSON-encoded list"):
        next(ExpandColumns(columns=["g"], encoded=True).process([{"g": "[not json"}]))
    with pytest.raises(ValueError, match="not one of the columns to expand"):
        ExpandColumns(columns=["g"], encoded=["h"])


def test_a_bad_row_in_a_pipeline_fails_the_run_naming_the_step() -> None:
    with Pipeline(name="bad") as pipeline:
        load = LoadDataFromDicts(data=[{"generation": "oops"}])
        load >> ExpandColumns(name="expand", columns=["generation"])

    with pytest.raises(StepError, match=r"step 'expand'.*must hold a list"):
        pipeline.run(progress=False)


def test_keep_columns_still_keeps_lineage() -> None:
    result = first_batch(KeepColumns(columns=["b"]), [{"a": 1, "b": 2, ROW_ID: 7}])
    assert result == [{"b": 2, ROW_ID: 7}]


def test_column_steps_round_trip_through_yaml() -> None:
    with Pipeline(name="yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"g": ["x"], "h": "y"}])
        expand = ExpandColumns(columns={"g": "item"}, encoded=False, split_statistics=True)
        merge = MergeColumns(columns=["item", "h"], output_column="both")
        load >> expand >> merge

    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    assert rows_of(loaded.run(progress=False)) == [{"g": ["x"], "both": ["x", "y"]}]
