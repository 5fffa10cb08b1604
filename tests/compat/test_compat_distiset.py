"""distilabel's Distiset surface: building one from datasets, train_test_split, save_to_disk /
load_from_disk with its keyword arguments (shards, fsspec locations), push_to_hub to a loopback
server that speaks the Hub's endpoints, step artifacts (``save_artifact`` from a step on the
loop, in a thread and in a worker process) and the ``synthflow_metadata`` column's entries."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from datasets import Dataset, DatasetDict

from synthflow.distiset import Distiset, create_distiset
from synthflow.errors import DistisetError
from synthflow.pipeline import Pipeline
from synthflow.steps import GlobalStep, LoadDataFromDicts, Step, StepInput
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM
from tests.servers import FakeAPI, Reply, Request, fake_api

if TYPE_CHECKING:
    from synthflow.steps import StepOutput


def docs_distiset() -> Distiset:
    """The Distiset of distilabel's "Using the Distiset dataset object" guide."""
    return Distiset(
        {
            "leaf_step_1": Dataset.from_dict({"instruction": [1, 2, 3]}),
            "leaf_step_2": Dataset.from_dict(
                {"instruction": [1, 2, 3, 4], "generation": [5, 6, 7, 8]}
            ),
        }
    )


def run_of(data: list[dict[str, Any]], *steps: Step, name: str = "distiset") -> Distiset:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(name="load", data=data)
        previous: Any = load
        for step in steps:
            pipeline.add_step(step)
            previous = previous >> step
    return pipeline.run(progress=False)


def answer(messages: list[dict[str, Any]]) -> str:
    return f"echo: {messages[-1]['content']}"


# -- the Distiset itself ------------------------------------------------------------------------


def test_a_distiset_built_from_datasets_splits_into_train_and_test() -> None:
    distiset = docs_distiset()

    split = distiset.train_test_split(train_size=0.9, seed=7)

    assert split is distiset
    assert {name: {s: len(ds) for s, ds in dd.items()} for name, dd in split.items()} == {
        "leaf_step_1": {"train": 2, "test": 1},
        "leaf_step_2": {"train": 3, "test": 1},
    }
    assert isinstance(split["leaf_step_2"], DatasetDict)
    with pytest.raises(DistisetError, match="train_size must be a share between 0 and 1"):
        docs_distiset().train_test_split(train_size=1.5)


def test_a_run_splits_and_the_splits_save_and_load(tmp_path: Path) -> None:
    distiset = run_of([{"n": i} for i in range(10)])
    assert len(distiset["default"]["train"]) == 10

    distiset.train_test_split(train_size=0.8, shuffle=False)
    loaded = Distiset.load_from_disk(distiset.save_to_disk(tmp_path / "split"))

    assert loaded["default"]["train"]["n"] == list(range(8))
    assert loaded["default"]["test"]["n"] == [8, 9]


def test_save_to_disk_takes_distilabels_flags(tmp_path: Path) -> None:
    distiset = run_of([{"n": 1}], name="flags")

    distiset.save_to_disk(
        tmp_path / "all", save_card=True, save_pipeline_config=True, save_pipeline_log=True
    )
    distiset.save_to_disk(tmp_path / "bare", save_card=False, save_pipeline_config=False)

    assert {p.name for p in (tmp_path / "all").iterdir()} >= {"README.md", "pipeline.yaml"}
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["default", "run.json"]
    assert Distiset.load_from_disk(tmp_path / "bare")["default"]["train"]["n"] == [1]


def test_a_log_file_is_saved_as_pipeline_log(tmp_path: Path) -> None:
    distiset = docs_distiset()
    log = tmp_path / "run.log"
    log.write_text("step done\n")
    distiset.log_filename_path = log

    distiset.save_to_disk(tmp_path / "with-log")
    distiset.save_to_disk(tmp_path / "without", save_pipeline_log=False)

    assert (tmp_path / "with-log" / "pipeline.log").read_text() == "step done\n"
    assert not (tmp_path / "without" / "pipeline.log").exists()
    loaded = Distiset.load_from_disk(tmp_path / "with-log")
    assert loaded.log_filename_path == tmp_path / "with-log" / "pipeline.log"


@pytest.mark.parametrize(
    ("options", "parts"),
    [({"num_shards": 3}, 3), ({"max_shard_size": 1}, 7), ({"max_shard_size": "1GB"}, 1)],
)
def test_save_to_disk_writes_shards(tmp_path: Path, options: dict[str, Any], parts: int) -> None:
    distiset = docs_distiset()
    distiset["leaf_step_2"] = Dataset.from_dict({"n": list(range(7))})

    loaded = Distiset.load_from_disk(distiset.save_to_disk(tmp_path / "out", **options))

    names = sorted(p.name for p in (tmp_path / "out" / "leaf_step_2").iterdir())
    assert names == [f"train-{i:05d}-of-{parts:05d}.parquet" for i in range(parts)]
    assert loaded["leaf_step_2"]["train"]["n"] == list(range(7))


def test_a_bad_shard_size_gets_one_line(tmp_path: Path) -> None:
    with pytest.raises(DistisetError, match="max_shard_size must be a size like '500MB'"):
        docs_distiset().save_to_disk(tmp_path / "out", max_shard_size="big")


def test_save_and_load_through_fsspec_storage(tmp_path: Path) -> None:
    distiset = run_of([{"n": 1}, {"n": 2}], name="remote")

    where = distiset.save_to_disk("memory://bucket/distiset", storage_options={})
    loaded = Distiset.load_from_disk(where, download_dir=tmp_path / "copy")

    assert where == "memory://bucket/distiset"
    assert loaded["default"]["train"]["n"] == [1, 2]
    assert loaded.pipeline_config == distiset.pipeline_config
    assert (tmp_path / "copy" / "run.json").is_file()
    with pytest.raises(DistisetError, match="no saved distiset at memory://bucket/none"):
        Distiset.load_from_disk("memory://bucket/none")


# -- the Hub ------------------------------------------------------------------------------------


class FakeHub:
    """The Hub endpoints ``HfApi.create_repo`` and ``upload_folder`` call, on 127.0.0.1:
    create a repo, list its tree, say how each file uploads (inline), check a card's YAML, and
    commit. It keeps
    each repo's files, so a second push shows what it replaced."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.commits: list[dict[str, Any]] = []
        self.validated: list[str] = []
        self.url = ""
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        path = request.path.split("?", 1)[0]
        with self._lock:
            if path == "/api/repos/create":
                body = request.json
                repo = f"{body['organization']}/{body['name']}"
                self.repos.setdefault(repo, body)
                self.files.setdefault(repo, {})
                return Reply(200, {"url": f"{self.url}/datasets/{repo}", "name": repo})
            if path == "/api/validate-yaml":  # the card's front matter, checked before a commit
                self.validated.append(request.json["content"])
                return Reply(200, {"errors": [], "warnings": []})
            parts = path.split("/")  # /api/datasets/ORG/NAME/<what>/main
            repo, what = "/".join(parts[3:5]), (parts[5:6] or [""])[0]
            if what == "tree":
                files = self.files.get(repo, {})
                return Reply(200, [self._entry(p, data) for p, data in sorted(files.items())])
            if what == "preupload":
                files = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                    for f in request.json["files"]
                ]
                return Reply(200, {"files": files})
            if what == "commit":
                return self._commit(repo, request.body)
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})

    @staticmethod
    def _entry(path: str, data: bytes) -> dict[str, Any]:
        return {"type": "file", "path": path, "size": len(data), "oid": "0" * 40}

    def _commit(self, repo: str, body: bytes) -> Reply:
        files = self.files[repo]
        commit: dict[str, Any] = {"added": [], "deleted": []}
        for line in body.splitlines():
            item = orjson.loads(line)
            value = item["value"]
            if item["key"] == "header":
                commit["summary"] = value["summary"]
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                commit["added"].append(value["path"])
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
                commit["deleted"].append(value["path"])
        self.commits.append(commit)
        url = f"{self.url}/datasets/{repo}/commit/{'a' * 40}"
        return Reply(200, {"commitUrl": url, "commitOid": "a" * 40, "pullRequestUrl": None})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FakeHub, FakeAPI]]:
    fake = FakeHub()
    with fake_api(fake) as server:
        fake.url = server.url
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", server.url)
        monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-login"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield fake, server


def test_push_to_hub_with_distilabels_arguments(hub: tuple[FakeHub, FakeAPI]) -> None:
    fake, server = hub
    distiset = run_of([{"n": 1}, {"n": 2}], name="pushed")

    url = distiset.push_to_hub(
        "my-org/my-dataset",
        commit_message="Initial commit",
        private=False,
        token="hf_test",
        generate_card=True,
        include_script=False,
    )

    assert url == f"{server.url}/datasets/my-org/my-dataset"
    assert fake.repos["my-org/my-dataset"]["visibility"] == "public"
    assert sorted(fake.files["my-org/my-dataset"]) == [
        "README.md",
        "default/train-00000-of-00001.parquet",
        "pipeline.yaml",
        "run.json",
    ]
    assert fake.commits[-1]["summary"] == "Initial commit"
    writes = [r for r in server.requests if r.path.startswith(("/api/repos/", "/api/datasets/"))]
    assert {r.headers.get("authorization") for r in writes} == {"Bearer hf_test"}
    assert fake.validated and fake.validated[-1].startswith("---\nconfigs:")


def test_push_without_a_card_and_in_shards_replaces_the_old_shards(
    hub: tuple[FakeHub, FakeAPI],
) -> None:
    fake, _ = hub
    distiset = docs_distiset()
    distiset.push_to_hub("org/shards", token="hf_test", private=True, num_shards=2)
    distiset.push_to_hub("org/shards", token="hf_test", generate_card=False)

    assert fake.repos["org/shards"]["visibility"] == "private"
    assert sorted(fake.files["org/shards"]) == [
        "README.md",  # the first push's card stays: generate_card=False writes none
        "leaf_step_1/train-00000-of-00001.parquet",
        "leaf_step_2/train-00000-of-00001.parquet",
        "run.json",
    ]
    assert "leaf_step_2/train-00001-of-00002.parquet" in fake.commits[-1]["deleted"]


def test_push_with_include_script_uploads_the_running_script(
    hub: tuple[FakeHub, FakeAPI], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = hub
    script = tmp_path / "sample_pipe.py"
    script.write_text("print('my pipeline')\n")
    monkeypatch.setattr("sys.argv", [str(script)])

    docs_distiset().push_to_hub("org/scripted", token="hf_test", include_script=True)

    assert fake.files["org/scripted"]["sample_pipe.py"] == b"print('my pipeline')\n"
    monkeypatch.setattr("sys.argv", ["-c"])
    with pytest.raises(DistisetError, match="include_script=True uploads the running script"):
        docs_distiset().push_to_hub("org/scripted", token="hf_test", include_script=True)


def test_an_unknown_push_argument_gets_one_line(hub: tuple[FakeHub, FakeAPI]) -> None:
    _, server = hub
    with pytest.raises(DistisetError, match="unexpected argument 'embed_external_files'"):
        docs_distiset().push_to_hub("org/x", token="hf_test", embed_external_files=True)
    assert server.requests == []


# -- artifacts ----------------------------------------------------------------------------------


class CountTextCharacters(GlobalStep):
    """The step of distilabel's "Saving step generated artifacts" guide (a text histogram
    here instead of a matplotlib figure)."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["text_character_count"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        counts = []
        for row in inputs:
            row["text_character_count"] = len(row["text"])
            counts.append(row["text_character_count"])
        self.save_artifact(
            name="text_character_count_distribution",
            write_function=lambda path: (path / "figure.txt").write_text(
                " ".join(str(c) for c in counts)
            ),
            metadata={"type": "image", "library": "matplotlib"},
        )
        yield inputs


class SaveBatchSizes(Step):
    """Saves an artifact per batch from wherever ``executor`` runs it."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        first = inputs[0]["text"]
        self.save_artifact(
            f"batch-{first}",
            lambda path: (path / "size.txt").write_text(str(len(inputs))),
            {"rows": len(inputs)},
        )
        yield inputs


TEXTS = [{"text": t} for t in ("a", "bb", "ccc")]


def test_artifacts_as_in_distilabels_guide(tmp_path: Path, hub: tuple[FakeHub, FakeAPI]) -> None:
    fake, _ = hub
    with Pipeline() as pipeline:
        count_text_characters = CountTextCharacters()
    distiset = pipeline.run(dataset=Dataset.from_list(TEXTS), progress=False)

    step = count_text_characters.name
    assert step == "count_text_characters_0"
    (entry,) = distiset.artifacts[step]
    assert entry["name"] == "text_character_count_distribution"
    assert entry["metadata"] == {"type": "image", "library": "matplotlib"}
    assert (entry["path"] / "figure.txt").read_text() == "1 2 3"

    target = distiset.save_to_disk(tmp_path / "saved")
    where = f"artifacts/{step}/text_character_count_distribution"
    assert (target / where / "figure.txt").read_text() == "1 2 3"
    assert orjson.loads((target / where / "metadata.json").read_bytes())["library"] == "matplotlib"
    loaded = Distiset.load_from_disk(target)
    assert loaded.artifacts[step][0]["metadata"]["type"] == "image"
    loaded.save_to_disk(target)  # over the copy its artifacts are read from
    assert (target / where / "figure.txt").read_text() == "1 2 3"

    distiset.push_to_hub("org/artifacts", token="hf_test")
    files = fake.files["org/artifacts"]
    assert files[f"{where}/figure.txt"] == b"1 2 3"
    assert f"{where}/metadata.json" in files
    card = files["README.md"].decode()
    assert "## Artifacts" in card
    assert f"| {step} | [text_character_count_distribution]({where}) |" in card


@pytest.mark.parametrize("executor", ["loop", "thread", "process"])
def test_artifacts_land_in_the_run_from_any_executor(executor: str) -> None:
    saver = SaveBatchSizes(name="saver", executor=executor, input_batch_size=2)
    distiset = run_of(TEXTS, saver, name=f"artifacts-{executor}")

    saved = distiset.artifacts["saver"]
    assert [(a["name"], a["metadata"]) for a in saved] == [
        ("batch-a", {"rows": 2}),
        ("batch-ccc", {"rows": 1}),
    ]
    assert (saved[0]["path"] / "size.txt").read_text() == "2"


def test_a_new_run_starts_without_the_last_runs_artifacts() -> None:
    with Pipeline(name="again") as pipeline:
        LoadDataFromDicts(name="load", data=TEXTS) >> SaveBatchSizes(name="saver")
    first = pipeline.run(progress=False, use_cache=False)
    assert [a["name"] for a in first.artifacts["saver"]] == ["batch-a"]
    assert first.artifacts_path is not None
    (first.artifacts_path / "saver" / "stale").mkdir()

    second = pipeline.run(progress=False, use_cache=False)

    assert [a["name"] for a in second.artifacts["saver"]] == ["batch-a"]


def test_a_run_without_artifacts_has_none() -> None:
    distiset = run_of(TEXTS)
    assert distiset.artifacts == {} and distiset.artifacts_path is None


def test_a_step_alone_saves_no_artifact(caplog: pytest.LogCaptureFixture) -> None:
    step = SaveBatchSizes(name="alone")
    step.load()
    with caplog.at_level(logging.WARNING, logger="synthflow.steps"):
        rows = next(step.process([{"text": "x"}]))
    assert rows == [{"text": "x"}]
    assert "artifact 'batch-x' not saved" in caplog.text
    with pytest.raises(ValueError, match="must be a plain name"):
        step.save_artifact("../escape", lambda path: None)


# -- the metadata column ------------------------------------------------------------------------


def test_the_metadata_column_has_distilabels_entries() -> None:
    task = TextGeneration(name="text_generation", llm=FunctionLLM(fn=answer))
    row = run_of([{"instruction": "What's the capital of Spain?"}], task)["default"]["train"][0]

    metadata = row["synthflow_metadata"]
    assert metadata["raw_output_text_generation"] == "echo: What's the capital of Spain?"
    assert metadata["raw_input_text_generation"] == [
        {"role": "user", "content": "What's the capital of Spain?"}
    ]
    assert set(metadata["statistics_text_generation"]) == {"input_tokens", "output_tokens"}
    assert all(isinstance(v, int) for v in metadata["statistics_text_generation"].values())


def test_each_generation_row_has_its_own_raw_output() -> None:
    def two_takes(messages: list[dict[str, Any]]) -> list[str]:
        return ["take 1", "take 2"]

    task = TextGeneration(name="gen", llm=FunctionLLM(fn=two_takes), num_generations=2)
    rows = run_of([{"instruction": "q"}], task)["default"]["train"].to_list()

    assert [r["generation"] for r in rows] == ["take 1", "take 2"]
    assert [r["synthflow_metadata"]["raw_output_gen"] for r in rows] == ["take 1", "take 2"]


def test_grouped_generations_keep_lists_in_the_metadata() -> None:
    task = TextGeneration(
        name="gen", llm=FunctionLLM(fn=answer), num_generations=3, group_generations=True
    )
    row = run_of([{"instruction": "q"}], task)["default"]["train"][0]

    metadata = row["synthflow_metadata"]
    assert metadata["raw_output_gen"] == row["generation"] == ["echo: q"] * 3
    stats = metadata["statistics_gen"]
    assert [len(stats["input_tokens"]), len(stats["output_tokens"])] == [3, 3]
    assert metadata["raw_input_gen"] == [{"role": "user", "content": "q"}]


def test_raw_output_and_raw_input_can_be_turned_off() -> None:
    task = TextGeneration(
        name="gen", llm=FunctionLLM(fn=answer), add_raw_output=False, add_raw_input=False
    )
    row = run_of([{"instruction": "q"}], task)["default"]["train"][0]
    assert list(row["synthflow_metadata"]) == ["statistics_gen"]


def test_enable_metadata_false_leaves_the_column_out() -> None:
    with Pipeline(name="no-metadata", enable_metadata=False) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(llm=FunctionLLM(fn=answer))
    distiset = pipeline.run(progress=False)

    assert distiset["default"]["train"].column_names == ["instruction", "generation", "model_name"]
    with Pipeline(name="with-metadata", enable_metadata=True) as kept:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(llm=FunctionLLM(fn=answer))
    assert "synthflow_metadata" in kept.run(progress=False)["default"]["train"].column_names


def test_create_distiset_from_a_run_directory(tmp_path: Path) -> None:
    with Pipeline(name="cached") as pipeline:
        load = LoadDataFromDicts(name="load", data=TEXTS)
        load >> [
            SaveBatchSizes(name="saver"),
            TextGeneration(
                name="gen", llm=FunctionLLM(fn=answer), input_mappings={"instruction": "text"}
            ),
        ]
    pipeline.run(progress=False)
    pipeline.save(tmp_path / "pipeline.yaml")

    distiset = create_distiset(pipeline.run_dir, pipeline_path=tmp_path / "pipeline.yaml")

    assert sorted(distiset) == ["gen", "saver"]
    assert distiset["saver"]["train"]["text"] == ["a", "bb", "ccc"]
    assert "synthflow_metadata" not in distiset["gen"]["train"].column_names
    assert [a["name"] for a in distiset.artifacts["saver"]] == ["batch-a"]
    assert distiset.pipeline_config is not None
    with_metadata = create_distiset(pipeline.run_dir, enable_metadata=True)
    assert "synthflow_metadata" in with_metadata["gen"]["train"].column_names
    with pytest.raises(DistisetError, match="no finished run in"):
        create_distiset(tmp_path)
