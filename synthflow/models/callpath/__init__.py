"""The call path every model client shares, apart from the clients themselves.

A task's call goes ``calls`` (the run's response cache, budget and accounting) -> the client's
``agenerate`` -> for HTTP clients ``retry`` -> ``limiter`` -> ``_http`` (the one transport seam).
``answers`` decides what counts as an answer, ``structured`` checks answers against a JSON schema
and re-asks, ``pricing`` turns usage into cost, and ``_clock`` is the injectable clock the
limiter and retries wait on. ``batches`` sends the calls of an LLM in offline batch mode as
provider batches instead (through the ``batch_wire`` seam, which each client's batch adapter
implements), and ``batch_state`` keeps them in the run directory. Nothing here knows a
provider's wire format.
"""
