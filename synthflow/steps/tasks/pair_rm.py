"""PairRM: a local pairwise reward model ranks each row's candidate responses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, PrivateAttr

from synthflow.steps.base import Row, Step, StepInput


class _Loaded:
    """The loaded ranker. It never travels: a pickled copy (sent to a worker process) arrives
    empty and loads its own."""

    def __init__(self) -> None:
        self.blender: Any = None

    def __reduce__(self) -> tuple[type[_Loaded], tuple[()]]:
        return (_Loaded, ())


class PairRM(Step):
    """Ranks the candidate responses to an input with PairRM, a pairwise ranking model.

    The ranker of Jiang, Ren and Lin, "LLM-Blender: Ensembling Large Language Models with
    Pairwise Ranking and Generative Fusion", arXiv:2306.02561: a cross-encoder reads the input
    with two candidates at once and says which is better; the comparisons of every pair give
    each candidate's rank. It runs locally through the ``llm-blender`` package: ``pip install
    'synthflow[pair-rm]'`` (its release 0.0.2 imports only with transformers 4). Run the step
    with ``executor="process"`` so that each worker loads the ranker once.

    A row whose input or candidates are null gets null outputs and is not sent to the ranker.

    Input columns:
        - input (str): the instruction the candidates answer.
        - candidates (list[str]): the responses to rank.

    Output columns:
        - ranks (list[int]): each candidate's rank, 1 for the best, aligned with
          ``candidates``.
        - ranked_candidates (list[str]): the candidates from best to worst.
        - model_name (str): the ranking model.
    """

    model: str = Field(
        default="llm-blender/PairRM", description="The ranker: a Hub model id or a directory."
    )
    instructions: str | None = Field(
        default=None, description="An instruction given to the ranker with every input."
    )

    _loaded: _Loaded = PrivateAttr(default_factory=_Loaded)

    @property
    def inputs(self) -> list[str]:
        return ["input", "candidates"]

    @property
    def outputs(self) -> list[str]:
        return ["ranks", "ranked_candidates", "model_name"]

    def load(self) -> None:
        if self._loaded.blender is not None:
            return
        try:
            import llm_blender
        except ModuleNotFoundError as exc:
            if exc.name != "llm_blender":
                raise _broken_install(exc) from exc
            raise ImportError(
                "PairRM needs the 'pair-rm' extra: pip install 'synthflow[pair-rm]' "
                "(or: pip install llm-blender 'transformers<5')"
            ) from exc
        except ImportError as exc:  # installed, but it doesn't import with these libraries
            raise _broken_install(exc) from exc
        blender = llm_blender.Blender()
        blender.loadranker(self.model)
        self._loaded.blender = blender

    def unload(self) -> None:
        self._loaded.blender = None
        from synthflow.models.llms.local.base import release_gpu_memory

        release_gpu_memory()

    def format_input(self, row: Row) -> dict[str, Any]:
        """The input and candidates of a row, checked."""
        text, candidates = row["input"], row["candidates"]
        if not isinstance(text, str):
            raise TypeError(f"'input' must be a string, got {type(text).__name__}")
        if not (
            isinstance(candidates, list)
            and candidates
            and all(isinstance(c, str) for c in candidates)
        ):
            raise TypeError("'candidates' must be a non-empty list of strings")
        return {"input": text, "candidates": candidates}

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        blender = self._loaded.blender
        if blender is None:
            raise RuntimeError("PairRM is not loaded: call load() first")
        todo = [
            (i, self.format_input(row))
            for i, row in enumerate(inputs)
            if row["input"] is not None and row["candidates"] is not None
        ]
        ranks_of: dict[int, list[int]] = {}
        if todo:
            texts = [item["input"] for _, item in todo]
            candidates = [item["candidates"] for _, item in todo]
            ranks = blender.rank(
                texts,
                candidates,
                instructions=[self.instructions] * len(texts) if self.instructions else None,
                return_scores=False,
                batch_size=self.input_batch_size,
            )
            for (i, item), row_ranks in zip(todo, ranks, strict=True):
                ranks_of[i] = [int(r) for r in row_ranks]
                if len(ranks_of[i]) != len(item["candidates"]):
                    raise ValueError(
                        f"the ranker gave {len(ranks_of[i])} ranks for "
                        f"{len(item['candidates'])} candidates"
                    )
        for i, row in enumerate(inputs):
            row_ranks = ranks_of.get(i)
            row["ranks"] = row_ranks
            row["ranked_candidates"] = (
                None
                if row_ranks is None
                else [
                    row["candidates"][j]
                    for j in sorted(range(len(row_ranks)), key=row_ranks.__getitem__)
                ]
            )
            row["model_name"] = self.model
        yield inputs


def _broken_install(exc: ImportError) -> ImportError:
    hint = (
        "its release 0.0.2 needs transformers 4: pip install 'transformers<5'"
        if "transformers" in str(exc)
        else "reinstall it: pip install --force-reinstall llm-blender"
    )
    return ImportError(f"llm-blender is installed but does not import ({exc}); {hint}")
