#!/usr/bin/env python3
"""OpenCV reference detections (and timings) for emotrack's Haar face detector.

Writes tests/fixtures/haar_opencv.json: for every image in <media>/photos and <media>/no_faces,
the boxes of OpenCV's CascadeClassifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3,
minSize=(20, 20)), run on cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY) with the repo's own
models/haarcascade_frontalface_default.xml. crates/emotrack/tests/haar.rs compares against it.

With --bench, instead times detectMultiScale on one photo shrunk to 640x480 (gray, then
INTER_LINEAR_EXACT, exactly what crates/emotrack/benches/bench_haar.rs feeds the Rust detector),
with 1 OpenCV thread and with all of them.

Environment (pinned; the fixture depends on OpenCV's exact arithmetic):
    python3 -m venv /work/venv
    /work/venv/bin/pip install opencv-python-headless==4.14.0.94   # pulls numpy (2.4.6 here)
Run from the repository root:
    /work/venv/bin/python scripts/haar_fixtures.py [--media ../shared/media] [--bench]
"""

import argparse
import json
import os
import statistics
import sys
import time

import cv2

OPENCV_PIN = "4.14.0"
PARAMS = {"scaleFactor": 1.1, "minNeighbors": 3, "minSize": [20, 20]}
FOLDERS = ("photos", "no_faces")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BENCH_IMAGE = "photos/linzaer_imgs_3.jpg"
BENCH_SIZE = (640, 480)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASCADE = os.path.join(ROOT, "models", "haarcascade_frontalface_default.xml")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "haar_opencv.json")


def load_cascade():
    cascade = cv2.CascadeClassifier(CASCADE)
    if cascade.empty():
        sys.exit(f"could not load {CASCADE}")
    return cascade


def gray_of(path):
    img = cv2.imread(path)
    if img is None:
        sys.exit(f"could not read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def detect(cascade, gray):
    boxes = cascade.detectMultiScale(
        gray,
        scaleFactor=PARAMS["scaleFactor"],
        minNeighbors=PARAMS["minNeighbors"],
        minSize=tuple(PARAMS["minSize"]),
    )
    return sorted([int(v) for v in b] for b in boxes)


def write_fixture(media):
    cascade = load_cascade()
    images = {}
    for folder in FOLDERS:
        d = os.path.join(media, folder)
        for name in sorted(os.listdir(d)):
            if name.lower().endswith(EXTENSIONS):
                key = f"{folder}/{name}"
                images[key] = detect(cascade, gray_of(os.path.join(d, name)))
                print(f"{key}: {len(images[key])} boxes")
    out = {
        "source": "scripts/haar_fixtures.py",
        "opencv_version": cv2.__version__,
        "cascade": "models/haarcascade_frontalface_default.xml",
        "gray": "cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY)",
        "params": PARAMS,
        "images": images,
    }
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        # One image per line keeps the fixture small and its diffs readable.
        f.write("{\n")
        for k in ("source", "opencv_version", "cascade", "gray", "params"):
            f.write(f"  {json.dumps(k)}: {json.dumps(out[k])},\n")
        f.write('  "images": {\n')
        lines = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in images.items()]
        f.write(",\n".join(lines))
        f.write("\n  }\n}\n")
    print(f"wrote {FIXTURE}")


def bench(media, repeats):
    cascade = load_cascade()
    gray = gray_of(os.path.join(media, BENCH_IMAGE))
    gray = cv2.resize(gray, BENCH_SIZE, interpolation=cv2.INTER_LINEAR_EXACT)
    all_threads = cv2.getNumThreads()
    for threads in (1, all_threads):
        cv2.setNumThreads(threads)
        detect(cascade, gray)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            n = len(detect(cascade, gray))
            times.append((time.perf_counter() - t) * 1e3)
        print(
            f"opencv {cv2.__version__} detectMultiScale {BENCH_IMAGE} @ {BENCH_SIZE[0]}x{BENCH_SIZE[1]}, "
            f"{threads} thread(s): median {statistics.median(times):.2f} ms, "
            f"min {min(times):.2f} ms over {repeats} runs, {n} faces"
        )
    cv2.setNumThreads(all_threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=os.path.join(ROOT, "..", "shared", "media"))
    ap.add_argument("--bench", action="store_true", help="time OpenCV instead of writing the fixture")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if not cv2.__version__.startswith(OPENCV_PIN):
        print(f"warning: OpenCV {cv2.__version__}, the fixture was made with {OPENCV_PIN}", file=sys.stderr)
    if args.bench:
        bench(args.media, args.repeats)
    else:
        write_fixture(args.media)


if __name__ == "__main__":
    main()
