"""A drop-in for the ``fer`` package: change one import line.

.. code-block:: python

    # from fer import FER
    from emotrack.compat import FER

    detector = FER(mtcnn=True)
    detector.detect_emotions(img)  # [{'box': [x, y, w, h], 'emotions': {'angry': 0.02, ...}}]
    detector.top_emotion(img)      # ('happy', 0.99)

``img`` is what ``fer`` takes: an OpenCV (BGR) NumPy array, a file path, or a
``data:image/...;base64,...`` string. The results have ``fer``'s exact shapes: ``box`` a list
of four ``int`` (``[x, y, width, height]``, corners truncated as ``fer`` does for MTCNN),
``emotions`` a dict of the seven emotions in ``fer``'s order (angry, disgust, fear, happy, sad,
surprise, neutral), each rounded to 2 decimals. The faces and the emotions are emotrack's own
(its MTCNN or Haar detector and its emotion model), so the numbers differ from ``fer``'s.

``mtcnn=True`` uses emotrack's MTCNN (smallest face 20 px, as facenet-pytorch's default that
``fer`` uses); the default is a Haar cascade (OpenCV's frontal-face cascade, built in) with
``fer``'s ``scale_factor``, ``min_neighbors`` and ``min_face_size``. ``offsets`` and
``use_tflite`` are accepted and ignored (emotrack crops and runs its own model);
``cascade_file`` and ``tfserving`` are not supported.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._emotrack import Analyzer
from .errors import EmotrackError, ImageError

__all__ = ["FER", "InvalidImage"]

#: ``fer``'s emotion order (its model's class order), kept in every ``emotions`` dict.
FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: ``fer`` rounds every probability to this many decimals.
FER_DECIMALS = 2


class InvalidImage(ImageError):
    """An image ``FER`` cannot read (``fer.exceptions.InvalidImage``'s counterpart)."""


class FER:
    """Facial expression recognition with ``fer``'s interface on emotrack's models."""

    def __init__(
        self,
        cascade_file: Optional[str] = None,
        mtcnn: bool = False,
        tfserving: bool = False,
        use_tflite: bool = True,
        scale_factor: float = 1.1,
        min_face_size: int = 50,
        min_neighbors: int = 5,
        offsets: Sequence[int] = (10, 10),
    ) -> None:
        # fer's own checks, with its messages.
        if scale_factor <= 1.0:
            raise ValueError("scale_factor must be greater than 1.0")
        if min_face_size < 1:
            raise ValueError("min_face_size must be at least 1")
        if min_neighbors < 0:
            raise ValueError("min_neighbors must be non-negative")
        if not isinstance(offsets, (tuple, list)) or len(offsets) != 2:
            raise ValueError("offsets must be a tuple or list of length 2")
        if cascade_file is not None:
            raise NotImplementedError(
                "cascade_file: emotrack's Haar detector uses OpenCV's frontal-face cascade, "
                "built in; leave cascade_file out, or use mtcnn=True"
            )
        if tfserving:
            raise NotImplementedError("tfserving: emotrack runs its model in-process")
        if mtcnn:
            self._analyzer = Analyzer("mtcnn")
        else:
            self._analyzer = Analyzer(
                "haar",
                min_face=max(min_face_size, 12),
                min_neighbors=min_neighbors,
                scale_factor=scale_factor,
            )
        self.emotions: List[Dict[str, Any]] = []

    def detect_emotions(
        self, img: Any, face_rectangles: Optional[Sequence[Sequence[int]]] = None
    ) -> List[Dict[str, Any]]:
        """Every face's box and emotions: ``[{'box': [x, y, w, h], 'emotions': {...}}]``.

        ``face_rectangles`` (``[x, y, w, h]`` each) skips detection; they are returned as given.
        """
        image = _load_image(img)
        boxes = None if face_rectangles is None else [tuple(map(float, r)) for r in face_rectangles]
        try:
            faces = self._analyzer.analyze(image, bgr=True, boxes=boxes)
        except (EmotrackError, OSError) as e:
            raise InvalidImage(f"Failed to load image: {e}") from e
        result = []
        for i, face in enumerate(faces):
            box = list(face_rectangles[i]) if face_rectangles is not None else _fer_box(face.box)
            probabilities = face.probabilities
            emotions = {e: round(float(probabilities[e]), FER_DECIMALS) for e in FER_EMOTIONS}
            result.append({"box": box, "emotions": emotions})
        self.emotions = result
        return result

    def batch_detect_emotions(self, imgs: Sequence[Any]) -> List[List[Dict[str, Any]]]:
        """``detect_emotions`` of each image."""
        return [self.detect_emotions(img) for img in imgs]

    def find_faces(self, img: Any, bgr: bool = True) -> List[List[int]]:
        """The face boxes ``[x, y, w, h]`` in an image."""
        return [r["box"] for r in self.detect_emotions(img)]

    def top_emotion(self, img: Any) -> Tuple[Optional[str], Optional[float]]:
        """The first face's top emotion and its score, or ``(None, None)`` without a face."""
        emotions = self.detect_emotions(img=img)
        if not emotions:
            return (None, None)
        first = emotions[0]["emotions"]
        top = max(first, key=lambda key: first[key])
        return top, first[top]


def _fer_box(box: Any) -> List[int]:
    """``[x, y, w, h]`` from the corners truncated to ints, as ``fer`` converts MTCNN's boxes."""
    x1, y1 = int(box.x), int(box.y)
    return [x1, y1, int(box.x + box.w) - x1, int(box.y + box.h) - y1]


def _load_image(img: Any) -> Union[str, bytes, np.ndarray]:
    """What ``fer.utils.load_image`` accepts, as ``Analyzer.analyze`` takes it (arrays BGR)."""
    if isinstance(img, np.ndarray):
        if img.ndim == 2:  # gray: the same gray in all three channels
            return np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim == 3 and img.shape[2] == 4:  # BGRA: alpha dropped
            return img[:, :, :3]
        return img
    if img is None:
        raise InvalidImage("Image not valid.")
    if isinstance(img, str):
        if img.startswith("data:image/"):
            try:
                return base64.b64decode(img.split(",", 1)[1], validate=False)
            except (IndexError, ValueError) as e:
                raise InvalidImage(f"Failed to load image: {e}") from e
        if img.startswith("http"):
            raise InvalidImage("Failed to load image: emotrack does not download URLs")
        return img
    raise InvalidImage(f"Unsupported image type: {type(img)}")
