"""face_reenactment: the public endpoint (contract in README.md, "API")."""

import numpy as np
import torch

from reenact.emotions import load_catalogue
from reenact.geometric import ReenactorRenderer
from reenact.morphable import MorphableModel
from reenact.postprocess import PostprocessConfig, postprocess
from reenact.preprocess import FacePreprocessor
from reenact.reenactment import (
    ImageEncoder,
    OptionParser,
    ReenactmentConfig,
    identity_of,
    load_templates,
    paste_back,
    target_params,
)
from reenact.serving import backend
from reenact.serving.params import from_model_config

# face_mesh's steps, with decoding and face detection in this process: Triton 2.51's BLS reports a
# callee's INVALID_ARG (say "no face found") as INTERNAL, so a caller's mistake must be caught here
# to reach the client as INVALID_ARG. The networks still run as served models.
PREDICTOR_OUTPUTS = ["CROP_PARAMS__0", "CROP_LANDMARKS__1", "FACE_PRESENCE__2"]
OPTIONAL_INPUTS = (
    "EMOTIONS",
    "INTENSITY",
    "HEAD_POSE",
    "EXPRESSION",
    "OUTPUT_FORMAT",
    "PASTE_BACK",
)


class TritonPythonModel:
    def initialize(self, args):
        self.config = from_model_config(ReenactmentConfig, backend.parse_model_config(args))
        torch.set_num_threads(self.config.torch_threads)
        model = MorphableModel.load()
        catalogue = load_catalogue(model.expression_names)
        self.options = OptionParser(self.config, catalogue)
        self.templates = load_templates(self.config, catalogue)
        self.renderer = ReenactorRenderer(model)
        self.encoder = ImageEncoder(self.config)
        self.preprocess = FacePreprocessor()
        self.postprocess = PostprocessConfig()

    def execute(self, requests):
        return backend.handle_requests(requests, self._run)

    def _run(self, request):
        image = backend.required_input(request, "IMAGE")
        options = self.options.parse(
            **{name.lower(): backend.optional_input(request, name) for name in OPTIONAL_INPUTS}
        )
        mesh = self._face_mesh(backend.single_bytes(image, "IMAGE"))
        source = mesh["SOURCE_PARAMS"]
        expressions = options.expressions
        if expressions is None:
            expressions = self.templates.lookup(
                identity_of(source), options.names, self.config.neighbours
            )
        targets = target_params(source, expressions, options.intensity, options.head_pose_deg)
        canvas = mesh["CANVAS"]
        source_render, target_render = self.renderer.render(source, targets, *canvas.shape[:2])
        reenacted = backend.bls(
            "reenactor",
            {
                "SOURCE_CANVAS__0": canvas,
                "SOURCE_RENDER__1": source_render,
                "TARGET_RENDER__2": target_render,
                "TARGET_PARAMS__3": targets,
            },
            ["REENACTED__0"],
        )["REENACTED__0"]
        if options.paste_back:
            reenacted = paste_back(
                mesh["IMAGE"], canvas, reenacted, mesh["IMAGE_TO_CANVAS"], self.config
            )
        encoded = self.encoder.encode(list(reenacted), options.output_format)
        return {
            "IMAGES": np.array(encoded, dtype=object),
            "EMOTIONS": np.array([n.encode() for n in options.names], dtype=object),
            "TARGET_PARAMS": targets,
            "SOURCE_PARAMS": source,
            "FACE_BOX": mesh["FACE_BOX"],
        }

    def _face_mesh(self, data):
        """face_mesh's steps: face_preprocess's work here, mesh_predictor served, postprocess."""
        pre = self.preprocess(data)
        predicted = backend.bls(
            "mesh_predictor", {"LANDMARK_CROP__0": pre.landmark_crop[None]}, PREDICTOR_OUTPUTS
        )
        result = postprocess(
            predicted["CROP_PARAMS__0"][0],
            predicted["CROP_LANDMARKS__1"][0],
            float(predicted["FACE_PRESENCE__2"].reshape(-1)[0]),
            pre.crop_to_image,
            pre.image_to_canvas,
            self.postprocess,
        )
        return {
            "IMAGE": pre.image,
            "FACE_BOX": pre.face_box,
            "CANVAS": pre.canvas,
            "IMAGE_TO_CANVAS": pre.image_to_canvas,
            "SOURCE_PARAMS": result.source_params,
        }
