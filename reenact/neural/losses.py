"""The training losses: the reenactor's (perceptual, style, ReID, GAN) and the regression mesh
predictor's (vertex, landmark reprojection, shape consistency, regularisation).

Images are (B, 3, H, W) in [-1, 1]. Weights (λ) live in :mod:`reenact.neural.config`; the
functions here return unweighted terms.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reenact.morphable import EXPR_SLICE, ID_SLICE, MorphableModel
from reenact.morphable_torch import MorphableDecoder
from reenact.neural.backbones import VGG, ResNetEmbedder
from reenact.neural.discriminators import crop_boxes, mask_boxes

PERCEPTUAL_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)  # pix2pixHD's


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) → (B, C, C) float32 ``F F^T / (C H W)`` (Gatys et al.)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def perceptual_loss(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """Weighted L1 between VGG feature lists (relu1_1 … relu5_1): a scalar."""
    terms = [
        weight * F.l1_loss(a.float(), b.float())
        for weight, a, b in zip(PERCEPTUAL_LAYER_WEIGHTS, fake, real, strict=True)
    ]
    return torch.stack(terms).sum()


def style_loss(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """L1 between the Gram matrices of VGG feature lists, summed over layers: a scalar."""
    terms = [F.l1_loss(gram_matrix(a), gram_matrix(b)) for a, b in zip(fake, real, strict=True)]
    return torch.stack(terms).sum()


def reid_loss(fake_embedding: Tensor, real_embedding: Tensor) -> Tensor:
    """1 - cosine similarity of (B, D) embeddings, averaged: a scalar in [0, 2]."""
    return (1.0 - F.cosine_similarity(fake_embedding.float(), real_embedding.float(), dim=1)).mean()


class FeatureLosses(nn.Module):
    """The fixed-backbone losses of generated images against their ground truth.

    ``forward(fakes, real, face_mask)``: fakes, a list of (B, 3, H, W) generated images (the
    enhanced image first, then e.g. the warped one), all judged against ``real`` in ONE VGG pass
    (the ground truth's features computed once) → one dict of scalars per fake: "perceptual",
    "style", and for the first fake only "reid". The ReID embedder sees square crops around the
    face mask (B, 1, H, W) (the target PNCC's coverage), resized to its input size.
    """

    def __init__(self, vgg: VGG, embedder: ResNetEmbedder) -> None:
        super().__init__()
        self.vgg = vgg
        self.embedder = embedder

    def forward(
        self, fakes: list[Tensor], real: Tensor, face_mask: Tensor
    ) -> list[dict[str, Tensor]]:
        b = real.shape[0]
        features = self.vgg(torch.cat([*fakes, real]))
        real_features = [f[len(fakes) * b :].detach() for f in features]
        out: list[dict[str, Tensor]] = []
        for k in range(len(fakes)):
            fake_features = [f[k * b : (k + 1) * b] for f in features]
            out.append(
                {
                    "perceptual": perceptual_loss(fake_features, real_features),
                    "style": style_loss(fake_features, real_features),
                }
            )
        boxes = mask_boxes(face_mask, margin=1.1, min_side=0.3)
        crops = crop_boxes(
            torch.cat([fakes[0], real]), torch.cat([boxes, boxes]), self.embedder.input_size
        )
        embeddings = self.embedder(crops)
        out[0]["reid"] = reid_loss(embeddings[:b], embeddings[b:].detach())
        return out


# --- the regression mesh predictor (§3.1.1) ---------------------------------------------------

HEAD_VERTEX_COUNT = 11248  # ICT vertices 0..11247: face, head and neck (reenact.geometric)


class PredictorLosses(nn.Module):
    """Losses of predicted (B, 162) parameters against the teacher's, in crop pixels.

    - vertex: mean Euclidean distance between the decoded 3D head vertices (every
      ``vertex_stride``-th of ICT vertices 0..11247, image space, z included), over the crop size;
    - landmark: mean 2D distance between the predicted mesh's FaceMesh landmark points (the
      committed correspondence) and the teacher's landmarks (B, 468, 3), over the crop size;
    - shape_consistency: the variance of the identity parameters among images of one person in
      the batch (``person`` (B,) int64 labels), averaged over people with 2 or more images;
    - regularisation: squared excess of identity weights beyond ±``identity_bound`` standard
      deviations and of expression weights outside [0, 1] (0 for plausible faces).
    """

    def __init__(
        self,
        model: MorphableModel,
        tri_vertices: np.ndarray,
        barycentric: np.ndarray,
        crop_size: int,
        vertex_stride: int = 8,
        identity_bound: float = 3.0,
    ) -> None:
        super().__init__()
        head = np.arange(0, HEAD_VERTEX_COUNT, vertex_stride)
        self.head = MorphableDecoder(model, head)
        ids, inverse = np.unique(tri_vertices.reshape(-1), return_inverse=True)
        self.landmark_decoder = MorphableDecoder(model, ids)
        self.register_buffer(
            "corner_index", torch.from_numpy(inverse.reshape(-1, 3).astype(np.int64))
        )
        self.register_buffer("barycentric", torch.from_numpy(barycentric.astype(np.float32)))
        self.crop_size = float(crop_size)
        self.identity_bound = identity_bound

    def landmarks(self, params: Tensor) -> Tensor:
        """(B, 162) → (B, L, 3) the correspondence's surface points, crop pixels."""
        corners = self.landmark_decoder(params)[:, self.corner_index]  # (B, L, 3, 3)
        return (corners * self.barycentric[None, :, :, None]).sum(dim=2)

    def forward(
        self, predicted: Tensor, teacher: Tensor, teacher_landmarks: Tensor, person: Tensor
    ) -> dict[str, Tensor]:
        predicted = predicted.float()
        vertex = torch.linalg.vector_norm(self.head(predicted) - self.head(teacher), dim=-1)
        landmark = torch.linalg.vector_norm(
            self.landmarks(predicted)[..., :2] - teacher_landmarks[..., :2], dim=-1
        )
        identity = predicted[:, ID_SLICE]
        expression = predicted[:, EXPR_SLICE]
        regularisation = (
            F.relu(identity.abs() - self.identity_bound).pow(2).mean()
            + (F.relu(-expression).pow(2) + F.relu(expression - 1.0).pow(2)).mean()
        )
        return {
            "vertex": vertex.mean() / self.crop_size,
            "landmark": landmark.mean() / self.crop_size,
            "shape_consistency": shape_consistency(identity, person),
            "regularisation": regularisation,
        }


def shape_consistency(identity: Tensor, person: Tensor) -> Tensor:
    """identity (B, 100), person (B,) int64 → scalar: the mean over people with >= 2 images in the
    batch of the mean squared deviation of their identity vectors from that person's mean."""
    same = (person[:, None] == person[None, :]).to(identity.dtype)  # (B, B)
    count = same.sum(dim=1, keepdim=True)  # images of each row's person
    mean = same @ identity / count  # each row's person mean
    deviation = (identity - mean).pow(2).mean(dim=1)  # (B,)
    shared = (count[:, 0] > 1).to(identity.dtype)
    return (deviation * shared).sum() / shared.sum().clamp_min(1.0)
