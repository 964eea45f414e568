#!/usr/bin/env python3
"""Times the reference face detectors on the same images and settings as `emotrack bench detect`.

OpenCV's CascadeClassifier.detectMultiScale (haarcascade_frontalface_default.xml, scaleFactor 1.1,
minNeighbors 3, minSize 20x20) and facenet-pytorch's MTCNN (CPU, min_face_size 20, thresholds
[0.6, 0.7, 0.7], factor 0.709), each on one thread and on all cores, on every image of the given
folder resized to WIDTHxHEIGHT. Prints JSON rows like `emotrack bench detect --json`.

Run by bench/detect.sh, which makes the environment (versions pinned there).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from facenet_pytorch import MTCNN

EXTS = {".jpg", ".jpeg", ".png"}


def time_it(seconds, fn):
    fn()  # warm-up
    start = time.perf_counter()
    runs = 0
    while runs < 3 or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs, runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    files = sorted(p for p in Path(a.folder).rglob("*") if p.suffix.lower() in EXTS)
    if not files:
        sys.exit(f"no images in {a.folder}")
    rgb = [np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)) for p in files]
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in rgb]
    pil = [Image.fromarray(im) for im in rgb]
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    mtcnn = MTCNN(keep_all=True, device="cpu")
    all_threads = os.cpu_count() or 1
    rows = []
    for threads in (1, all_threads):
        cv2.setNumThreads(threads)
        faces = [0]

        def haar():
            faces[0] = sum(len(cascade.detectMultiScale(g, scaleFactor=1.1, minNeighbors=3, minSize=(20, 20))) for g in gray)

        secs, runs = time_it(a.seconds, haar)
        per = secs / len(gray)
        rows.append({"name": f"opencv haar ({faces[0]} faces in {len(gray)} images)", "threads": threads,
                     "ms_per_item": per * 1e3, "items_per_second": 1 / per, "runs": runs,
                     "version": cv2.__version__})
    for threads in (1, all_threads):
        torch.set_num_threads(threads)
        faces = [0]

        def mt():
            n = 0
            with torch.no_grad():
                for im in pil:
                    boxes, _ = mtcnn.detect(im)
                    n += 0 if boxes is None else len(boxes)
            faces[0] = n

        secs, runs = time_it(a.seconds, mt)
        per = secs / len(pil)
        import facenet_pytorch
        rows.append({"name": f"facenet-pytorch mtcnn ({faces[0]} faces in {len(pil)} images)", "threads": threads,
                     "ms_per_item": per * 1e3, "items_per_second": 1 / per, "runs": runs,
                     "version": f"facenet-pytorch {getattr(facenet_pytorch, '__version__', '2.6.0')}, torch {torch.__version__}"})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
