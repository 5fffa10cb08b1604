"""synthflow: synthetic data generation and AI feedback pipelines on one streaming asyncio engine.

The public API lives in subpackages shaped like distilabel's:

    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts, step
    from synthflow.steps.tasks import TextGeneration
    from synthflow.models.llms import OpenAILLM

Importing this package has no side effects and imports neither ``datasets`` nor ``rich``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
