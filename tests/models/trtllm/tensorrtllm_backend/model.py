"""Stand-in for the tensorrtllm C++ backend: the prompt upper-cased, one token per character.

Like the real backend it fails to load without the parameters it reads unconditionally, or with a
batching strategy it does not know; when decoupled it streams one response per token.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

READ_UNCONDITIONALLY = (
    "gpt_model_type",
    "gpt_model_path",
    "tokenizer_dir",
    "xgrammar_tokenizer_info_path",
    "guided_decoding_backend",
)
BATCHING = ("V1", "v1", "inflight_batching", "inflight_fused_batching")


def scalar(request, name):
    return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        missing = [k for k in READ_UNCONDITIONALLY if k not in params]
        if missing:
            raise KeyError(f"the tensorrtllm backend reads {', '.join(missing)} unconditionally")
        if params["gpt_model_type"] not in BATCHING:
            raise ValueError("Invalid gpt_model_type. Must be v1/inflight_batching/inflight_fused_batching.")
        fraction = float(params["kv_cache_free_gpu_mem_fraction"])
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"kv_cache_free_gpu_mem_fraction {fraction} is not a fraction")
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)

    def execute(self, requests):
        responses = []
        for request in requests:
            ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
            length, limit = scalar(request, "input_lengths"), scalar(request, "request_output_len")
            tokens = [ord(chr(t).upper()) for t in ids[0][:length]][:limit]
            if self.decoupled:
                sender = request.get_response_sender()
                for token in tokens:
                    sender.send(self._response([token]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            else:
                responses.append(self._response(tokens))
        return None if self.decoupled else responses

    @staticmethod
    def _response(tokens):
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor("output_ids", np.array([[tokens]], np.int32)),
                pb_utils.Tensor("sequence_length", np.array([[len(tokens)]], np.int32)),
            ]
        )
