"""Stand-in preprocessing: one token per character, every output the ensemble maps."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy()
        out_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
        texts = [q[0].decode() for q in query]
        b, n = len(texts), max(len(t) for t in texts)
        ids = np.zeros((b, n), np.int32)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = [ord(c) for c in t]
        zeros = np.zeros((b, 1), np.int32)
        outputs = {
            "INPUT_ID": ids,
            "REQUEST_INPUT_LEN": np.array([[len(t)] for t in texts], np.int32),
            "DECODER_INPUT_ID": zeros,
            "REQUEST_DECODER_INPUT_LEN": zeros,
            "REQUEST_OUTPUT_LEN": out_len.astype(np.int32),
            "STOP_WORDS_IDS": np.zeros((b, 2, 1), np.int32),
            "BAD_WORDS_IDS": np.zeros((b, 2, 1), np.int32),
            "EMBEDDING_BIAS": np.zeros((b, 1), np.float32),
            "OUT_END_ID": np.full((b, 1), -1, np.int32),
            "OUT_PAD_ID": zeros,
            "OUT_PROMPT_TABLE_EXTRA_IDS": np.zeros((b, 1), np.uint64),
        }
        return pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()])
