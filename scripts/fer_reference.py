"""Writes tests/fixtures/fer/reference.json: what the `fer` package itself answers on the test
photos, for the drop-in's tests (crates/emotrack-py/tests/test_compat.py).

Run in a venv with fer (bench/peers' venv has it):
    /var/tmp/emotrack-peers-venv/bin/python scripts/fer_reference.py
"""

import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

# torchvision and tensorflow both bundle LLVM: importing tensorflow (through fer) first makes
# torchvision's import abort, so facenet-pytorch (fer's MTCNN) is loaded before fer.
import facenet_pytorch  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2  # noqa: E402
from fer.fer import FER  # noqa: E402  # fer 25.x; older releases export it from `fer`

REPO = Path(__file__).resolve().parents[1]
PHOTOS = [
    "photos/ageitgey_kit_with_rose.jpg",
    "photos/linzaer_imgs_2.jpg",
    "no_faces/fer_no-faces_cartoon.jpg",
]


def main() -> None:
    out = {"script": "scripts/fer_reference.py", "fer": version("fer"), "photos": {}}
    for mtcnn in (True, False):
        detector = FER(mtcnn=mtcnn)
        for name in PHOTOS:
            img = cv2.imread(str(REPO / "tests" / "fixtures" / name))
            faces = detector.detect_emotions(img)
            top = detector.top_emotion(img)
            out["photos"].setdefault(name, {})["mtcnn" if mtcnn else "haar"] = {
                # fer's own values, with their Python types named (the drop-in must match them).
                "faces": [
                    {"box": [int(v) for v in f["box"]], "emotions": f["emotions"]} for f in faces
                ],
                "box_types": sorted({type(v).__name__ for f in faces for v in f["box"]}),
                "box_container": sorted({type(f["box"]).__name__ for f in faces}),
                "emotion_keys": [list(f["emotions"]) for f in faces],
                "top_emotion": list(top),
            }
    path = REPO / "tests" / "fixtures" / "fer" / "reference.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
