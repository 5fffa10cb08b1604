"""Serving a local-model step over HTTP for a Ray run, without Ray: what a step's server is
started with, what its client sends, what is refused, and the server process's lifecycle
(a stand-in OpenAI-compatible server, ``tests.servers.openai_server``, in a real process)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from synthflow.distributed.model_servers import ModelServer
from synthflow.distributed.serving import (
    PLAIN_CHAT_TEMPLATE,
    ModelServerSettings,
    ServedStep,
    TokenizerSource,
    served_plan,
    served_steps,
    vllm_request_kwargs,
)
from synthflow.errors import LLMConnectionError, ModelServerError, PipelineValidationError
from synthflow.models import ClientvLLM
from synthflow.models.llms.local.base import PLAIN_PROMPT_STOP, plain_prompt
from synthflow.models.llms.local.vllm import vLLM
from synthflow.pipeline._validate import Plan
from synthflow.steps import StepResources
from synthflow.steps.tasks import MagpieGenerator, TextGeneration
from tests.test_local_vllm import install_vllm

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = (
    "{python}",
    "-m",
    "tests.servers.openai_server",
    "--model",
    "{model}",
    "--host",
    "{host}",
    "--port",
    "{port}",
)


def templated() -> vLLM:
    """A vLLM with a chat template of its own: its server never looks for the tokenizer's."""
    return vLLM(model="m", chat_template="{{ messages }}")


def served(llm: vLLM, **step: object) -> ServedStep:
    task = TextGeneration(name="gen", llm=llm, **step)  # type: ignore[arg-type]
    return served_steps({"gen": task})["gen"]


def test_a_vllm_step_is_served_with_its_engine_settings_as_server_flags() -> None:
    llm = vLLM(
        model="org/m",
        revision="abc",
        dtype="bfloat16",
        trust_remote_code=True,
        tensor_parallel_size=2,
        max_model_len=4096,
        chat_template="{{ messages }}",
        engine_kwargs={
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "max_num_seqs": 64,
            "limit_mm_per_prompt": {"x": 1},
        },
    )
    entry = served(llm, resources=StepResources(replicas=3))
    argv = entry.command(ModelServerSettings().command, "10.0.0.5", 8123, "/t/chat.jinja")
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[3:11] == [
        "--model",
        "org/m",
        "--tensor-parallel-size",
        "2",
        "--host",
        "10.0.0.5",
        "--port",
        "8123",
    ]
    flags = argv[11:]
    pairs = {flag: flags[i + 1] for i, flag in enumerate(flags[:-1]) if flag.startswith("--")}
    assert pairs["--revision"] == "abc"
    assert pairs["--dtype"] == "bfloat16"
    assert pairs["--max-model-len"] == "4096"
    assert pairs["--gpu-memory-utilization"] == "0.9"
    assert pairs["--chat-template"] == "/t/chat.jinja"
    assert entry.chat_template == "{{ messages }}"
    assert "--no-enable-prefix-caching" in flags  # asked for: not left to the default
    assert pairs["--max-num-seqs"] == "64"
    assert pairs["--limit-mm-per-prompt"] == '{"x": 1}'
    assert "--trust-remote-code" in flags and "--enforce-eager" in flags
    assert "--quantization" not in flags  # None: the server's default
    assert served(vLLM(model="m")).command(("x",), "h", 1, None) == [
        "x",
        "--dtype",
        "auto",
        "--gpu-memory-utilization",
        "0.9",
    ]
    assert (entry.replicas, entry.tensor_parallel_size) == (3, 2)
    client = entry.client_at("http://10.0.0.5:8123")
    assert client.base_url == "http://10.0.0.5:8123/v1"
    assert client.model_name == llm.model_name == "org/m"
    assert client.max_concurrency == llm.max_batch_size
    # Answered as the local class would be: cached as its answers, whichever replica answers.
    assert client.cache_identity() == llm.cache_identity()
    assert entry.client_at("http://other:1").cache_identity() == llm.cache_identity()


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ({}, {"max_new_tokens": 512}),
        ({"max_tokens": 40, "temperature": 0.7}, {"max_new_tokens": 40, "temperature": 0.7}),
        ({"max_new_tokens": 9, "do_sample": False}, {"max_new_tokens": 9, "temperature": 0.0}),
        ({"stop": "###", "seed": 3}, {"max_new_tokens": 512, "stop": ["###"], "seed": 3}),
        (
            {"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1, "echo": True, "logprobs": 2},
            {
                "max_new_tokens": 512,
                "extra_body": {"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1},
            },
        ),
        (
            {"extra_sampling_params": {"min_tokens": 4, "best_of": 2}, "top_p": 0.9},
            {"max_new_tokens": 512, "top_p": 0.9, "extra_body": {"min_tokens": 4, "best_of": 2}},
        ),
    ],
)
def test_generation_kwargs_become_the_servers_request_fields(
    given: dict[str, object], sent: dict[str, object]
) -> None:
    assert vllm_request_kwargs("gen", given) == sent
    # The client takes them as they are (checked against its own spec).
    assert ClientvLLM(model="m", generation_kwargs=sent).generation_kwargs == sent


def test_what_a_server_cant_take_is_refused_in_one_line_naming_the_step() -> None:
    with pytest.raises(PipelineValidationError, match="step 'gen': logits_processors") as e:
        served(vLLM(model="m", generation_kwargs={"logits_processors": [print]}))
    assert "\n" not in str(e.value)
    with pytest.raises(PipelineValidationError, match=r"step 'gen': resources\.gpus=1"):
        served(vLLM(model="m", tensor_parallel_size=2), resources=StepResources(gpus=1))
    magpie = vLLM(model="m", magpie_pre_query_template="llama3", chat_template="x")
    with pytest.raises(PipelineValidationError, match="step 'magpie': Magpie with a custom"):
        served_steps({"magpie": MagpieGenerator(name="magpie", llm=magpie, num_rows=1)})


def test_magpie_and_structured_output_map_onto_the_client() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    llm = vLLM(model="m", magpie_pre_query_template="qwen2", structured_output=schema)
    client = served(llm).client_at("http://h:1")
    assert client.structured_output == schema
    assert client.pre_query_template() == llm.pre_query_template()
    assert client.user_turn_problem() is None


def test_served_plan_spreads_shards_over_the_replicas_and_leaves_other_steps() -> None:
    task = TextGeneration(name="gen", llm=vLLM(model="m"), executor="process")
    other = TextGeneration(name="api", llm=ClientvLLM(model="x", base_url="http://x"))
    plan = Plan({"gen": task, "api": other}, {"gen": [], "api": []}, {"gen": [], "api": []})
    entry = served_steps(plan.steps)
    assert list(entry) == ["gen"]
    urls = {"gen": ["http://a:1", "http://b:2"]}
    bases = [served_plan(plan, entry, urls, shard).steps["gen"].llm.base_url for shard in range(3)]
    assert bases == ["http://a:1/v1", "http://b:2/v1", "http://a:1/v1"]
    copy = served_plan(plan, entry, urls, 0)
    assert copy.steps["gen"].executor == "loop"
    assert copy.steps["api"] is other
    assert plan.steps["gen"].llm.model == "m" and isinstance(plan.steps["gen"].llm, vLLM)


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers signal 0: it is dead once its state says so.
        status = Path(f"/proc/{pid}/stat")
        if status.exists() and status.read_text().split(")")[-1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def starts_in(record: Path) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in record.read_bytes().splitlines()]
    return [event for event in lines if event["event"] == "start"]


@pytest.mark.timeout(60)
def test_a_server_that_exits_is_started_again_on_its_port_until_its_restarts_are_spent(
    tests_on_path: None, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    server = ModelServer("gen", restarts=1)
    try:
        url, _ = server.start(served(vLLM(model="m")), (*STAND_IN, "--record", str(record)), 30)
        first = server.pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert gone(first)
        # Started again: a new process, with the same argv (its port), that answers.
        deadline = time.monotonic() + 30
        while len(starts_in(record)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        again = starts_in(record)
        assert len(again) == 2 and again[1]["argv"] == again[0]["argv"]
        assert again[1]["pid"] == server.pid() != first
        client = ClientvLLM(model="m", base_url=f"{url}/v1", max_retries=0)
        assert client.generate([[{"role": "user", "content": "hi"}]])[0]["generations"]
        os.kill(int(again[1]["pid"]), signal.SIGKILL)  # no restart left: lost, and says why
        why = server.lost()
    finally:
        server.stop()
    assert why.startswith(f"the model server of step 'gen' at {url} exited with code -9")
    # Killed once serving ("no restarts left"), or while the watcher still checks the restarted
    # server is ready (a race the test can't order): lost for good either way, in one line.
    assert "no restarts left" in why or "could not be started again" in why
    assert "\n" not in why
    assert len(starts_in(record)) == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("wait", [0.0, 30.0])
def test_a_served_client_waits_for_its_replica_to_come_back(wait: float) -> None:
    import socket
    import threading

    import anyio

    from tests.servers import FakeAPI
    from tests.servers.chat import completion

    with socket.socket() as probe:  # a port nothing listens on, until the replica is back
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waiting = served(vLLM(model="m")).client_at(f"http://127.0.0.1:{port}", replica_wait=wait)
    waiting = waiting.model_copy(update={"max_retries": 0})  # only the replica's wait
    back: list[FakeAPI] = []

    def come_back() -> None:  # binds only now: until then, connections are refused
        back.append(FakeAPI(completion, address=("127.0.0.1", port)).start())

    async def ask() -> Any:
        try:
            return await waiting.agenerate([{"role": "user", "content": "hi"}])
        finally:
            await waiting.aclose()

    timer = threading.Timer(1.5, come_back)  # after the first tries have failed
    timer.start()
    try:
        if wait:
            assert anyio.run(ask).generations == ["answer 0.0 to hi"]
        else:
            with pytest.raises(LLMConnectionError):
                anyio.run(ask)
    finally:
        timer.join()
        for server in back:
            server.stop()


@pytest.mark.timeout(60)
def test_a_server_answers_then_stops_with_its_process(tests_on_path: None, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    server = ModelServer("gen")
    template = "{% for m in messages %}\\n{{ m['content'] }} — é{% endfor %}\n"
    llm = vLLM(model="m", chat_template=template)
    url, plain = server.start(served(llm), (*STAND_IN, "--record", str(record)), 30)
    pid = server.pid()
    assert pid is not None and url.startswith("http://127.0.0.1:") and not plain
    start = orjson.loads(record.read_bytes().splitlines()[0])
    assert start["event"] == "start" and start["pid"] == pid
    assert "--gpu-memory-utilization" in start["argv"]  # the model's flags reached it
    template_file = Path(start["argv"][start["argv"].index("--chat-template") + 1])
    assert template_file.read_text(encoding="utf-8") == template  # as written, in a file
    server.stop()
    assert gone(pid)
    server.stop()  # twice is fine


@pytest.mark.parametrize(
    ("files", "has"),
    [
        ({"tokenizer_config.json": "{}"}, False),
        ({"tokenizer_config.json": '{"chat_template": "{{ x }}"}'}, True),
        ({"tokenizer_config.json": "{}", "chat_template.jinja": "{{ x }}"}, True),
        ({}, True),  # nothing to tell from: the server decides
    ],
)
def test_whether_a_tokenizer_has_a_chat_template_is_read_from_its_files(
    tmp_path: Path, files: dict[str, str], has: bool
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert TokenizerSource(str(tmp_path)).has_chat_template() is has


def random_text(rng: random.Random, most: int) -> str:
    alphabet = "ab \n{}%#<>|'\"\\é🙂"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))


def plain_messages(rng: random.Random) -> list[dict[str, object]]:
    """A random conversation: text, None or a list of text parts as content; odd roles too."""
    messages: list[dict[str, object]] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(3)
        content: object = (
            random_text(rng, 20)
            if kind == 0
            else None
            if kind == 1
            else [{"type": "text", "text": random_text(rng, 20)} for _ in range(rng.randint(0, 2))]
        )
        role = rng.choice(["system", "user", "assistant", "tool", "uSER"])
        messages.append({"role": role, "content": content})
    return messages


@pytest.mark.parametrize("seed", range(200))
def test_the_plain_chat_template_renders_the_local_classes_plain_prompt(seed: int) -> None:
    rng = random.Random(seed)
    messages = plain_messages(rng)
    bos = rng.choice([None, "", "<s>", "<|begin_of_text|>"])
    # Rendered as transformers renders chat templates (trim_blocks, lstrip_blocks).
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    rendered = env.from_string(PLAIN_CHAT_TEMPLATE).render(
        messages=messages, bos_token=bos, add_generation_prompt=True
    )
    assert rendered == (bos or "") + plain_prompt(messages)  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_a_tokenizer_without_a_chat_template_is_served_the_plain_one(
    tests_on_path: None, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer_config.json").write_text('{"bos_token": "<s>"}')
    record = tmp_path / "record.jsonl"
    entry = served(vLLM(model=str(model), generation_kwargs={"stop": "###"}))
    server = ModelServer("gen")
    try:
        _, plain = server.start(entry, (*STAND_IN, "--record", str(record)), 30)
        argv = orjson.loads(record.read_bytes().splitlines()[0])["argv"]
        template = Path(argv[argv.index("--chat-template") + 1]).read_text(encoding="utf-8")
    finally:
        server.stop()
    assert plain and template == PLAIN_CHAT_TEMPLATE
    # The shards' client then stops where the local class's answers end under that template.
    client = entry.with_plain_template().client_at("http://h:1")
    assert client.generation_kwargs["stop"] == ["###", PLAIN_PROMPT_STOP]


@pytest.mark.timeout(60)
def test_a_server_that_dies_at_start_says_so_with_its_last_lines(tests_on_path: None) -> None:
    crash = (
        "{python}",
        "-c",
        "import sys; print('loading {model}'); "
        "print('RuntimeError: CUDA out of memory', file=sys.stderr); sys.exit(3)",
    )
    with pytest.raises(ModelServerError) as e:
        ModelServer("gen").start(served(templated()), crash, 30)
    message = str(e.value)
    assert "\n" not in message
    assert "step 'gen' exited with code 3" in message
    assert "loading m | RuntimeError: CUDA out of memory" in message


def test_a_command_that_cant_run_is_a_one_line_error() -> None:
    with pytest.raises(ModelServerError, match=r"step 'gen' can't start .*No such file"):
        ModelServer("gen").start(served(templated()), ("/nonexistent/server",), 30)


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_is_stopped_at_the_timeout(tests_on_path: None) -> None:
    hang = ("{python}", "-c", "import time; print('still loading', flush=True); time.sleep(60)")
    server = ModelServer("gen")
    started = time.monotonic()
    with pytest.raises(ModelServerError, match=r"within 1s .*still loading"):
        server.start(served(templated()), hang, 1.0)
    assert time.monotonic() - started < 10
    pid = server.pid()
    assert pid is not None and gone(pid)


@pytest.mark.timeout(60)
def test_a_server_dies_with_the_process_that_started_it(
    tests_on_path: None, tmp_path: Path
) -> None:
    # The actor killed outright: its server must not be left running.
    record = tmp_path / "record.jsonl"
    script = (
        "import sys, time\n"
        "from synthflow.distributed.model_servers import ModelServer\n"
        "from tests.test_model_servers import served, STAND_IN, templated\n"
        f"command = (*STAND_IN, '--record', {str(record)!r})\n"
        "ModelServer('gen').start(served(templated()), command, 30)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True
    ) as parent:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        pid = orjson.loads(record.read_bytes().splitlines()[0])["pid"]
        parent.send_signal(signal.SIGKILL)
    assert gone(pid)


_SAMPLING: dict[str, Callable[[random.Random], object]] = {
    "max_new_tokens": lambda r: r.randint(1, 4096),
    "max_tokens": lambda r: r.randint(1, 4096),
    "min_tokens": lambda r: r.randint(0, 16),
    "temperature": lambda r: r.choice([0.0, 2.0, r.uniform(0, 2)]),
    "do_sample": lambda r: r.random() < 0.5,
    "top_p": lambda r: r.choice([1.0, r.uniform(0.01, 1)]),
    "top_k": lambda r: r.randint(-1, 100),
    "min_p": lambda r: r.choice([0.0, r.uniform(0, 1)]),
    "presence_penalty": lambda r: r.uniform(-2, 2),
    "frequency_penalty": lambda r: r.uniform(-2, 2),
    "repetition_penalty": lambda r: r.uniform(0.5, 2),
    "seed": lambda r: r.randint(0, 2**31),
    "stop": lambda r: (
        random_text(r, 3)
        if r.random() < 0.5
        else [random_text(r, 3) for _ in range(r.randint(0, 3))]
    ),
    "stop_token_ids": lambda r: [r.randint(0, 50_000) for _ in range(r.randint(0, 3))],
    "include_stop_str_in_output": lambda r: r.random() < 0.5,
    "ignore_eos": lambda r: r.random() < 0.5,
    "skip_special_tokens": lambda r: r.random() < 0.5,
    "logprobs": lambda r: r.randint(0, 5),
    "echo": lambda r: r.random() < 0.5,
    "extra_sampling_params": lambda r: {
        key: r.randint(1, 9)
        for key in r.sample(
            ["top_k", "best_of", "max_tokens", "min_tokens", "truncate_prompt_tokens"],
            r.randint(0, 2),
        )
    },
}


@pytest.mark.parametrize("seed", range(200))
def test_the_servers_request_carries_what_the_local_engine_would_sample_with(seed: int) -> None:
    rng = random.Random(seed)
    names = rng.sample(sorted(_SAMPLING), rng.randint(0, len(_SAMPLING)))
    kwargs = {name: _SAMPLING[name](rng) for name in names}
    # The reference: the SamplingParams the in-process class builds (with a stand-in vllm
    # module that records them). What the local class keeps no trace of (logprobs) is dropped.
    with pytest.MonkeyPatch.context() as patch:
        install_vllm(patch)
        llm = vLLM(model="m", generation_kwargs=kwargs)
        expected = dict(llm.sampling_params(1).kwargs)
    expected.pop("n")
    expected.pop("logprobs", None)
    client = served(llm).client_at("http://h:1")
    _, payload = client.prepared_request([{"role": "user", "content": "q"}], 1)
    sent = {k: v for k, v in payload.items() if k not in ("model", "messages")}
    assert sent == expected
