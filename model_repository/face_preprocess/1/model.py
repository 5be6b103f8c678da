"""face_preprocess: one photo → decoded image, face box, landmark crop, reenactment canvas."""

import numpy as np
import torch

from reenact.preprocess import FacePreprocessor, PreprocessConfig, face_index_option
from reenact.serving import backend
from reenact.serving.params import from_model_config


class TritonPythonModel:
    def initialize(self, args):
        config = from_model_config(PreprocessConfig, backend.parse_model_config(args))
        torch.set_num_threads(config.torch_threads)
        self.preprocess = FacePreprocessor(config)

    def execute(self, requests):
        return backend.handle_requests(requests, self._run)

    def _run(self, request):
        data = backend.single_bytes(backend.required_input(request, "IMAGE"), "IMAGE")
        face_index = face_index_option(backend.optional_input(request, "FACE_INDEX"))
        out = self.preprocess(data, face_index)
        return {
            "DECODED_IMAGE": out.image,
            "IMAGE_SIZE": np.array(out.image.shape[:2], np.int32),
            "FACE_BOX": out.face_box,
            "DETECTION_SCORE": np.array([out.detection_score], np.float32),
            "LANDMARK_CROP": out.landmark_crop[None],
            "CROP_TO_IMAGE": out.crop_to_image,
            "CANVAS": out.canvas,
            "IMAGE_TO_CANVAS": out.image_to_canvas,
        }
