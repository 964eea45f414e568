#!/usr/bin/env python3
"""Times the reference face detectors on the same images and settings as `emotrack bench detect`.

OpenCV's CascadeClassifier.detectMultiScale (haarcascade_frontalface_default.xml, scaleFactor 1.1,
minNeighbors 3, minSize 20x20) and facenet-pytorch's MTCNN (CPU, min_face_size 20, thresholds
[0.6, 0.7, 0.7], factor 0.709), each on one thread and on all cores, on every image of the given
folder fitted into WIDTHxHEIGHT (aspect ratio kept, black bars). Prints JSON rows like `emotrack bench detect --json`.

Run by bench/detect.sh, which makes the environment (bench/peers/venv.sh, versions pinned there).
The helpers (image loading, timing, the two detectors) are also used by bench/peers/peers.py.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

EXTS = {".jpg", ".jpeg", ".png"}
# emotrack's haar defaults (HaarSettings), so both sides search the same windows.
HAAR_SETTINGS = dict(scaleFactor=1.1, minNeighbors=3, minSize=(20, 20))


def image_files(folder):
    """The images under `folder` (recursive), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in EXTS)


def letterbox(im, size):
    """`im` fitted inside `size` (w, h) with its aspect ratio kept (bilinear), centred on black:
    what `emotrack bench detect --size` and ffmpeg's `force_original_aspect_ratio=decrease,pad`
    do, so faces are not squeezed."""
    (w, h), (bw, bh) = im.size, size
    fw, fh = (bw, max(1, int(h * bw / w + 0.5))) if w * bh >= h * bw else (max(1, int(w * bh / h + 0.5)), bh)
    out = Image.new("RGB", size)
    out.paste(im.convert("RGB").resize((fw, fh), Image.BILINEAR), ((bw - fw) // 2, (bh - fh) // 2))
    return out


def load_rgb(folder, size=None):
    """Every image of `folder` as an RGB array, letterboxed into `size` (w, h) if given."""
    images = []
    for p in image_files(folder):
        im = Image.open(p).convert("RGB")
        if size is not None:
            im = letterbox(im, size)
        images.append(np.asarray(im))
    return images


def time_it(seconds, fn, min_runs=3):
    """Calls `fn` for at least `seconds` (and `min_runs` times) after one warm-up call: (mean s, calls)."""
    fn()
    start = time.perf_counter()
    runs = 0
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs, runs


def opencv_haar():
    """detect(rgb) -> boxes with OpenCV's detectMultiScale at HAAR_SETTINGS (gray conversion included)."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(rgb):
        return cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), **HAAR_SETTINGS)

    return detect


def facenet_mtcnn():
    """detect(rgb) -> boxes with facenet-pytorch's MTCNN on the CPU at its defaults."""
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")

    def detect(rgb):
        with torch.no_grad():
            boxes, _ = mtcnn.detect(rgb)
        return [] if boxes is None else boxes

    return detect


def versions():
    from importlib.metadata import version

    return {name: version(name) for name in ("opencv-python-headless", "facenet-pytorch", "torch")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    rgb = load_rgb(a.folder, (w, h))
    if not rgb:
        sys.exit(f"no images in {a.folder}")
    import cv2
    import torch

    v = versions()
    all_threads = os.cpu_count() or 1
    rows = []
    for name, make, set_threads, version in [
        ("opencv haar", opencv_haar, cv2.setNumThreads, f"opencv-python-headless {v['opencv-python-headless']}"),
        ("facenet-pytorch mtcnn", facenet_mtcnn, torch.set_num_threads,
         f"facenet-pytorch {v['facenet-pytorch']}, torch {v['torch']}"),
    ]:
        detect = make()
        for threads in (1, all_threads):
            set_threads(threads)
            faces = [0]

            def run():
                faces[0] = sum(len(detect(im)) for im in rgb)

            secs, runs = time_it(a.seconds, run)
            per = secs / len(rgb)
            rows.append({"name": f"{name} ({faces[0]} faces in {len(rgb)} images)", "threads": threads,
                         "ms_per_item": per * 1e3, "items_per_second": 1 / per, "runs": runs,
                         "version": version})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
