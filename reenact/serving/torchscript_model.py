"""The generic python-backend runner for a TorchScript model (the local target).

In production a ``pytorch_libtorch`` model is served by Triton's PyTorch backend. The local
Triton binary has only the python backend, so the generated local repository serves the same
``model.pt`` through this runner, with the same tensor names and shapes: inputs are passed to
``forward`` in config order (the ``NAME__0``, ``NAME__1`` … convention), outputs are read in
config order from the returned tensor or tuple.

With ``max_batch_size > 0`` the requests of one ``execute`` call are concatenated along the batch
dimension and run in one ``forward``; when that fails (say one request has the wrong shape), each
request is run on its own so only the bad one gets an error.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from reenact.errors import RequestError
from reenact.serving import backend

Arrays = list[np.ndarray]


class TritonPythonModel:
    def initialize(self, args):
        config = backend.parse_model_config(args)
        params = config.get("parameters", {})
        filename = params.get("torchscript_file", {}).get("string_value", "model.pt")
        path = Path(args["model_repository"]) / args["model_version"] / filename
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [(t["name"], _dtype(t)) for t in config["input"]]
        self.outputs = [(t["name"], _dtype(t)) for t in config["output"]]

    def execute(self, requests):
        results = self._infer_all([self._read(r) for r in requests])
        return [
            backend.error_response(str(r))
            if isinstance(r, RequestError)
            else backend.output_tensors(r)
            for r in results
        ]

    def _read(self, request) -> Arrays | RequestError:
        try:
            return [
                backend.required_input(request, name).astype(dtype, copy=False)
                for name, dtype in self.inputs
            ]
        except RequestError as exc:
            return exc

    def _infer_all(self, inputs: list[Arrays | RequestError]) -> list:
        results: list = list(inputs)
        ok = [i for i, x in enumerate(inputs) if not isinstance(x, RequestError)]
        if self.batching and len(ok) > 1:
            with contextlib.suppress(RuntimeError, ValueError):
                for i, out in zip(ok, self._forward([inputs[i] for i in ok]), strict=True):
                    results[i] = out
                return results
        for i in ok:
            try:
                results[i] = self._forward([inputs[i]])[0]
            except (RuntimeError, ValueError) as exc:
                results[i] = RequestError(f"the model could not run on these inputs: {exc}")
        return results

    def _forward(self, batch: list[Arrays]) -> list[dict[str, np.ndarray]]:
        """Run one forward over the requests of ``batch``; one output dict per request."""
        columns = list(zip(*batch, strict=True))
        if self.batching:
            sizes = [arrays[0].shape[0] for arrays in batch]
            tensors = [torch.from_numpy(np.concatenate(col)) for col in columns]
        else:
            sizes = []
            tensors = [torch.from_numpy(np.ascontiguousarray(col[0])) for col in columns]
        with torch.inference_mode():
            out = self.module(*tensors)
        out = out if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(self.outputs):
            raise ValueError(f"module returned {len(out)} outputs; config has {len(self.outputs)}")
        arrays = [t.detach().cpu().numpy() for t in out]
        pieces = [np.split(a, np.cumsum(sizes)[:-1]) if sizes else [a] for a in arrays]
        return [
            {
                name: p[k].astype(dtype, copy=False)
                for (name, dtype), p in zip(self.outputs, pieces, strict=True)
            }
            for k in range(len(pieces[0]))
        ]


def _dtype(tensor_config: dict) -> np.dtype:
    return pb_utils.triton_string_to_numpy(tensor_config["data_type"])
