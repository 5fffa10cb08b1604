"""Offline batch generation against loopback servers speaking OpenAI's and Anthropic's batch APIs.

A pipeline run with ``use_offline_batch_generation=True`` gathers a task's rows into batches,
waits for them (``offline_batch_generation_block_until_done=N``) or ends and is picked up by
the next run (``None``), sends failed and expired requests through the row-failure path, prices
answers at the batch price, and caches them like any other answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from typer.testing import CliRunner

from synthflow.cli import app
from synthflow.errors import LLMError
from synthflow.models.callpath.batch_state import read_batch_state
from synthflow.models.callpath.batches import cancel_batches
from synthflow.models.llms import AnthropicLLM, MistralLLM, OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration
from tests.servers import FakeAPI, fake_api
from tests.servers.batches import AnthropicBatchServer, OpenAIBatchServer
from tests.servers.chat import answer_text

PROMPTS = [f"p{i}" for i in range(6)]


def pipeline_of(llm: Any, prompts: list[str] = PROMPTS) -> Pipeline:
    with Pipeline(name="batched") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": p} for p in prompts])
        load >> TextGeneration(name="gen", llm=llm)
    return pipeline


def openai(api: FakeAPI, wait: float | None = 0.01, **kwargs: Any) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-4o-mini",
        base_url=api.url,
        api_key="k",
        use_offline_batch_generation=True,
        offline_batch_generation_block_until_done=wait,
        retry_backoff=0.01,
        **kwargs,
    )


def anthropic(api: FakeAPI, wait: float | None = 0.01) -> AnthropicLLM:
    return AnthropicLLM(
        model="claude-3-5-haiku",
        base_url=api.url,
        api_key="k",
        use_offline_batch_generation=True,
        offline_batch_generation_block_until_done=wait,
        retry_backoff=0.01,
    )


@pytest.fixture
def openai_server() -> Iterator[tuple[OpenAIBatchServer, FakeAPI]]:
    server = OpenAIBatchServer(fail={"p1"}, expire={"p3"})
    with fake_api(server) as api:
        server.url = api.url
        yield server, api


@pytest.fixture
def anthropic_server() -> Iterator[tuple[AnthropicBatchServer, FakeAPI]]:
    server = AnthropicBatchServer(fail={"p1"}, expire={"p3"})
    with fake_api(server) as api:
        server.url = api.url
        yield server, api


def by_prompt(distiset: Any) -> dict[str, dict[str, Any]]:
    return {row["instruction"]: row for row in distiset["default"]["train"]}


def test_openai_run_waits_for_its_batch_and_fails_only_the_lost_requests(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    pipeline = pipeline_of(openai(api))
    distiset = pipeline.run(progress=False)

    rows = by_prompt(distiset)
    assert server.created == 1 and not server.chat  # one batch, no synchronous call
    assert all(n == 1 for n in server.requests_by_prompt.values())
    for prompt in ("p0", "p2", "p4", "p5"):
        assert rows[prompt]["generation"] == answer_text(prompt, 0)
        assert rows[prompt][ERROR_COLUMN] is None
    # The request that errored and the one that expired fail their rows, and only those.
    assert rows["p1"]["generation"] is None and "status 400" in rows["p1"][ERROR_COLUMN]
    assert rows["p3"]["generation"] is None and "batch_expired" in rows["p3"][ERROR_COLUMN]
    assert rows["p1"]["model_name"] == "gpt-4o-mini"
    assert distiset.stats["gen"].errors == 2
    assert distiset.failed_rows == {"gen": 2}

    # Four answers of 10 + 5 tokens, at half of gpt-4o-mini's (0.15, 0.60) per million.
    llm_stats = distiset.stats["gen"].llm
    assert llm_stats.batched == 6 and llm_stats.input_tokens == 40
    assert llm_stats.cost == pytest.approx(4 * (10 * 0.075 + 5 * 0.30) / 1e6)

    (batch,) = read_batch_state(pipeline.run_dir)
    assert batch["collected"] and batch["ended"] and batch["requests"] == 6
    assert batch["status"] == "expired" and batch["counts"]["failed"] == 2
    assert batch["provider"] == "openai" and batch["task"] == "gen"


def test_lost_requests_fall_back_to_ordinary_calls_when_asked(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    llm = openai(api, offline_batch_generation_fallback=True)
    distiset = pipeline_of(llm).run(progress=False)

    rows = by_prompt(distiset)
    assert server.created == 1 and dict(server.chat) == {"p1": 1, "p3": 1}
    assert all(rows[p]["generation"] == answer_text(p, 0) for p in PROMPTS)
    assert not distiset.failed_rows
    # Four answers at the batch price, two at the full price.
    full = 10 * 0.15 + 5 * 0.60
    assert distiset.stats["gen"].llm.cost == pytest.approx((4 * full / 2 + 2 * full) / 1e6)


def test_a_rerun_without_batches_pays_only_for_what_the_batch_lost(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    pipeline_of(openai(api)).run(progress=False)
    direct = openai(api).model_copy(update={"use_offline_batch_generation": False})
    distiset = pipeline_of(direct).run(progress=False)

    assert server.created == 1
    assert dict(server.chat) == {"p1": 1, "p3": 1}  # the answered ones come from the cache
    rows = by_prompt(distiset)
    assert all(rows[p]["generation"] == answer_text(p, 0) for p in PROMPTS)
    assert distiset.stats["gen"].llm.cache_hits == 4


def test_a_run_that_doesnt_wait_ends_and_the_next_one_collects(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    server.hold = True  # the batch outlives the first run
    pipeline = pipeline_of(openai(api, wait=None))
    first = pipeline.run(progress=False)

    assert "in progress" in (first.stop_reason or "")
    assert len(first["default"]["train"]) == 0
    (state,) = read_batch_state(pipeline.run_dir)
    assert not state["collected"] and state["batch_id"] in server.batches
    shown = CliRunner().invoke(app, ["pipeline", "status", str(pipeline.run_dir)])
    assert "offline batches: 1 (1 still running at the provider)" in shown.output
    assert state["batch_id"] in shown.output

    # Still running at the provider: a second run looks, submits nothing, and ends again.
    again = pipeline_of(openai(api, wait=None)).run(progress=False)
    assert "in progress" in (again.stop_reason or "") and server.created == 1

    server.hold = False
    done = pipeline_of(openai(api, wait=None)).run(progress=False)
    assert server.created == 1  # nothing was submitted twice
    assert all(n == 1 for n in server.requests_by_prompt.values())
    assert done.stop_reason is None
    rows = by_prompt(done)
    assert rows["p0"]["generation"] == answer_text("p0", 0)
    assert "batch_expired" in rows["p3"][ERROR_COLUMN]
    assert read_batch_state(pipeline.run_dir)[0]["collected"]


def test_anthropic_run_waits_and_sends_failures_to_the_failure_path(
    anthropic_server: tuple[AnthropicBatchServer, FakeAPI],
) -> None:
    server, api = anthropic_server
    distiset = pipeline_of(anthropic(api)).run(progress=False)

    rows = by_prompt(distiset)
    assert server.created == 1 and not server.chat
    assert rows["p0"]["generation"] == answer_text("p0", 0)
    assert "errored" in rows["p1"][ERROR_COLUMN] and "invalid request" in rows["p1"][ERROR_COLUMN]
    assert "expired" in rows["p3"][ERROR_COLUMN]
    assert distiset.stats["gen"].errors == 2
    # claude-3-5-haiku lists (0.80, 4.00); its batches cost half.
    assert distiset.stats["gen"].llm.cost == pytest.approx(4 * (10 * 0.40 + 5 * 2.00) / 1e6)


def test_anthropic_resume_submits_nothing_twice(
    anthropic_server: tuple[AnthropicBatchServer, FakeAPI],
) -> None:
    server, api = anthropic_server
    server.hold = True
    first = pipeline_of(anthropic(api, wait=None)).run(progress=False)
    assert "in progress" in (first.stop_reason or "")
    server.hold = False
    done = pipeline_of(anthropic(api, wait=0.01)).run(progress=False)  # now it waits
    assert server.created == 1 and done.stop_reason is None
    assert len(done["default"]["train"]) == len(PROMPTS)


def left_as_intent(run_dir: Path) -> str:
    """Turn the run's last batch record back into the intent written before it was submitted,
    as a run that died before the provider's answer reached it leaves it; return its id."""
    files = [(orjson.loads(p.read_bytes()), p) for p in (run_dir / "batches").glob("*.json")]
    record, path = max(files, key=lambda f: f[0]["submitted_at"])
    batch_id = record["batch_id"]
    record.update(batch_id="", status="submitting", counts={}, files={})
    path.write_bytes(orjson.dumps(record))
    return str(batch_id)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_submitted_by_a_run_that_died_before_recording_it_is_adopted(
    provider: str,
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
    anthropic_server: tuple[AnthropicBatchServer, FakeAPI],
) -> None:
    server, api = openai_server if provider == "openai" else anthropic_server
    llm_of = openai if provider == "openai" else anthropic
    server.hold = True
    pipeline = pipeline_of(llm_of(api, wait=None))
    assert "in progress" in (pipeline.run(progress=False).stop_reason or "")
    batch_id = left_as_intent(pipeline.run_dir)
    assert read_batch_state(pipeline.run_dir)[0]["status"] == "submitting"
    # Newer batches of someone else's push it to the list's second page.
    server.add_others(120, server.batches[batch_id].lines[0])

    server.hold = False
    done = pipeline_of(llm_of(api, wait=0.01)).run(progress=False)
    assert server.created == 1 and server.listed == 2  # found at the provider, not sent again
    assert all(n == 1 for n in server.requests_by_prompt.values())
    assert done.stop_reason is None
    assert by_prompt(done)["p0"]["generation"] == answer_text("p0", 0)
    assert len(done["default"]["train"]) == len(PROMPTS)
    (state,) = read_batch_state(pipeline.run_dir)
    assert state["batch_id"] == batch_id and state["collected"]


def test_anthropic_adopts_the_batch_of_its_size_that_the_run_doesnt_know(
    anthropic_server: tuple[AnthropicBatchServer, FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthflow.models.llms.anthropic_batch import AnthropicBatchWire

    monkeypatch.setattr(AnthropicBatchWire, "max_requests", 3)
    server, api = anthropic_server
    server.hold = True
    pipeline = pipeline_of(anthropic(api, wait=None))
    pipeline.run(progress=False)
    assert server.created == 2  # two batches of three, made within the same second
    batch_id = left_as_intent(pipeline.run_dir)

    server.hold = False
    done = pipeline_of(anthropic(api, wait=0.01)).run(progress=False)
    assert server.created == 2 and len(done["default"]["train"]) == len(PROMPTS)
    assert sorted(s["batch_id"] for s in read_batch_state(pipeline.run_dir)) == sorted(
        server.batches
    )
    assert batch_id in server.batches


def test_an_intent_the_provider_never_received_is_sent_once(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    server.hold = True
    pipeline = pipeline_of(openai(api, wait=None))
    pipeline.run(progress=False)
    left_as_intent(pipeline.run_dir)
    server.batches.clear()  # the run died before its request reached the provider

    server.hold = False
    done = pipeline_of(openai(api, wait=0.01)).run(progress=False)
    assert server.created == 2 and done.stop_reason is None
    assert len(done["default"]["train"]) == len(PROMPTS)
    (state,) = read_batch_state(pipeline.run_dir)  # the stale intent is gone
    assert state["batch_id"] in server.batches and state["collected"]


def test_an_intent_that_cant_be_looked_up_sends_nothing_until_it_can(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    server.hold = True
    pipeline = pipeline_of(openai(api, wait=None))
    pipeline.run(progress=False)
    left_as_intent(pipeline.run_dir)

    server.hold, server.list_down = False, True
    blind = pipeline_of(openai(api, wait=0.01, max_retries=0)).run(progress=False)
    assert server.created == 1
    errors = [row[ERROR_COLUMN] for row in blind["default"]["train"]]
    assert len(errors) == len(PROMPTS) and all("could not look for" in e for e in errors)

    server.list_down = False
    done = pipeline_of(openai(api, wait=0.01)).run(progress=False)
    assert server.created == 1 and len(done["default"]["train"]) == len(PROMPTS)
    assert by_prompt(done)["p0"]["generation"] == answer_text("p0", 0)


def test_cancelled_batches_fail_the_rows_they_never_answered(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    server.hold = True
    pipeline = pipeline_of(openai(api, wait=None))
    pipeline.run(progress=False)
    (batch_id,) = cancel_batches(pipeline.run_dir, openai(api))
    assert server.batches[batch_id].cancelled
    assert read_batch_state(pipeline.run_dir)[0]["status"] == "cancelling"

    done = pipeline_of(openai(api)).run(progress=False)
    assert server.created == 1
    errors = [row[ERROR_COLUMN] for row in done["default"]["train"]]
    assert len(errors) == len(PROMPTS) and all("batch_cancelled" in e for e in errors)
    assert read_batch_state(pipeline.run_dir)[0]["status"] == "cancelled"


def test_a_batch_that_fails_validation_fails_its_rows_with_the_reason(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    server.reject = "model gpt-4o-mini is not available for batches"
    pipeline = pipeline_of(openai(api))
    distiset = pipeline.run(progress=False)
    errors = [row[ERROR_COLUMN] for row in distiset["default"]["train"]]
    assert len(errors) == len(PROMPTS)
    assert all("not available for batches" in e for e in errors)
    assert read_batch_state(pipeline.run_dir)[0]["status"] == "failed"


def test_a_batch_over_the_budget_is_not_sent(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    llm = openai(api, generation_kwargs={"max_new_tokens": 1000})
    # Six requests of ~1000 output tokens at $0.30 per million: about $0.0018.
    distiset = pipeline_of(llm).run(progress=False, max_cost=0.001)
    assert server.created == 0 and not server.files
    assert "not sent" in (distiset.stop_reason or "")


def test_rows_fill_batches_up_to_the_providers_limit(
    openai_server: tuple[OpenAIBatchServer, FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthflow.models.llms.openai_batch import OpenAIBatchWire

    monkeypatch.setattr(OpenAIBatchWire, "max_requests", 4)
    server, api = openai_server
    distiset = pipeline_of(openai(api), [f"q{i}" for i in range(10)]).run(progress=False)
    assert server.created == 3  # 4 + 4 + 2
    assert sorted(len(b.lines) for b in server.batches.values()) == [2, 4, 4]
    assert len(distiset["default"]["train"]) == 10


def test_rows_go_downstream_as_their_batch_ends(
    openai_server: tuple[OpenAIBatchServer, FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthflow.models.llms.openai_batch import OpenAIBatchWire
    from synthflow.steps import StepInput, step

    monkeypatch.setattr(OpenAIBatchWire, "max_requests", 4)
    server, api = openai_server
    server.held = {f"s{i}" for i in range(4, 10)}  # only the first batch ends...
    seen: list[int] = []

    @step(inputs=["generation"], outputs=["seen"])
    def Release(inputs: StepInput):  # type: ignore[no-untyped-def]
        seen.append(len(inputs))
        server.held = set()  # ...until its rows reach the next step
        for row in inputs:
            row["seen"] = True
        yield inputs

    with Pipeline(name="streaming") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": f"s{i}"} for i in range(10)])
        load >> TextGeneration(name="gen", llm=openai(api)) >> Release(name="release")
    distiset = pipeline.run(progress=False)
    assert server.created == 3 and len(distiset["default"]["train"]) == 10
    assert seen and seen[0] <= 4  # the first batch's rows went on alone


def test_a_run_that_doesnt_wait_keeps_the_answers_of_the_batches_that_ended(
    openai_server: tuple[OpenAIBatchServer, FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthflow.models.llms.openai_batch import OpenAIBatchWire

    monkeypatch.setattr(OpenAIBatchWire, "max_requests", 4)
    server, api = openai_server
    prompts = [f"r{i}" for i in range(10)]
    server.polls, server.held = 0, set(prompts[4:])
    first = pipeline_of(openai(api, wait=None), prompts).run(progress=False)
    assert "3 offline batches" not in (first.stop_reason or "")
    assert "2 offline batches" in (first.stop_reason or "")

    server.held = set()
    done = pipeline_of(openai(api, wait=None), prompts).run(progress=False)
    assert done.stop_reason is None and server.created == 3
    assert all(n == 1 for n in server.requests_by_prompt.values()) and not server.chat
    assert sorted(row["instruction"] for row in done["default"]["train"]) == sorted(prompts)


def test_batch_mode_is_refused_where_the_provider_has_no_batch_api() -> None:
    with pytest.raises(ValueError, match="no offline batch API"):
        MistralLLM(model="m", api_key="k", use_offline_batch_generation=True)


def test_batch_mode_outside_a_run_says_how_to_use_it() -> None:
    llm = OpenAILLM(model="m", api_key="k", use_offline_batch_generation=True)
    with pytest.raises(LLMError, match="pipeline run"):
        anyio.run(lambda: llm.agenerate([{"role": "user", "content": "hi"}]))


def test_groq_speaks_openais_batch_api(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    from synthflow.models.llms import GroqLLM

    server, api = openai_server
    llm = GroqLLM(
        model="llama-3.1-8b-instant",
        base_url=api.url,
        api_key="k",
        use_offline_batch_generation=True,
        offline_batch_generation_block_until_done=0.01,
    )
    distiset = pipeline_of(llm, ["g0", "g1"]).run(progress=False)
    assert server.created == 1 and not server.chat
    assert by_prompt(distiset)["g1"]["generation"] == answer_text("g1", 0)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_several_generations_per_row_in_a_batch(
    provider: str,
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
    anthropic_server: tuple[AnthropicBatchServer, FakeAPI],
) -> None:
    server, api = openai_server if provider == "openai" else anthropic_server
    llm = openai(api) if provider == "openai" else anthropic(api)
    with Pipeline(name="several") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "x0"}, {"instruction": "x1"}])
        load >> TextGeneration(name="gen", llm=llm, num_generations=2, group_generations=True)
    distiset = pipeline.run(progress=False)

    rows = by_prompt(distiset)
    assert server.created == 1 and not server.chat
    assert len(rows["x0"]["generation"]) == 2 and all(rows["x0"]["generation"])
    # OpenAI asks for both in one request (n=2); Anthropic, which has no n, in two.
    assert server.requests_by_prompt["x0"] == (1 if provider == "openai" else 2)
    second = answer_text("x0", 1) if provider == "openai" else answer_text("x0", 0)
    assert rows["x0"]["generation"][1] == second


def test_distilabels_saved_defaults_load_and_real_values_are_refused() -> None:
    from synthflow.models.llms import OfflineLLM

    llm = OpenAILLM(model="m", api_key="k", jobs_ids=None, use_offline_batch_generation=False)
    assert not llm.use_offline_batch_generation
    OfflineLLM(use_offline_batch_generation=False, offline_batch_generation_block_until_done=None)
    with pytest.raises(ValueError, match="run directory"):
        OpenAILLM(model="m", api_key="k", jobs_ids=("batch_1",))
    with pytest.raises(ValueError, match="batch API"):
        OfflineLLM(use_offline_batch_generation=True)


def test_a_generator_task_sends_its_calls_as_a_batch_and_a_run_that_doesnt_wait_ends(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    from synthflow.steps.tasks import EmbeddingTaskGenerator

    server, api = openai_server
    server.hold = True
    with Pipeline(name="source") as pipeline:
        EmbeddingTaskGenerator(
            name="brainstorm", category="text-retrieval", llm=openai(api, wait=None)
        )
    distiset = pipeline.run(progress=False)
    assert server.created == 1 and not server.chat
    assert "in progress" in (distiset.stop_reason or "")


def test_two_tasks_sharing_prompts_share_one_batched_request(
    openai_server: tuple[OpenAIBatchServer, FakeAPI],
) -> None:
    server, api = openai_server
    with Pipeline(name="shared") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "t0"}, {"instruction": "t1"}])
        first = TextGeneration(name="first", llm=openai(api), cache_scope="prompt")
        second = TextGeneration(
            name="second",
            llm=openai(api),
            cache_scope="prompt",
            output_mappings={"generation": "again", "model_name": "model_again"},
        )
        load >> [first, second]
    distiset = pipeline.run(progress=False)
    assert dict(server.requests_by_prompt) == {"t0": 1, "t1": 1} and not server.chat
    assert distiset["first"]["train"][0]["generation"] == answer_text("t0", 0)
    assert distiset["second"]["train"][1]["again"] == answer_text("t1", 0)
