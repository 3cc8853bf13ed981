"""Stand-in postprocessing: tokens back to characters, one text per beam."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            texts = [
                ["".join(chr(t) for t in beam[: lengths[i][j]]).encode() for j, beam in enumerate(beams)]
                for i, beams in enumerate(tokens)
            ]
            output = np.array(texts, dtype=object).reshape(len(texts), -1)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", output)]))
        return responses
