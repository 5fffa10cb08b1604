"""Model clients as distilabel 1.5 users write them: imports from ``synthflow.models``, the LLM
constructors with distilabel's field names (against a loopback server), structured output in
distilabel's forms, and pipelines saved before the model layer moved."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from synthflow.models import InferenceEndpointsLLM, OllamaLLM, OpenAILLM
from synthflow.models.llms import LlamaCppLLM, MistralLLM, TransformersLLM, vLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import Task, TextGeneration
from synthflow.testing import OfflineLLM
from tests.servers import Reply, Request, fake_api, prompt_of

ROOT = Path(__file__).resolve().parents[2]


class Character(BaseModel):
    name: str
    age: int


def chat(request: Request) -> Reply:
    """OpenAI's chat completions (TGI's Messages API too): a Character when asked for JSON."""
    body = request.json
    asked_json = "response_format" in body
    text = '{"name": "Ada", "age": 36}' if asked_json else f"answer to {prompt_of(request)}"
    return Reply(
        body={
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3},
        }
    )


def ollama(request: Request) -> Reply:
    assert request.path == "/api/chat"
    text = f"answer to {request.json['messages'][-1]['content']}"
    return Reply(
        body={
            "model": request.json["model"],
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": 3,
        }
    )


def run_generation(llm: Any, instructions: list[str]) -> list[dict[str, Any]]:
    with Pipeline(name="compat-models") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": i} for i in instructions])
        load >> TextGeneration(name="text_generation", llm=llm)
    distiset = pipeline.run(progress=False, use_cache=False)
    return list(distiset["default"]["train"])


# -- import paths ---------------------------------------------------------------------------------


def test_model_clients_import_from_synthflow_models_as_from_distilabel_models() -> None:
    import synthflow.llms
    import synthflow.models
    import synthflow.models.llms
    from synthflow.models import Embeddings, HiddenState, SentenceTransformerEmbeddings
    from synthflow.models.embeddings import Embeddings as Embeddings2

    for name in synthflow.models.llms.__all__:
        assert getattr(synthflow.models, name) is getattr(synthflow.models.llms, name)
        assert getattr(synthflow.llms, name) is getattr(synthflow.models.llms, name)
    assert Embeddings is Embeddings2 and HiddenState is not None
    assert SentenceTransformerEmbeddings.__module__.startswith("synthflow.models.embeddings")
    import synthflow.models.image_generation

    for name in synthflow.models.image_generation.__all__:
        assert getattr(synthflow.models, name) is getattr(synthflow.models.image_generation, name)


def test_old_deep_imports_are_the_new_modules_under_their_old_names() -> None:
    import synthflow.embeddings.base
    import synthflow.llms.base
    import synthflow.llms.local
    import synthflow.llms.openai
    import synthflow.llms.structured
    import synthflow.models.callpath.structured
    import synthflow.models.embeddings.base
    import synthflow.models.llms.base
    import synthflow.models.llms.local.base
    import synthflow.models.llms.openai
    from synthflow.llms.transformers import TransformersLLM as Old

    assert synthflow.llms.openai is synthflow.models.llms.openai
    assert synthflow.llms.base is synthflow.models.llms.base
    assert synthflow.llms.local is synthflow.models.llms.local.base
    assert synthflow.llms.structured is synthflow.models.callpath.structured
    assert synthflow.embeddings.base is synthflow.models.embeddings.base
    assert Old is TransformersLLM


def test_importing_the_model_layer_stays_light() -> None:
    code = (
        "import sys, synthflow.models, synthflow.llms, synthflow.embeddings;"
        "print(','.join(m for m in ('datasets', 'rich', 'torch', 'numpy', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


# -- constructors with distilabel's field names ---------------------------------------------------


def test_inference_endpoints_llm_with_distilabels_fields_on_a_pipeline() -> None:
    with fake_api(chat) as api:
        llm = InferenceEndpointsLLM(
            model_id="meta-llama/Meta-Llama-3.1-8B-Instruct",
            tokenizer_id="meta-llama/Meta-Llama-3.1-8B-Instruct",
            base_url=api.url,
            api_key="hf_test",
            model_display_name="llama-3.1-8b",
            magpie_pre_query_template="llama3",
            generation_kwargs={
                "max_new_tokens": 64,
                "temperature": 0.7,
                "do_sample": True,
                "stop_sequences": ["<|eot_id|>"],
            },
        )
        rows = run_generation(llm, ["hi"])
    assert rows[0]["generation"] == "answer to hi"
    assert rows[0]["model_name"] == "llama-3.1-8b"
    body = api.requests[0].json
    assert body["max_tokens"] == 64 and body["stop"] == ["<|eot_id|>"]
    assert "do_sample" not in body and "stop_sequences" not in body
    assert llm.model == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    assert llm.magpie_pre_query_template == "llama3"


def test_inference_endpoints_llm_finds_a_named_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    looked_up: list[tuple[str, str | None]] = []
    with fake_api(chat) as api:

        def get_inference_endpoint(name: str, *, namespace: str | None, token: str | None) -> Any:
            looked_up.append((name, namespace))
            return types.SimpleNamespace(url=api.url, status="running")

        monkeypatch.setattr(huggingface_hub, "get_inference_endpoint", get_inference_endpoint)
        llm = InferenceEndpointsLLM(
            endpoint_name="my-endpoint", endpoint_namespace="my-org", api_key="hf_test"
        )
        rows = run_generation(llm, ["hi"])
    assert looked_up == [("my-endpoint", "my-org")]
    assert rows[0]["generation"] == "answer to hi"
    assert rows[0]["model_name"] == "my-endpoint"


def test_openai_llm_with_distilabels_fields() -> None:
    with fake_api(chat) as api:
        llm = OpenAILLM(
            model="gpt-4o-mini",
            base_url=api.url,
            api_key="sk-test",
            max_retries=2,
            timeout=30,
            default_headers={"x-team": "data"},
        )
        rows = run_generation(llm, ["hi"])
    assert rows[0]["generation"] == "answer to hi"
    assert api.requests[0].headers["x-team"] == "data"
    assert api.requests[0].headers["authorization"] == "Bearer sk-test"


def test_ollama_llm_takes_host() -> None:
    with fake_api(ollama) as api:
        rows = run_generation(OllamaLLM(model="llama3.1", host=api.url), ["hi"])
    assert rows[0]["generation"] == "answer to hi"


def test_mistral_llm_takes_endpoint_and_max_concurrent_requests() -> None:
    with fake_api(chat) as api:
        llm = MistralLLM(
            model="mistral-small", endpoint=api.url, api_key="k", max_concurrent_requests=4
        )
        rows = run_generation(llm, ["hi"])
    assert rows[0]["generation"] == "answer to hi"
    assert api.paths() == ["/v1/chat/completions"]
    assert llm.max_concurrency == 4


def test_local_llms_take_distilabels_fields_without_loading() -> None:
    vllm = vLLM(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        extra_kwargs={"max_num_seqs": 8},
        chat_template="{{ messages }}",
        seed=7,
        tokenizer_mode="slow",
        trust_remote_code=True,
        magpie_pre_query_template="qwen2",
    )
    assert vllm.engine_arguments()["max_num_seqs"] == 8
    assert vllm.engine_arguments()["seed"] == 7
    assert vllm.engine_arguments()["tokenizer_mode"] == "slow"
    transformers = TransformersLLM(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        revision="main",
        torch_dtype="auto",
        trust_remote_code=False,
        model_kwargs={"low_cpu_mem_usage": True},
        tokenizer=None,
        use_fast=False,
        chat_template=None,
        device=0,
        device_map="auto",
        token="hf_test",
    )
    assert transformers.device == "cuda:0" and not transformers.use_fast
    assert transformers.model_kwargs == {"low_cpu_mem_usage": True, "device_map": "auto"}
    assert "hf_test" not in transformers.model_dump_json()
    llama = LlamaCppLLM(model_path="model.gguf", n_batch=64, seed=1, extra_kwargs={"n_threads": 2})
    assert llama.model_arguments()["n_batch"] == 64
    assert llama.model_arguments()["n_threads"] == 2


def test_one_setting_under_both_names_or_a_setting_synthflow_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cuda_devices=\.\.\.\): .*CUDA_VISIBLE_DEVICES"):
        vLLM(model="m", cuda_devices=[0])
    with pytest.raises(ValueError, match="whose provider has a batch API"):
        vLLM(model="m", use_offline_batch_generation=True)  # OpenAILLM takes it
    with pytest.raises(ValueError, match="seed= and engine_kwargs"):
        vLLM(model="m", seed=1, extra_kwargs={"seed": 2})
    with pytest.raises(ValueError, match="host= and base_url="):
        OllamaLLM(model="m", host="a", base_url="b")


# -- structured output in distilabel's forms ------------------------------------------------------


@pytest.mark.parametrize(
    "structured_output",
    [
        {"schema": Character, "format": "json"},
        {"format": "json", "schema": Character.model_json_schema()},
        {"schema": Character},
        {"schema": orjson.dumps(Character.model_json_schema()).decode(), "format": "json"},
    ],
    ids=["model-class", "json-schema", "no-format", "schema-as-text"],
)
def test_structured_output_in_distilabels_forms(structured_output: dict[str, Any]) -> None:
    with fake_api(chat) as api:
        llm = OpenAILLM(
            model="gpt-4o-mini",
            base_url=api.url,
            api_key="sk-test",
            structured_output=structured_output,
        )
        rows = run_generation(llm, ["who?", "who else?"])
    assert [orjson.loads(r["generation"]) for r in rows] == [{"name": "Ada", "age": 36}] * 2
    sent = api.requests[0].json["response_format"]["json_schema"]["schema"]
    assert sent == Character.model_json_schema()


def test_inference_endpoints_structured_output_as_a_grammar() -> None:
    with fake_api(chat) as api:
        llm = InferenceEndpointsLLM(
            base_url=api.url,
            api_key="hf_test",
            structured_output={"format": "json", "schema": Character},
        )
        rows = run_generation(llm, ["who?"])
    assert orjson.loads(rows[0]["generation"]) == {"name": "Ada", "age": 36}
    assert api.requests[0].json["response_format"] == {
        "type": "json",
        "value": Character.model_json_schema(),
    }


def test_regex_structured_output_on_an_llm_is_refused_with_a_way_out() -> None:
    with pytest.raises(ValueError, match="StructuredGeneration task"):
        OfflineLLM(structured_output={"format": "regex", "schema": r"\d+"})


class CharacterTask(Task):
    """A custom task, as distilabel users write one, with a default schema."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["character", "model_name"]

    def format_input(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": row["instruction"]}]

    def format_output(self, output: str | None, row: dict[str, Any]) -> dict[str, Any]:
        return {"character": orjson.loads(output or "null")}

    def get_structured_output(self) -> dict[str, Any]:
        return Character.model_json_schema()


def test_use_default_structured_output_asks_the_llm_for_the_tasks_schema() -> None:
    llm = OfflineLLM()
    task = CharacterTask(llm=llm, use_default_structured_output=True)
    assert task.llm.structured_output == Character.model_json_schema()
    assert llm.structured_output is None  # the user's LLM (maybe shared) is left as it was
    assert CharacterTask(llm=OfflineLLM()).llm.structured_output is None  # off by default
    own = {"title": "Mine", "type": "object"}
    kept = CharacterTask(llm=OfflineLLM(structured_output=own), use_default_structured_output=True)
    assert kept.llm.structured_output == own
    task.load()
    row = next(task.process([{"instruction": "invent one"}]))[0]
    assert set(row["character"]) == {"name", "age"}


# -- pipelines saved before the move --------------------------------------------------------------


def test_a_pipeline_saved_under_the_old_module_paths_loads_and_saves_under_the_new(
    tmp_path: Path,
) -> None:
    with Pipeline(name="saved-before-the-move") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}])
        load >> TextGeneration(name="gen", llm=OfflineLLM(structured_output=Character))
    path = pipeline.save(tmp_path / "pipeline.yaml")
    text = path.read_text()
    assert "module: synthflow.models.llms.offline" in text
    old = tmp_path / "old.yaml"
    old.write_text(text.replace("synthflow.models.llms.offline", "synthflow.llms.offline"))

    loaded = Pipeline.from_yaml(old)
    assert loaded.signature == pipeline.signature
    assert "synthflow.models.llms.offline" in orjson.dumps(loaded.dump()).decode()
    row = next(iter(loaded.run(progress=False)["default"]["train"]))
    assert set(orjson.loads(row["generation"])) == {"name", "age"}


def test_every_moved_module_of_a_saved_class_still_loads() -> None:
    from synthflow.serialization import MOVED_MODULES, load_pipeline

    old_module = "synthflow.llms.transformers"
    assert MOVED_MODULES[old_module] == "synthflow.models.llms.local.transformers"
    with Pipeline(name="local") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "hi"}]) >> TextGeneration(
            name="gen", llm=TransformersLLM(model="Qwen/Qwen2.5-0.5B-Instruct")
        )
    data = pipeline.dump()
    text = orjson.dumps(data).decode().replace(MOVED_MODULES[old_module], old_module)
    loaded = load_pipeline(orjson.loads(text))
    gen = loaded.steps["gen"]
    assert isinstance(gen, TextGeneration) and isinstance(gen.llm, TransformersLLM)
