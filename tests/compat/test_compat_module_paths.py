"""distilabel 1.5.3's own module paths for its steps, which scripts import from as often as
from the packages (``from distilabel.steps.formatting.dpo import FormatTextGenerationDPO``):
under synthflow each names the very class the package exports."""

from __future__ import annotations

import importlib

import pytest

import synthflow.steps
from synthflow.pipeline import Pipeline

# distilabel's module (under ``steps``) -> the public classes it defines there.
MODULE_PATHS: dict[str, list[str]] = {
    "generators.data": ["LoadDataFromDicts"],
    "generators.huggingface": ["LoadDataFromHub", "LoadDataFromFileSystem", "LoadDataFromDisk"],
    "generators.data_sampler": ["DataSampler"],
    "generators.utils": ["make_generator_step"],
    "formatting.dpo": ["FormatTextGenerationDPO", "FormatChatGenerationDPO"],
    "formatting.sft": ["FormatTextGenerationSFT", "FormatChatGenerationSFT"],
    "formatting.conversation": ["ConversationTemplate"],
    "columns.expand": ["ExpandColumns"],
    "columns.keep": ["KeepColumns"],
    "columns.group": ["GroupColumns"],
    "columns.merge": ["MergeColumns"],
    "columns.combine": ["CombineOutputs"],
}


@pytest.mark.parametrize("path", sorted(MODULE_PATHS))
def test_a_distilabel_module_path_names_the_packages_class(path: str) -> None:
    module = importlib.import_module(f"synthflow.steps.{path}")
    for name in MODULE_PATHS[path]:
        assert getattr(module, name) is getattr(synthflow.steps, name), f"{path}.{name}"
    assert sorted(module.__all__) == sorted(MODULE_PATHS[path])


def test_a_pipeline_imported_from_module_paths_runs() -> None:
    from synthflow.steps.columns.expand import ExpandColumns
    from synthflow.steps.columns.keep import KeepColumns
    from synthflow.steps.formatting.sft import FormatTextGenerationSFT
    from synthflow.steps.generators.data import LoadDataFromDicts

    rows = [{"instruction": "hi", "generations": ["hello", "hey"]}]
    with Pipeline(name="module-paths") as pipeline:
        load = LoadDataFromDicts(name="load", data=rows)
        expand = ExpandColumns(name="expand", columns={"generations": "generation"})
        sft = FormatTextGenerationSFT(name="sft")
        keep = KeepColumns(name="keep", columns=["instruction", "generation", "messages"])
        load >> expand >> sft >> keep
    out = pipeline.run(progress=False)["default"]["train"].to_list()
    assert [r["generation"] for r in out] == ["hello", "hey"]
    assert out[0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert LoadDataFromDicts.__module__ == "synthflow.steps.generators"  # what files record
