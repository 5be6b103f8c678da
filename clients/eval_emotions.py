"""`make eval-emotions`: are the reenacted emotions recognisable, and is the person still the same?

Every human face of the test corpus (``tests.corpus.human_photos()``; each face of the group
photo by ``FACE_INDEX``) is sent to ``face_reenactment`` with the 6 basic emotions (PNG out).
The face of each output is found with the project's face detector (the face nearest the canvas
centre), cropped and read by face-api's expression network (:mod:`reenact.emotion_classifier`),
and its dlib descriptor (:mod:`reenact.identity`) is compared with the source face's (the
returned ``FACE_BOX`` in the photo). The source faces are classified too. Nothing is skipped: a
refused request or an output without a detected face is reported and counts as a miss.

As a reference without any photo, the ICT mean head is painted with each emotion's expression
weights (brows and lips drawn, :class:`reenact.head_render.HeadPainter`) and classified the same
way: how recognisable each emotion's recipe itself is to the classifier.

    python -m clients.eval_emotions [--url HOST:PORT] [--out build/eval]

Without ``--url`` a local server is started. Prints the report (a 6x7 confusion matrix, the share
read as intended overall and per emotion, identity distances, what each source reads as) and
writes it with a CSV of every reading under ``--out``, and in ``--out``/crops one contact sheet
per face of the crops the classifier read. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reenact.assets import build_dir
from reenact.client import ReenactClient, ReenactError
from reenact.contact_sheet import contact_sheet
from reenact.emotion_classifier import FACE_API_VERSION, LABELS, EmotionClassifier, crop_face
from reenact.identity import SAME_PERSON_DISTANCE, FaceEmbedder, descriptor_distance
from reenact.image_codec import decode_image, encode_image
from reenact.landmarks.detection import FaceDetection, FaceDetector

EMOTIONS = ("happy", "sad", "angry", "fearful", "disgusted", "surprised")
SOURCE = "source"  # the ``intended`` of a source photo's reading


@dataclass(frozen=True)
class Case:
    """One face to reenact. image: (H, W, 3) uint8 RGB."""

    name: str
    image: np.ndarray = field(repr=False)
    face_index: int | None = None  # sent as FACE_INDEX (photos with several faces)


@dataclass(frozen=True)
class Reading:
    """One classified face: a source face or one output.

    ``probabilities``: (7,) float32 over :data:`LABELS` (NaN when ``error``);
    ``identity_distance``: dlib distance to the source face (NaN for sources and errors).
    """

    case: str
    intended: str  # an emotion of EMOTIONS, or SOURCE
    probabilities: np.ndarray = field(repr=False)
    identity_distance: float = float("nan")
    error: str = ""  # why there is no reading: a refused request, no face in the output

    @property
    def read(self) -> str:
        """The most probable label, or "" when there is no reading."""
        return "" if self.error else LABELS[int(np.argmax(self.probabilities))]


@dataclass(frozen=True)
class Summary:
    """``confusion``: (len(emotions), 7) int64, rows intended, columns :data:`LABELS` read.
    Shares count every output, failures included, as the denominator."""

    emotions: tuple[str, ...]
    confusion: np.ndarray
    failures: dict[str, int]  # intended emotion → outputs without a reading
    identity: np.ndarray  # (M,) float64 distances of the outputs that have one
    readings: list[Reading] = field(default_factory=list, repr=False)  # those summarized

    def outputs(self, emotion: str) -> int:
        row = self.emotions.index(emotion)
        return int(self.confusion[row].sum()) + self.failures[emotion]

    def share(self, emotion: str) -> float:
        """Share of ``emotion``'s outputs read as ``emotion``."""
        total = self.outputs(emotion)
        hits = self.confusion[self.emotions.index(emotion), LABELS.index(emotion)]
        return float(hits) / total if total else float("nan")

    @property
    def overall_share(self) -> float:
        total = sum(self.outputs(e) for e in self.emotions)
        hits = sum(self.confusion[i, LABELS.index(e)] for i, e in enumerate(self.emotions))
        return float(hits) / total if total else float("nan")

    @property
    def identity_over_threshold(self) -> int:
        return int(np.sum(self.identity >= SAME_PERSON_DISTANCE))


def summarize(readings: list[Reading], emotions: tuple[str, ...] = EMOTIONS) -> Summary:
    """Confusion matrix, failures and identity distances of the outputs among ``readings``."""
    confusion = np.zeros((len(emotions), len(LABELS)), np.int64)
    failures = dict.fromkeys(emotions, 0)
    distances = []
    for reading in readings:
        if reading.intended not in emotions:
            continue
        if reading.error:
            failures[reading.intended] += 1
            continue
        confusion[emotions.index(reading.intended), LABELS.index(reading.read)] += 1
        if np.isfinite(reading.identity_distance):
            distances.append(reading.identity_distance)
    return Summary(emotions, confusion, failures, np.asarray(distances, np.float64), readings)


def shares_by_source(readings: list[Reading]) -> dict[str, tuple[int, int, int]]:
    """What each case's source reads as → (faces, outputs read as asked, outputs), the
    outputs of cases whose source has no reading under ""."""
    source_label = {r.case: r.read for r in readings if r.intended == SOURCE}
    tally: dict[str, list[int]] = {}
    for reading in readings:
        counts = tally.setdefault(source_label.get(reading.case, ""), [0, 0, 0])
        if reading.intended == SOURCE:
            counts[0] += 1
        else:
            counts[1] += reading.read == reading.intended
            counts[2] += 1
    return {label: (faces, hits, total) for label, (faces, hits, total) in tally.items()}


def format_report(
    summary: Summary,
    sources: list[Reading],
    header: str = "",
    painted: list[Reading] | None = None,
) -> str:
    """The printed report: confusion matrix, shares (overall, per emotion, by what the source
    reads as), identity distances, source readings, the painted head's readings."""
    width = max(len(label) for label in LABELS) + 1
    lines = [header] if header else []
    lines.append("confusion (rows: emotion asked for, columns: emotion read)")
    columns = "".join(f"{label:>{width}}" for label in LABELS)
    lines.append(f"{'':<10}{columns}{'no face':>{width}}{'outputs':>9}{'as asked':>10}")
    for row, emotion in enumerate(summary.emotions):
        counts = "".join(f"{int(n):>{width}}" for n in summary.confusion[row])
        lines.append(
            f"{emotion:<10}{counts}{summary.failures[emotion]:>{width}}"
            f"{summary.outputs(emotion):>9}{summary.share(emotion):>10.0%}"
        )
    total = sum(summary.outputs(e) for e in summary.emotions)
    lines.append(f"read as asked overall: {summary.overall_share:.0%} of {total} outputs")
    by_source = shares_by_source(summary.readings)
    for label, (faces, hits, outputs) in sorted(by_source.items(), key=lambda kv: -kv[1][0]):
        share = hits / outputs if outputs else float("nan")
        lines.append(
            f"  sources read as {label or 'nothing'} ({faces} faces): {hits} of {outputs} "
            f"outputs read as asked ({share:.0%})"
        )
    if summary.identity.size:
        lines.append(
            f"identity distance to the source (dlib; same person < {SAME_PERSON_DISTANCE}): "
            f"max {summary.identity.max():.3f}, median {np.median(summary.identity):.3f}, "
            f"{summary.identity_over_threshold} of {summary.identity.size} at or over "
            f"{SAME_PERSON_DISTANCE}"
        )
    lines.append("sources read as:")
    for reading in sources:
        if reading.error:
            lines.append(f"  {reading.case:<24} (none: {reading.error})")
            continue
        top = float(np.max(reading.probabilities))
        lines.append(f"  {reading.case:<24} {reading.read} {top:.2f}")
    if painted:
        lines.append("painted ICT head with each emotion's weights (no photo), read as:")
        for reading in painted:
            top = float(np.max(reading.probabilities)) if not reading.error else float("nan")
            lines.append(f"  {reading.intended:<24} {reading.read or reading.error} {top:.2f}")
    return "\n".join(lines)


def write_csv(path: Path, readings: list[Reading]) -> None:
    """One row per reading: case, intended, read, the 7 probabilities, distance, error."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case", "intended", "read", *(f"p_{lb}" for lb in LABELS),
                         "identity_distance", "error"])  # fmt: skip
        for r in readings:
            probabilities = [f"{p:.4f}" for p in r.probabilities]
            distance = f"{r.identity_distance:.4f}" if np.isfinite(r.identity_distance) else ""
            writer.writerow([r.case, r.intended, r.read, *probabilities, distance, r.error])


def corpus_cases() -> list[Case]:
    """Every human face of the test corpus: one case per face (FACE_INDEX for group photos)."""
    from tests.corpus import human_photos  # the corpus lives with the tests

    cases = []
    for photo in human_photos():
        if photo.faces > 1:
            cases += [Case(f"{photo.name}#{k}", photo.image, k) for k in range(photo.faces)]
        else:
            cases.append(Case(photo.name, photo.image))
    return cases


def central_face(faces: list[FaceDetection], image: np.ndarray) -> FaceDetection | None:
    """The detection nearest the centre of ``image`` (the reenacted face of a canvas)."""
    if not faces:
        return None
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    return min(faces, key=lambda face: float(np.linalg.norm(np.array(face.center) - centre)))


class Evaluator:
    """Classifies and embeds the source and outputs of each case."""

    def __init__(
        self,
        client: ReenactClient,
        classifier: EmotionClassifier,
        embedder: FaceEmbedder,
        detector: FaceDetector,
        emotions: tuple[str, ...] = EMOTIONS,
        sheets: Path | None = None,
    ) -> None:
        self.client = client
        self.classifier = classifier
        self.embedder = embedder
        self.detector = detector
        self.emotions = emotions
        self.sheets = sheets  # a folder for one contact sheet of the classifier's crops per case

    def failed(self, case: Case, message: str) -> list[Reading]:
        nan = np.full(len(LABELS), np.nan, np.float32)
        names = (SOURCE, *self.emotions)
        return [Reading(case.name, name, nan, error=message) for name in names]

    def evaluate(self, case: Case) -> list[Reading]:
        """The source's reading then one per emotion (errors included, never dropped)."""
        try:
            result = self.client.reenact(
                encode_image(case.image, "png"),
                emotions=list(self.emotions),
                output_format="png",
                face_index=case.face_index,
            )
        except ReenactError as exc:
            return self.failed(case, f"request refused: {exc}")
        source_box = result.face_box
        source = Reading(case.name, SOURCE, self.classifier.classify(case.image, source_box))
        source_descriptor = self.embedder.embed(case.image, source_box)
        readings, crops = [source], [crop_face(case.image, source_box, self.classifier.crop)]
        for name, data in zip(result.emotions, result.images, strict=True):
            output = decode_image(data)
            face = central_face(self.detector(output), output)
            if face is None:
                nan = np.full(len(LABELS), np.nan, np.float32)
                readings.append(Reading(case.name, name, nan, error="no face in the output"))
                crops.append(output)
                continue
            distance = descriptor_distance(source_descriptor, self.embedder.embed(output, face.box))
            probabilities = self.classifier.classify(output, face.box)
            readings.append(Reading(case.name, name, probabilities, distance))
            crops.append(crop_face(output, face.box, self.classifier.crop))
        if self.sheets is not None:
            self.write_sheet(case, readings, crops)
        return readings

    def write_sheet(self, case: Case, readings: list[Reading], crops: list[np.ndarray]) -> None:
        """``<sheets>/<case>.png``: each crop the classifier saw, labelled asked > read."""
        labels = []
        for reading in readings:
            read = reading.read or "none"
            if not reading.error:
                read += f" {float(np.max(reading.probabilities)):.2f}"
            labels.append(f"{reading.intended} > {read}")
        self.sheets.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(crops, labels, columns=len(crops), tile_width=200)
        path = self.sheets / f"{case.name.replace('#', '_face')}.png"
        path.write_bytes(encode_image(sheet, "png"))


PAINTED_CASE = "painted_ict_head"


def painted_readings(
    classifier: EmotionClassifier,
    detector: FaceDetector,
    emotions: tuple[str, ...] = EMOTIONS,
    size: int = 256,
) -> list[Reading]:
    """The ICT mean head, frontal, painted in a ``size`` x ``size`` picture with each emotion's
    expression weights, classified in the face detector's box."""
    from reenact.correspondence import view_params
    from reenact.emotions import load_catalogue
    from reenact.head_render import HeadPainter
    from reenact.morphable import EXPR_SLICE, MorphableModel
    from reenact.serving.health import PROBE_FACE_SCALE, PROBE_FACE_SIZE

    model = MorphableModel.load()
    catalogue = load_catalogue(model.expression_names)
    painter = HeadPainter(model, features=True)
    readings = []
    for emotion in emotions:
        params = view_params(0.0, 0.0, size, PROBE_FACE_SCALE * size / PROBE_FACE_SIZE)
        params[0, EXPR_SLICE] = catalogue.expression(emotion)
        image = painter.paint(model.decode(params)[0], size, size).image
        face = central_face(detector(image), image)
        if face is None:
            nan = np.full(len(LABELS), np.nan, np.float32)
            readings.append(Reading(PAINTED_CASE, emotion, nan, error="no face found"))
            continue
        readings.append(Reading(PAINTED_CASE, emotion, classifier.classify(image, face.box)))
    return readings


def run(url: str, out: Path) -> str:
    """Evaluate every corpus case against the server at ``url``; writes and returns the report."""
    evaluator = Evaluator(
        ReenactClient(url),
        EmotionClassifier.load(),
        FaceEmbedder(),
        FaceDetector.from_assets(),
        sheets=out / "crops",
    )
    readings: list[Reading] = []
    cases = corpus_cases()
    for case in cases:
        started = time.perf_counter()
        case_readings = evaluator.evaluate(case)
        reads = " ".join(f"{r.intended}>{r.read or 'none'}" for r in case_readings[1:])
        print(f"  {case.name}: {reads} ({time.perf_counter() - started:.1f} s)")
        readings += case_readings
    evaluator.client.close()
    painted = painted_readings(evaluator.classifier, evaluator.detector)
    header = (
        f"face_reenactment: {len(cases)} faces x {len(EMOTIONS)} emotions; classifier face-api "
        f"{FACE_API_VERSION} FaceExpressionNet, identity dlib ResNet descriptor"
    )
    sources = [r for r in readings if r.intended == SOURCE]
    report = format_report(summarize(readings), sources, header, painted)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "emotions.csv", readings + painted)
    (out / "emotions_report.txt").write_text(report + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gRPC host:port of a running server (default: start one)")
    parser.add_argument("--out", type=Path, default=build_dir() / "eval")
    args = parser.parse_args(argv)
    if args.url:
        report = run(args.url, args.out)
    else:
        from reenact.serving.server import ServerConfig, TritonServer

        with TritonServer(ServerConfig(models=("face_reenactment",))) as server:
            print(f"server ready in {server.startup_seconds:.1f} s")
            report = run(server.grpc_url, args.out)
    print(report)
    print(f"report and CSV under {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
