"""distilabel's module path ``distilabel.pipeline.routing_batch_function``: the routing of
``synthflow.pipeline.routing``."""

from synthflow.pipeline.routing import RoutingBatchFunction, routing_batch_function, sample_n_steps

__all__ = ["RoutingBatchFunction", "routing_batch_function", "sample_n_steps"]
