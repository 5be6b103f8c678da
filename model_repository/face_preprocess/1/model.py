"""face_preprocess: IMAGE (one encoded photo) → DECODED_IMAGE (H, W, 3) uint8 RGB, IMAGE_SIZE."""

import numpy as np

from reenact.image_codec import DecodeLimits, decode_image
from reenact.serving import backend
from reenact.serving.params import from_model_config


class TritonPythonModel:
    def initialize(self, args):
        self.limits = from_model_config(DecodeLimits, backend.parse_model_config(args))

    def execute(self, requests):
        return backend.handle_requests(requests, self._decode)

    def _decode(self, request):
        data = backend.single_bytes(backend.required_input(request, "IMAGE"), "IMAGE")
        image = decode_image(data, self.limits)
        return {
            "DECODED_IMAGE": image,
            "IMAGE_SIZE": np.array(image.shape[:2], dtype=np.int32),
        }
