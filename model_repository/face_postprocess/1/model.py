"""face_postprocess: crop-frame parameters → canvas and photo frames; "no face found" if none."""

import numpy as np

from reenact.postprocess import PostprocessConfig, postprocess
from reenact.serving import backend
from reenact.serving.params import from_model_config


class TritonPythonModel:
    def initialize(self, args):
        self.config = from_model_config(PostprocessConfig, backend.parse_model_config(args))

    def execute(self, requests):
        return backend.handle_requests(requests, self._run)

    def _run(self, request):
        result = postprocess(
            backend.required_input(request, "CROP_PARAMS")[0],
            backend.required_input(request, "CROP_LANDMARKS")[0],
            float(backend.required_input(request, "FACE_PRESENCE").reshape(-1)[0]),
            backend.required_input(request, "CROP_TO_IMAGE"),
            backend.required_input(request, "IMAGE_TO_CANVAS"),
            self.config,
        )
        return {
            "SOURCE_PARAMS": result.source_params,
            "IMAGE_PARAMS": result.image_params,
            "IMAGE_LANDMARKS": result.image_landmarks,
            "CONFIDENCE": np.array([result.confidence], np.float32),
        }
