"""Tasks off the event loop: a task with ``executor="thread"`` makes its calls on the run's call
path (response cache, accounting, budgets) as a task on the loop does, and one with
``executor="process"`` runs only a model that computes there (an API client is refused)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthflow.errors import PipelineValidationError, StepError
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.local.base import LocalLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM
from tests.servers import Reply, Request, fake_api
from tests.test_embeddings import client, embeddings_api
from tests.test_openai import completion, llm

THREADS = {"executor": "thread", "workers": 2, "input_batch_size": 3}


def generate_pipeline(name: str, rows: int, model: Any, **task: Any) -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(rows)])
        load >> TextGeneration(name="gen", llm=model, **task)
    return pipeline


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


def test_a_rerun_is_served_from_the_cache_and_the_calls_are_counted() -> None:
    with fake_api(completion) as api:
        pipeline = generate_pipeline("threads", 7, llm(api), **THREADS)
        first = pipeline.run(progress=False)
        sent = len(api.requests)
        second = pipeline.run(progress=False)
        assert len(api.requests) == sent == 7  # nothing more on the re-run
        calls = first.stats["gen"].llm
        assert (calls.requests, calls.input_tokens, calls.output_tokens) == (7, 70, 35)
        assert calls.in_flight == 0
        assert calls.cost == pytest.approx(first.llm_usage().cost) and calls.cost > 0
        again = second.stats["gen"].llm
        assert (again.requests, again.cache_hits, again.cost) == (0, 7, 0.0)
        on_the_loop = generate_pipeline("loop", 7, llm(api)).run(progress=False)
    assert rows_of(first) == rows_of(second) == rows_of(on_the_loop)


def test_max_cost_stops_a_task_on_threads() -> None:
    with fake_api(completion) as api:
        # gpt-4o-mini: 10 tokens in and 5 out cost $4.5e-6 a call; the budget holds about four.
        pipeline = generate_pipeline("budget", 300, llm(api), **THREADS)
        distiset = pipeline.run(progress=False, max_cost=2e-5)
    produced = len(rows_of(distiset))
    assert distiset.stop_reason and "max_cost" in distiset.stop_reason
    assert 0 < produced < 300
    # Calls already under way when the budget was reached finish; no new one starts.
    assert produced <= len(api.requests) <= produced + 2 * THREADS["input_batch_size"]
    assert distiset.llm_usage().requests == len(api.requests)


class Stalls:
    """A server handler that holds every request until ``release`` (or ``seconds``): a run whose
    calls were left to finish would wait that long, and ``answered`` would be set by then."""

    def __init__(self, seconds: float) -> None:
        self.arrived, self.release, self.answered = (threading.Event() for _ in range(3))
        self.seconds = seconds

    def __call__(self, request: Request) -> Reply:
        self.arrived.set()
        self.release.wait(self.seconds)
        self.answered.set()
        return completion(request)


def test_a_failed_run_cancels_the_calls_of_worker_threads() -> None:
    stalls = Stalls(seconds=60)

    class FailsOnceACallIsUnderWay(Step):
        @property
        def inputs(self) -> list[str]:
            return ["instruction"]

        def process(self, inputs: StepInput) -> Iterator[list[Row]]:
            stalls.arrived.wait(60)
            raise RuntimeError("boom")

    with fake_api(stalls) as api, Pipeline(name="cancel") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=llm(api, max_retries=0), **THREADS)
        load >> FailsOnceACallIsUnderWay(name="boom", executor="thread")
        try:
            with pytest.raises(StepError, match="boom"):
                pipeline.run(progress=False)
            assert stalls.arrived.is_set() and not stalls.answered.is_set()
        finally:
            stalls.release.set()


COMPUTED_IN: list[str] = []
"""The threads ``Echo`` computed in, one per conversation."""


def test_failed_calls_fail_their_rows_as_on_the_loop() -> None:
    def refuses_q1(request: Request) -> Reply:
        if request.json["messages"][-1]["content"] == "q1":
            return Reply(400, {"error": {"message": "bad request"}})
        return completion(request)

    with fake_api(refuses_q1) as api:
        on_threads = generate_pipeline("errors-threads", 6, llm(api), **THREADS)
        on_the_loop = generate_pipeline("errors-loop", 6, llm(api), concurrency=1)
        threads, loop = on_threads.run(progress=False), on_the_loop.run(progress=False)
    assert rows_of(threads) == rows_of(loop)
    assert [r["synthflow_error"] is not None for r in rows_of(threads)] == [
        i == 1 for i in range(6)
    ]
    assert threads.stats["gen"].llm.failures == loop.stats["gen"].llm.failures == 1


class Echo(LocalLLM):
    """A local model: answers with the prompt, and notes the thread it computed in."""

    @property
    def model_name(self) -> str:
        return "echo"

    def load(self) -> None:
        self._runtime.model = "loaded"

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        COMPUTED_IN.extend(threading.current_thread().name for _ in conversations)
        return [
            GenerateOutput([f"echo {c[-1]['content']}"] * num_generations, Usage(3, 2))
            for c in conversations
        ]


def test_a_local_model_computes_in_the_worker_thread_and_is_cached() -> None:
    COMPUTED_IN.clear()
    pipeline = generate_pipeline("local-threads", 5, Echo(), **THREADS)
    first = pipeline.run(progress=False)
    computed = list(COMPUTED_IN)
    second = pipeline.run(progress=False)
    assert len(computed) == 5 and threading.main_thread().name not in computed
    assert computed == COMPUTED_IN  # the re-run computed nothing
    assert [r["generation"] for r in rows_of(first)] == [f"echo q{i}" for i in range(5)]
    assert rows_of(second) == rows_of(first)
    assert first.stats["gen"].llm.requests == 5 and first.stats["gen"].llm.input_tokens == 15
    assert second.stats["gen"].llm.cache_hits == 5


def test_a_plain_function_llm_is_called_in_the_worker_thread_and_counted() -> None:
    called_in: list[str] = []

    def answer(messages: ChatType) -> str:
        called_in.append(threading.current_thread().name)
        return f"re: {messages[-1]['content']}"

    distiset = generate_pipeline("function-threads", 4, FunctionLLM(fn=answer), **THREADS).run(
        progress=False
    )
    assert len(called_in) == 4 and threading.main_thread().name not in called_in
    assert [r["generation"] for r in rows_of(distiset)] == [f"re: q{i}" for i in range(4)]
    assert distiset.stats["gen"].llm.requests == 4


def test_an_api_client_in_a_worker_process_is_refused() -> None:
    with fake_api(completion) as api:
        pipeline = generate_pipeline("process", 2, llm(api), executor="process")
        with pytest.raises(
            PipelineValidationError,
            match=r"step 'gen' calls OpenAILLM, an API client, from executor='process'.*"
            r"use executor='loop'",
        ):
            pipeline.run(progress=False)
        assert api.requests == []


def test_an_api_embedding_model_in_a_worker_process_is_refused() -> None:
    from synthflow.steps import EmbeddingGeneration

    with fake_api(embeddings_api) as api, Pipeline(name="embed-process") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "a"}])
        load >> EmbeddingGeneration(name="embed", embeddings=client(api.url), executor="process")
        with pytest.raises(PipelineValidationError, match="OpenAIEmbeddings, an API client"):
            pipeline.run(progress=False)
        assert api.requests == []


def test_offline_batches_are_refused_off_the_loop() -> None:
    with fake_api(completion) as api:
        batching = llm(api, use_offline_batch_generation=True)
        pipeline = generate_pipeline("batches-thread", 2, batching, executor="thread")
        with pytest.raises(PipelineValidationError, match="only a task on the event loop"):
            pipeline.run(progress=False)


SIGINT_SCRIPT = """
import sys
from synthflow.models.llms import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration

llm = OpenAILLM(model="gpt-4o-mini", base_url=sys.argv[1] + "/v1", api_key="sk-test")
with Pipeline(name="sigint-threads") as pipeline:
    load = LoadDataFromDicts(data=[{"instruction": "q"}])
    load >> TextGeneration(name="gen", llm=llm, executor="thread")

if __name__ == "__main__":
    pipeline.run(progress=False)
"""


@pytest.mark.timeout(180)  # a fresh process imports synthflow on a loaded machine
def test_ctrl_c_does_not_wait_for_the_calls_of_worker_threads(tmp_path: Path) -> None:
    stalls = Stalls(seconds=120)
    script = tmp_path / "run.py"
    script.write_text(SIGINT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with fake_api(stalls) as api:
        proc = subprocess.Popen(
            [sys.executable, str(script), api.url], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            assert stalls.arrived.wait(90), "the call never reached the server"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            assert not stalls.answered.is_set()  # the run ended before its call was answered
            assert proc.returncode != 0 and "KeyboardInterrupt" in err
        finally:
            stalls.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
