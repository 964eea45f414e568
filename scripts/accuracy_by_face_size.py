#!/usr/bin/env python3
"""Emotion accuracy on FER-2013 val when the face is small: every 48x48 val crop is shrunk to
SIDE x SIDE and scaled back up to 48x48 (bilinear), as a small face in a frame is by the crop
step, then classified by the exported model.

    target/release/emotrack export --onnx /tmp/emotion.onnx
    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime numpy pillow
    /tmp/ortvenv/bin/python scripts/accuracy_by_face_size.py /tmp/emotion.onnx [VAL_FOLDER]

ONNX Runtime only runs the exported graph here (the export equals the native runtime within 1e-4,
crates/emotrack/tests/onnx.rs). The crop side is the detector box's side times 1.2 (the default
crop margin of 0.1 on each side).
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

model = Path(sys.argv[1])
val = Path(sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets/fer2013/val")
cfg = json.loads(model.with_suffix(".json").read_text())
mean, std = cfg["normalization"]["mean"], cfg["normalization"]["std"]
session = ort.InferenceSession(str(model))
images, truth = [], []
for ci, c in enumerate(cfg["classes"]):
    for p in sorted((val / c).glob("*.jpg")):
        images.append(Image.open(p).convert("L"))
        truth.append(ci)
truth = np.array(truth)
for side in (48, 40, 32, 24, 20, 16, 12):
    xs = [np.asarray(im if side == 48 else im.resize((side, side), Image.BILINEAR).resize((48, 48), Image.BILINEAR),
                     np.float32) for im in images]
    x = ((np.stack(xs) / 255.0 - mean) / std)[:, None]
    pred = np.concatenate([session.run(None, {"input": x[i:i + 256]})[0].argmax(1) for i in range(0, len(x), 256)])
    print(f"crop side {side:2d} px (box ~{side / 1.2:.0f} px): accuracy {(pred == truth).mean() * 100:.1f}%")
