"""TextGenerationToArgilla and PreferenceToArgilla against a loopback Argilla 2.x server."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from synthflow.checks import StepSpec, parametrize_with_checks
from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts, PreferenceToArgilla, TextGenerationToArgilla
from synthflow.steps.base import Step
from tests.servers import Reply, Request
from tests.servers.argilla import API_KEY, FakeArgilla


@pytest.fixture
def argilla(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgilla]:
    server = FakeArgilla(workspaces=("argilla", "team"))
    server.api.start()
    monkeypatch.setenv("ARGILLA_API_URL", server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", API_KEY)
    try:
        yield server
    finally:
        server.api.stop()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(step: Step, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with Pipeline(name="to-argilla") as pipeline:
        LoadDataFromDicts(name="load", data=rows) >> step
    return list(pipeline.run(progress=False, use_cache=False)["default"]["train"].to_list())


def test_text_generations_become_records_to_rate(argilla: FakeArgilla) -> None:
    rows = [
        {"instruction": "Name a colour.", "generation": ["Blue."]},
        {"instruction": "Name a fruit.", "generation": ["Apple.", "Pear.", "Apple.", None]},
    ]
    out = run(TextGenerationToArgilla(name="review", dataset_name="reviews"), rows)

    assert out == rows
    dataset = argilla.dataset("reviews")
    assert dataset["workspace_id"] == argilla.workspaces[0]["id"]  # the first, by default
    assert dataset["status"] == "ready"
    assert [(f["name"], f["required"]) for f in dataset["fields"]] == [
        ("id", True),
        ("instruction", True),
        ("generation", True),
    ]
    (question,) = dataset["questions"]
    assert question["name"] == "quality"
    assert question["settings"]["type"] == "label_selection"
    assert [o["value"] for o in question["settings"]["options"]] == ["bad", "good"]
    records = argilla.records("reviews")
    assert [r["fields"] for r in records] == [
        {"id": sha("Name a colour."), "instruction": "Name a colour.", "generation": "Blue."},
        {"id": sha("Name a fruit."), "instruction": "Name a fruit.", "generation": "Apple."},
        {"id": sha("Name a fruit."), "instruction": "Name a fruit.", "generation": "Pear."},
    ]


def test_a_rerun_updates_the_records_instead_of_adding_them_again(argilla: FakeArgilla) -> None:
    rows = [{"instruction": f"q{i}", "generation": f"a{i}"} for i in range(3)]
    for _ in range(2):
        run(TextGenerationToArgilla(dataset_name="reviews", dataset_workspace="team"), rows)

    assert len(argilla.datasets) == 1  # found by name the second time
    assert argilla.dataset("reviews")["workspace_id"] == argilla.workspaces[1]["id"]
    assert len(argilla.records("reviews")) == 3
    creates = [r for r in argilla.api.requests if r.method == "POST" and r.path.endswith("sets")]
    assert len(creates) == 1


def test_mapped_columns_name_the_fields(argilla: FakeArgilla) -> None:
    step = TextGenerationToArgilla(
        dataset_name="mapped", input_mappings={"instruction": "prompt", "generation": "answer"}
    )
    run(step, [{"prompt": "p", "answer": "a"}])
    assert argilla.records("mapped")[0]["fields"] == {"id": sha("p"), "prompt": "p", "answer": "a"}
    assert argilla.dataset("mapped")["questions"][0]["title"] == (
        "Is the answer a good answer to the prompt?"
    )


def test_records_go_in_requests_of_at_most_500(argilla: FakeArgilla) -> None:
    step = TextGenerationToArgilla(dataset_name="big")
    step.load()
    try:
        rows = [{"instruction": f"q{i}", "generation": "a"} for i in range(1203)]
        assert [r for batch in step.process(rows) for r in batch] == rows
    finally:
        step.unload()
    bulks = [r for r in argilla.api.requests if r.path.endswith("/records/bulk")]
    assert [len(r.json["items"]) for r in bulks] == [500, 500, 203]
    assert len(argilla.records("big")) == 1203


def test_preferences_become_records_with_suggested_ratings(argilla: FakeArgilla) -> None:
    rows = [
        {
            "instruction": "Say hi.",
            "generations": ["Hi!", "Hello.", None],
            "ratings": [5, 0, None],  # 0 is off the 1-5 scale: not suggested
            "rationales": ["Friendly.", "Fine.", None],
        },
        {"instruction": "Say bye.", "generations": ["Bye."]},
    ]
    out = run(PreferenceToArgilla(dataset_name="prefs", num_generations=3), rows)

    assert out[1] == {**rows[1], "ratings": None, "rationales": None}
    dataset = argilla.dataset("prefs")
    assert [(f["name"], f["required"]) for f in dataset["fields"]] == [
        ("id", True),
        ("instruction", True),
        ("generations-0", True),
        ("generations-1", False),
        ("generations-2", False),
    ]
    questions = {q["name"]: q for q in dataset["questions"]}
    assert list(questions) == [
        f"generations-{i}-{kind}" for i in range(3) for kind in ("rating", "rationale")
    ]
    assert questions["generations-0-rating"]["required"] is True
    assert [o["value"] for o in questions["generations-1-rating"]["settings"]["options"]] == [
        1,
        2,
        3,
        4,
        5,
    ]
    ids = {q["id"]: q["name"] for q in dataset["questions"]}
    first, second = argilla.records("prefs")
    assert first["fields"] == {
        "id": sha("Say hi."),
        "instruction": "Say hi.",
        "generations-0": "Hi!",
        "generations-1": "Hello.",
    }
    assert sorted((ids[s["question_id"]], s["value"]) for s in first["suggestions"]) == [
        ("generations-0-rating", 5),
        ("generations-0-rationale", "Friendly."),
        ("generations-1-rationale", "Fine."),
    ]
    assert second["suggestions"] == []


def test_more_generations_than_declared_gets_one_line(argilla: FakeArgilla) -> None:
    step = PreferenceToArgilla(dataset_name="prefs", num_generations=1)
    step.load()
    with pytest.raises(ValueError, match="set num_generations to the most a row holds"):
        list(step.process([{"instruction": "x", "generations": ["a", "b"]}]))
    step.unload()


def test_an_existing_dataset_with_other_required_fields_is_refused(argilla: FakeArgilla) -> None:
    first = TextGenerationToArgilla(dataset_name="taken")
    first.load()
    first.unload()
    with pytest.raises(ValueError) as info:
        PreferenceToArgilla(dataset_name="taken", num_generations=2).load()
    assert str(info.value) == (
        "PreferenceToArgilla: Argilla dataset 'taken' exists with required fields this step "
        "doesn't fill (generation); pick another dataset_name"
    )


def test_the_api_key_is_sent_and_never_written(argilla: FakeArgilla) -> None:
    with Pipeline(name="secret") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "q", "generation": "a"}]) >> (
            TextGenerationToArgilla(dataset_name="d", api_key="s3cret-key")
        )
    assert "s3cret-key" not in to_text(pipeline.dump(), "yaml")
    assert {r.headers["x-argilla-api-key"] for r in argilla.api.requests} <= {API_KEY}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_key": "wrong"}, "Argilla answered 401 to GET /api/v1/me/workspaces (check api_key)"),
        ({"dataset_workspace": "nope"}, "no workspace 'nope' for this user; set dataset_workspace"),
        ({"dataset_name": None}, "TextGenerationToArgilla needs dataset_name"),
        ({"api_url": "http://127.0.0.1:9"}, "can't reach Argilla at http://127.0.0.1:9"),
    ],
)
def test_setup_errors_get_one_line(
    argilla: FakeArgilla, kwargs: dict[str, Any], message: str
) -> None:
    step = TextGenerationToArgilla(**{"dataset_name": "d", **kwargs})
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        step.load()
    assert "\n" not in str(info.value)


def test_without_a_server_configured_the_error_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.delenv("ARGILLA_API_KEY", raising=False)
    with pytest.raises(ValueError, match="set ARGILLA_API_URL and ARGILLA_API_KEY"):
        TextGenerationToArgilla(dataset_name="d").load()


def test_a_failed_upsert_fails_the_run_naming_the_step(argilla: FakeArgilla) -> None:
    rows = [{"instruction": "q", "generation": "a"}]
    step = TextGenerationToArgilla(name="review", dataset_name="d")
    with Pipeline(name="fails") as pipeline:
        LoadDataFromDicts(data=rows) >> step
    answer = argilla.api.handler

    def failing_upserts(request: Request) -> Reply | object:
        return Reply(500, {"detail": "boom"}) if "/records/" in request.path else answer(request)

    argilla.api.handler = failing_upserts
    with pytest.raises(StepError) as info:
        pipeline.run(progress=False, use_cache=False)
    assert str(info.value).startswith("step 'review' failed on row 0: RuntimeError: ")
    assert "Argilla answered 500 to PUT /api/v1/datasets/" in str(info.value)


@pytest.fixture
def _argilla_for_checks(argilla: FakeArgilla) -> None:
    return None


SPECS = [
    StepSpec(
        TextGenerationToArgilla,
        {"dataset_name": "checked"},
        rows=[{"instruction": "q", "generation": "a"}],
    ),
    StepSpec(
        PreferenceToArgilla,
        {"dataset_name": "checked", "num_generations": 2},
        rows=[{"instruction": "q", "generations": ["a", "b"], "ratings": [4, 2]}],
    ),
]


@pytest.mark.usefixtures("_argilla_for_checks")
@parametrize_with_checks(SPECS)
def test_conformance(spec: StepSpec, check: Callable[[StepSpec], None]) -> None:
    check(spec)
