#!/usr/bin/env python3
"""What reading a NumPy frame costs `emotrack.Analyzer.analyze`, against the analysis itself.

    python bench/python/array_input.py [--photo JPG] [--repeat N]

The bindings read a C-contiguous RGB array in place and copy any other (a BGR one, converted
to RGB in the same pass) once, while they hold the GIL (crates/emotrack-py/src/input.rs). For a
real photo fitted into 640x480 and 1920x1080 (aspect ratio kept, black bars), as a
C-contiguous RGB array and as OpenCV's BGR, this prints the median time (ms) of:

* `numpy copy`: `np.copyto` into a preallocated array, what a copy of the frame costs;
* `input only`: `analyze(frame, boxes=[])`, which reads the array (type checks, the borrow or
  the copy, the size check) and then has nothing to classify: the bindings' input path;
* `input only, 32x32`: the same on a 32x32 array, the call's fixed cost without pixels;
* `analyze`: the whole analysis (`Analyzer()`, YuNet, the default; `Analyzer("mtcnn")`);

and the input path's share of an analysis, (input only - input only 32x32) / analyze.
"""

from __future__ import annotations

import argparse
import json
import os
import timeit
from pathlib import Path

import numpy as np
from PIL import Image

import emotrack

SIZES = ((640, 480), (1920, 1080))
DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "tests/fixtures/photos/ageitgey_kit_with_rose.jpg"


def fitted(rgb: np.ndarray, size: tuple) -> np.ndarray:
    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    nw, nh = round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    return out


def median_ms(call, repeat: int) -> float:
    number = max(1, int(0.2 / max(timeit.timeit(call, number=1), 1e-6)))
    runs = timeit.repeat(call, number=number, repeat=repeat)
    return round(sorted(runs)[len(runs) // 2] / number * 1e3, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default=str(DEFAULT_PHOTO))
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    with Image.open(a.photo) as image:
        rgb = np.asarray(image.convert("RGB"))
    analyzers = {"yunet": emotrack.Analyzer(), "mtcnn": emotrack.Analyzer("mtcnn")}
    tiny = np.zeros((32, 32, 3), np.uint8)
    result = {
        "photo": Path(a.photo).name,
        "emotrack": emotrack.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "frames": [],
    }
    yunet = analyzers["yunet"]
    for size in SIZES:
        frame = fitted(rgb, size)
        bgr = np.ascontiguousarray(frame[:, :, ::-1])
        dst = np.empty_like(frame)
        row = {
            "size": f"{size[0]}x{size[1]}",
            "faces": {name: len(an.analyze(frame)) for name, an in analyzers.items()},
            "numpy_copy_ms": median_ms(lambda: np.copyto(dst, frame), a.repeat),
            "input_only_ms": median_ms(lambda: yunet.analyze(frame, boxes=[]), a.repeat),
            "input_only_bgr_ms": median_ms(lambda: yunet.analyze(bgr, bgr=True, boxes=[]), a.repeat),
            "input_only_32x32_ms": median_ms(lambda: yunet.analyze(tiny, boxes=[]), a.repeat),
        }
        for name, an in analyzers.items():
            row[f"analyze_{name}_ms"] = median_ms(lambda: an.analyze(frame), a.repeat)
        rgb_input = row["input_only_ms"] - row["input_only_32x32_ms"]
        bgr_input = row["input_only_bgr_ms"] - row["input_only_32x32_ms"]
        for name in analyzers:
            total = row[f"analyze_{name}_ms"]
            row[f"input_share_{name}_pct"] = round(100 * rgb_input / total, 2)
            row[f"input_bgr_share_{name}_pct"] = round(100 * bgr_input / total, 2)
        result["frames"].append(row)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
