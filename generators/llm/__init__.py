"""Language-model backends shared by every generator: offline and OpenAI-compatible.

Modules, in the order a request passes through them:

- `settings`: `LLMSettings`, checked when a release is planned.
- `endpoint`: the base URL and API key, resolved at run time and never stored.
- `client`: `LLMClient.run`, with the response cache, retries, throttling and
  the circuit breaker.
- `backends`: `OfflineBackend` and `OpenAIBackend`, which send one request.
- `batch`: batch mode through the OpenAI Batch API.
- `structured`: chat requests and the checks every chat reply passes.
- `usage` and `progress`: counts for the manifest, log lines and progress bars.
- `stephint`, `stephint_scorer`, `stephint_teacher`: StepHint's model boundary
  scorer and teacher generation.
- `mllmu_med_text`: MLLMU-Med's `model` text backend (test paraphrases, profiles).
- `med_mim_composer`: Med-MIM's `model` composer (reworded and verified questions).
"""
