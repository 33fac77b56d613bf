"""The model server every endpoint instance runs: ``python -m sageport.serving.server``.

It answers the SageMaker inference-container contract (``GET /ping``, ``POST /invocations``)
with the inference toolkit's handler contract (``model_fn``/``input_fn``/``predict_fn``/
``output_fn``/``transform_fn``) and its default codecs, plus sageport's own ``GET /metrics`` and
opt-in dynamic batching. Modules: ``config`` (the env var contract), ``errors``, ``codecs``,
``handler`` (the user module), ``defaults`` (PyTorch / TensorFlow / plain defaults),
``batching``, ``pool`` (handler threads), ``metrics``, ``overlay`` (code/requirements.txt),
``http`` (the HTTP/1.1 protocol), ``app`` (routes) and ``server`` (the process).
``router`` and ``upstream`` are the other side, used inside ``sageport serve``: which model
server answers an InvokeEndpoint, and the keep-alive client that forwards it.
Nothing here imports torch or TensorFlow at import time.
"""
