"""Stand-in BLS: loads with Meridian's config (decoupled or not) and answers with an error."""

import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(json.loads(args["model_config"]))

    def execute(self, requests):
        error = pb_utils.TritonError("the stand-in BLS only checks that its configuration loads")
        if not self.decoupled:
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        for request in requests:
            request.get_response_sender().send(
                pb_utils.InferenceResponse(error=error), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            )
        return None
