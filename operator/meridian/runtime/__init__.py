"""Triton / TensorRT-LLM knowledge, as pure functions of a ModelDeployment.

repository.py   model_repository(md): the config.pbtxt files (backends.py, trtllm.py, via pbtxt.py)
launch.py       triton_command(md): tritonserver, or mpirun with one rank per GPU
fetch.py        init_containers(md, ...): downloads (storage.py) and, for tensorrt-llm, prepare.py
storage.py      storage URIs, pod volumes and mounts, credentials_problem(md, secret)
validate.py     spec_problems(md): what stalls a spec before any pod starts
failures.py     pod_failure(pod), triton_failure_reason(log): one sentence for Stalled
probe.py        probe_model(address, model): what a running Triton reports (async, never raises)
layout.py       every path inside the pod, and the expected engine layout
"""
