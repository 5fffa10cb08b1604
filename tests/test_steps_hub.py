"""PushToHub against a loopback Hub that speaks the endpoints ``datasets`` pushes through."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from synthflow.checks import StepSpec, parametrize_with_checks
from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts, PushToHub
from tests.servers.hub import FakeHub, hub_endpoint

# huggingface_hub's LFS upload passes bytes as httpx's deprecated ``data=``.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

ROWS = [{"instruction": f"q{i}", "generation": f"a{i}", "score": i} for i in range(3)]


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with hub_endpoint(monkeypatch) as running:
        yield running


def parquet_rows(hub: FakeHub, repo_id: str, split: str) -> list[dict[str, Any]]:
    (name,) = [f for f in hub.files[repo_id] if f.startswith(f"data/{split}-")]
    return list(pq.read_table(io.BytesIO(hub.files[repo_id][name])).to_pylist())


def card(hub: FakeHub, repo_id: str) -> dict[str, Any]:
    text = hub.files[repo_id]["README.md"].decode()
    header: dict[str, Any] = yaml.safe_load(text.split("---")[1])
    return header


def test_a_pipeline_pushes_its_rows_and_passes_them_on(hub: FakeHub) -> None:
    with Pipeline(name="push") as pipeline:
        load = LoadDataFromDicts(name="load", data=ROWS)
        push = PushToHub(name="push", repo_id="org/data", private=True, token="hf_secret")
        load >> push
    distiset = pipeline.run(progress=False, use_cache=False)

    assert distiset["default"]["train"].to_list() == ROWS
    assert parquet_rows(hub, "org/data", "train") == ROWS
    assert hub.private["org/data"] is True
    (split,) = card(hub, "org/data")["dataset_info"]["splits"]
    assert (split["name"], split["num_examples"]) == ("train", 3)
    writes = [r for r in hub.api.requests if r.path.endswith(("/create", "/commit/main"))]
    assert [r.headers.get("authorization") for r in writes] == ["Bearer hf_secret"] * 2


def test_a_second_split_joins_the_first(hub: FakeHub) -> None:
    for split, rows in (("train", ROWS), ("test", ROWS[:1])):
        step = PushToHub(repo_id="org/data", split=split)
        step.load()
        assert [r for batch in step.process(rows) for r in batch] == rows

    assert parquet_rows(hub, "org/data", "test") == ROWS[:1]
    assert parquet_rows(hub, "org/data", "train") == ROWS
    configs = card(hub, "org/data")["configs"][0]["data_files"]
    assert sorted(f["split"] for f in configs) == ["test", "train"]


def test_columns_that_some_rows_lack_are_null_there(hub: FakeHub) -> None:
    step = PushToHub(repo_id="org/ragged")
    step.load()
    list(step.process([{"a": 1}, {"a": 2, "b": "x"}]))
    assert parquet_rows(hub, "org/ragged", "train") == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_the_token_comes_from_hf_token_and_is_never_written(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    step = PushToHub(repo_id="org/env")
    step.load()
    list(step.process(ROWS))
    create = next(r for r in hub.api.requests if r.path == "/api/repos/create")
    assert create.headers["authorization"] == "Bearer hf_from_env"

    with Pipeline(name="secret") as pipeline:
        LoadDataFromDicts(data=ROWS) >> PushToHub(repo_id="org/data", token="hf_secret")
    assert "hf_secret" not in to_text(pipeline.dump(), "yaml")


def test_nothing_is_pushed_for_no_rows(hub: FakeHub) -> None:
    step = PushToHub(repo_id="org/empty")
    step.load()
    assert list(step.process([])) == []
    assert hub.api.requests == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PushToHub(), "PushToHub needs repo_id: pass repo_id='ORG/NAME'"),
        (lambda: PushToHub(repo_id="o/data/x"), "repo id 'o/data/x' must look like ORG/NAME"),
    ],
)
def test_a_missing_or_bad_repo_id_is_refused_at_load(
    make: Callable[[], PushToHub], message: str
) -> None:
    with pytest.raises(Exception, match=message) as info:
        make().load()
    assert "\n" not in str(info.value)


def test_a_refused_push_fails_the_run_with_one_line(hub: FakeHub) -> None:
    hub.fail_commits_with = 403
    with Pipeline(name="refused") as pipeline:
        LoadDataFromDicts(data=ROWS) >> PushToHub(name="push", repo_id="org/data")
    with pytest.raises(StepError) as info:
        pipeline.run(progress=False, use_cache=False)
    cause = str(info.value.__cause__)
    assert cause.startswith("PushToHub: pushing 3 rows to org/data failed: ")
    assert cause.endswith("(check repo_id and that the token can write to it)")
    assert "\n" not in cause


@pytest.fixture
def _hub_for_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with hub_endpoint(monkeypatch):
        yield


@pytest.mark.usefixtures("_hub_for_checks")
@parametrize_with_checks([StepSpec(PushToHub, {"repo_id": "org/checked"}, rows=ROWS)])
def test_conformance(spec: StepSpec, check: Callable[[StepSpec], None]) -> None:
    check(spec)
