"""The Distiset on disk and on the Hub: parquet with pipeline.yaml, run.json and a card; never
half-written; the upload tested at the huggingface_hub boundary with a recording fake."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi

from synthflow.distiset import Distiset
from synthflow.errors import DistisetError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from tests.servers.hub import hub_endpoint


@step(inputs=["n"], outputs=[])
def DropAll(inputs: StepInput) -> Iterator[list[Row]]:
    yield []


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def two_leaves() -> Pipeline:
    with Pipeline(name="cards", description="Answers, and the questions alone.") as pipeline:
        load = LoadDataFromDicts(
            name="load", data=[{"instruction": f"q{i}", "n": i} for i in range(3)]
        )
        generate = TextGeneration(name="generate", llm=OfflineLLM(model="model-x"))
        keep = KeepColumns(name="questions", columns=["instruction"])
        load >> [generate, keep]
    return pipeline


@pytest.fixture(scope="module")
def distiset(tmp_path_factory: pytest.TempPathFactory) -> Distiset:
    """One run shared by the tests that only read its result."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHFLOW_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("CI", "1")
        return two_leaves().run(progress=False)


def test_save_and_load_round_trip(distiset: Distiset, tmp_path: Path) -> None:
    target = distiset.save_to_disk(tmp_path / "out")

    assert sorted(p.name for p in target.iterdir()) == [
        "README.md",
        "generate",
        "pipeline.yaml",
        "questions",
        "run.json",
    ]
    assert [p.name for p in (target / "generate").iterdir()] == ["train-00000-of-00001.parquet"]
    loaded = Distiset.load_from_disk(target)
    assert list(loaded) == ["generate", "questions"]
    for subset in loaded:
        assert list(loaded[subset]["train"]) == list(distiset[subset]["train"])
        assert loaded[subset]["train"].features == distiset[subset]["train"].features
    assert loaded.pipeline_config == distiset.pipeline_config
    assert loaded.run_info == distiset.run_info
    assert loaded.stats["generate"].rows_out == 3
    assert loaded.stats["generate"].llm is not None
    assert loaded.stats["generate"].llm.requests == 3
    again = Distiset.load_from_disk(loaded.save_to_disk(tmp_path / "again"))
    assert (tmp_path / "again" / "run.json").read_text() == (target / "run.json").read_text()
    assert list(again["generate"]["train"]) == list(distiset["generate"]["train"])
    reloaded = Pipeline.from_file(target / "pipeline.yaml")
    assert reloaded.signature == two_leaves().signature


def test_the_run_records_its_pipeline(distiset: Distiset) -> None:
    assert distiset.pipeline_config is not None
    assert distiset.pipeline_config["pipeline"]["name"] == "cards"
    assert distiset.run_info["signature"] == two_leaves().signature
    assert distiset.pipeline_yaml is not None
    assert distiset.pipeline_yaml.startswith("synthflow:\n  version:")


def test_saving_over_a_saved_distiset_replaces_it(distiset: Distiset, tmp_path: Path) -> None:
    target = tmp_path / "out"
    distiset.save_to_disk(target)
    (target / "questions" / "stale.parquet").write_bytes(b"old")

    distiset.save_to_disk(target)

    assert not (target / "questions" / "stale.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp or backup dirs left


def test_a_directory_holding_other_files_is_refused(distiset: Distiset, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DistisetError) as info:
        distiset.save_to_disk(tmp_path)
    assert one_line(info) == (
        f"can't save to {tmp_path}: it holds other files, and synthflow replaces only an empty "
        "directory or a saved distiset; choose another directory"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_output_that_cant_be_written_gets_one_line(distiset: Distiset, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DistisetError) as info:
        distiset.save_to_disk(tmp_path / "file" / "out")
    assert one_line(info) == (
        f"can't save to {tmp_path}/file/out: {tmp_path}/file is a file, not a directory"
    )


def test_a_failed_write_leaves_nothing_half_written(
    distiset: Distiset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = distiset.save_to_disk(tmp_path / "out")
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}

    def disk_full(dataset: Any, path: Path) -> None:
        path.write_bytes(b"PAR1 partial")
        raise OSError(5, "Input/output error")  # a full disk is DiskFullError: test_run_outcome

    monkeypatch.setattr("synthflow.distiset._write_parquet", disk_full)
    with pytest.raises(DistisetError) as info:
        distiset.save_to_disk(target)

    assert one_line(info) == f"can't save the distiset to {target}: Input/output error"
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_empty_leaf_saves_and_loads(tmp_path: Path) -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(name="load", data=[{"n": 1}]) >> DropAll(name="none")
    empty = pipeline.run(progress=False)

    loaded = Distiset.load_from_disk(empty.save_to_disk(tmp_path / "out"))

    assert len(loaded["default"]["train"]) == 0


def test_loading_what_is_not_a_saved_distiset(tmp_path: Path) -> None:
    with pytest.raises(DistisetError, match="not a directory"):
        Distiset.load_from_disk(tmp_path / "missing")
    with pytest.raises(DistisetError, match="it holds no parquet data"):
        Distiset.load_from_disk(tmp_path)


# -- the Hub ------------------------------------------------------------------------------------


class RecordingHfApi:
    """Stands in for ``huggingface_hub.HfApi``: checks each call against the real method's
    signature, and keeps a copy of every file that would be uploaded."""

    endpoint = "https://hub.example"

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, bytes] = {}
        self.fail = fail

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        inspect.signature(getattr(HfApi, method)).bind(None, *args, **kwargs)
        self.calls.append((method, {"args": args, **kwargs}))
        if self.fail is not None:
            raise self.fail

    def create_repo(self, *args: Any, **kwargs: Any) -> None:
        self._record("create_repo", *args, **kwargs)

    def upload_folder(self, *args: Any, **kwargs: Any) -> None:
        self._record("upload_folder", *args, **kwargs)
        root = Path(kwargs["folder_path"])
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.files[path.relative_to(root).as_posix()] = path.read_bytes()


def test_push_to_hub_uploads_data_pipeline_and_card(distiset: Distiset) -> None:
    api = RecordingHfApi()

    url = distiset.push_to_hub("org/cards", private=True, api=api)

    assert url == "https://hub.example/datasets/org/cards"
    (create, create_kw), (upload, upload_kw) = api.calls
    assert (create, create_kw["args"]) == ("create_repo", ("org/cards",))
    assert create_kw["repo_type"] == "dataset" and create_kw["private"] is True
    assert create_kw["exist_ok"] is True
    assert upload == "upload_folder"
    assert upload_kw["repo_id"] == "org/cards" and upload_kw["repo_type"] == "dataset"
    assert sorted(api.files) == [
        "README.md",
        "generate/train-00000-of-00001.parquet",
        "pipeline.yaml",
        "questions/train-00000-of-00001.parquet",
        "run.json",
    ]
    assert Pipeline.from_yaml(api.files["pipeline.yaml"].decode()).signature == (
        two_leaves().signature
    )


def test_the_card_says_how_the_data_was_made(distiset: Distiset) -> None:
    api = RecordingHfApi()
    distiset.push_to_hub("org/cards", api=api)
    card = api.files["README.md"].decode()

    assert card.startswith("---\nconfigs:\n- config_name: generate\n  data_files:\n")
    assert "    path: generate/train-*.parquet\n" in card
    assert "size_categories:\n- n<1K\n---\n" in card
    assert "Answers, and the questions alone." in card
    assert (
        "```mermaid\nflowchart TD\n"
        '    s0["load<br/>LoadDataFromDicts"]\n'
        '    s1["generate<br/>TextGeneration<br/>model-x"]\n'
        '    s2["questions<br/>KeepColumns"]\n'
        "    s0 --> s1\n    s0 --> s2\n```"
    ) in card
    assert "| generate | OfflineLLM | model-x |" in card
    assert (
        "| generate | train | 3 | `instruction`, `n`, `generation`, `model_name`, "
        "`synthflow_metadata` |"
    ) in card
    assert "| questions | train | 3 | `instruction` |" in card
    assert (
        "synthflow pipeline run --config "
        "https://huggingface.co/datasets/org/cards/resolve/main/pipeline.yaml\n"
    ) in card
    assert 'load_dataset("org/cards", "generate", split="train")' in card


def test_the_card_names_modules_to_allow_and_the_original_command(tmp_path: Path) -> None:
    with Pipeline(name="custom") as pipeline:
        LoadDataFromDicts(name="load", data=[{"n": 1}]) >> DropAll(name="none")
    result = pipeline.run(progress=False)
    result.run_info["command"] = "synthflow pipeline run --script make.py"

    card = result.dataset_card("org/custom")

    assert (
        "synthflow pipeline run --config "
        "https://huggingface.co/datasets/org/custom/resolve/main/pipeline.yaml "
        f"--allow-module {__name__}\n"
    ) in card
    assert "It was made with:\n\n```bash\nsynthflow pipeline run --script make.py\n```" in card


def test_push_builds_the_real_client_with_the_token(
    distiset: Distiset, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    def fake_client(**kwargs: Any) -> RecordingHfApi:
        made.append(kwargs)
        return RecordingHfApi()

    monkeypatch.setattr("huggingface_hub.HfApi", fake_client)
    distiset.push_to_hub("org/cards", token="hf_secret")
    assert made == [{"token": "hf_secret"}]


def test_a_failed_push_gets_one_line(distiset: Distiset) -> None:
    api = RecordingHfApi(fail=OSError("401 Client Error: Unauthorized for url\nhttps://x"))
    with pytest.raises(DistisetError) as info:
        distiset.push_to_hub("org/cards", api=api)
    assert one_line(info) == (
        "push to org/cards failed: OSError: 401 Client Error: Unauthorized for url https://x"
    )


@pytest.mark.parametrize("repo_id", ["org/cards/extra", "../cards", "org/..", "-cards", ""])
def test_a_bad_repo_id_is_refused_before_anything_is_sent(distiset: Distiset, repo_id: str) -> None:
    api = RecordingHfApi()
    with pytest.raises(DistisetError, match="must look like ORG/NAME"):
        distiset.push_to_hub(repo_id, api=api)
    assert api.calls == []


# huggingface_hub's LFS upload uses an httpx argument httpx has deprecated: theirs, not ours.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_a_name_alone_is_pushed_to_the_tokens_account(
    distiset: Distiset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # distilabel's quickstart: distiset.push_to_hub(repo_id="distilabel-example")
    with hub_endpoint(monkeypatch) as hub:
        url = distiset.push_to_hub("distilabel-example", token="hf_x")
        assert url == f"{hub.url}/datasets/loopback-user/distilabel-example"
        assert (
            "questions/train-00000-of-00001.parquet"
            in hub.files["loopback-user/distilabel-example"]
        )
        assert (
            "# loopback-user/distilabel-example"
            in hub.files["loopback-user/distilabel-example"]["README.md"].decode()
        )


def test_a_name_alone_without_a_token_gets_one_line(
    distiset: Distiset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no saved login either
    with hub_endpoint(monkeypatch) as hub, pytest.raises(DistisetError) as info:
        distiset.push_to_hub("distilabel-example")
    message = one_line(info)
    assert message.startswith("repo id 'distilabel-example' has no ORG/ and the Hub can't say")
    assert message.endswith("give ORG/NAME, or log in (huggingface-cli login, or set HF_TOKEN)")
    assert hub.files == {}


def test_notebook_summary(distiset: Distiset) -> None:
    html = distiset._repr_html_()
    assert html.startswith("<div><p>Distiset from pipeline <b>cards</b></p>")
    assert (
        "<tr><td><code>questions</code></td><td>train</td><td>3</td><td>instruction</td></tr>"
        in (html)
    )
