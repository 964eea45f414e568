#!/usr/bin/env python3
"""facenet-pytorch reference detections (and timings) for emotrack's MTCNN face detector.

Writes tests/fixtures/mtcnn_facenet.json: for every image in <media>/photos and <media>/no_faces,
the result of facenet_pytorch.MTCNN(keep_all=True, device='cpu') with its defaults
(min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709) .detect(img, landmarks=True):
boxes [x1, y1, x2, y2], probabilities and five landmarks [x, y] (left eye, right eye, nose,
mouth left, mouth right) per face, in image pixels. crates/emotrack/tests/mtcnn.rs compares the
Rust detector against it.

Each image is run twice:
* on the pixels the Rust side decodes (the `image` crate), dumped by the ignored test
  `dump_decoded_rgb` in crates/emotrack/tests/mtcnn.rs, which this script runs with cargo: the
  algorithm-parity reference (same input pixels on both sides), with a checksum of those pixels
  so the test notices when a new decoder changes them;
* on PIL.Image.open(path).convert('RGB'), as a facenet-pytorch user would (key "pil"). JPEG
  decoders differ by a few grey levels, so these boxes differ slightly more.

With --bench, instead times MTCNN.detect on one photo shrunk to 640x480 (PIL bilinear), the
image crates/emotrack/benches/bench_mtcnn.rs feeds the Rust detector, with 1 torch thread and with
all of them.

Environment (pinned; facenet-pytorch 2.6.0 pins torch<2.3, which predates numpy 2, so it is
installed without its dependencies and run on a current torch):
    python3 -m venv /work/venv
    /work/venv/bin/pip install facenet-pytorch==2.6.0 --no-deps
    /work/venv/bin/pip install torch==2.15.0 torchvision==0.29.2 pillow numpy
Run from the repository root:
    /work/venv/bin/python scripts/mtcnn_fixtures.py [--media ../shared/media] [--bench]
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "mtcnn_facenet.json")
FOLDERS = ("photos", "no_faces")
BENCH_IMAGE = "photos/linzaer_imgs_3.jpg"
BENCH_SIZE = (640, 480)
PARAMS = {"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709}


def make_mtcnn():
    return MTCNN(keep_all=True, device="cpu", **PARAMS)


def detect(mtcnn, img):
    boxes, probs, points = mtcnn.detect(img, landmarks=True)
    if boxes is None:
        return [], [], []
    return (
        np.asarray(boxes, dtype=np.float64).tolist(),
        [float(p) for p in probs],
        np.asarray(points, dtype=np.float64).tolist(),
    )


def rounded(values, digits=4):
    if isinstance(values, list):
        return [rounded(v, digits) for v in values]
    return round(values, digits)


def rgb_checksum(pixels):
    """sum(byte[i] * (i % 65521 + 1)) over the raw RGB bytes (the Rust test computes the same)."""
    flat = pixels.reshape(-1).astype(np.uint64)
    weights = np.arange(flat.size, dtype=np.uint64) % np.uint64(65521) + np.uint64(1)
    return int((flat * weights).sum())


def dump_rust_decoded(media, out_dir):
    """Runs the ignored Rust test that writes the `image` crate's decode of every image."""
    env = dict(os.environ, EMOTRACK_MEDIA=os.path.abspath(media), EMOTRACK_DUMP_RGB=out_dir)
    cmd = ["cargo", "test", "-q", "-p", "emotrack", "--test", "mtcnn", "--",
           "--ignored", "--exact", "dump_decoded_rgb"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def result(mtcnn, img):
    boxes, probs, points = detect(mtcnn, img)
    return {"boxes": rounded(boxes), "probs": rounded(probs, 6), "landmarks": rounded(points)}


def write_fixture(media):
    mtcnn = make_mtcnn()
    images = {}
    with tempfile.TemporaryDirectory() as rgb_dir:
        dump_rust_decoded(media, rgb_dir)
        for folder in FOLDERS:
            for name in sorted(os.listdir(os.path.join(media, folder))):
                path = os.path.join(media, folder, name)
                rel = f"{folder}/{name}"
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                pil = Image.open(path).convert("RGB")
                w, h = pil.size
                raw = np.fromfile(os.path.join(rgb_dir, f"{folder}__{name}.rgb"), dtype=np.uint8)
                rust = raw.reshape(h, w, 3)
                entry = {"size": [w, h], "sha256": digest, "rgb_checksum": rgb_checksum(rust)}
                entry.update(result(mtcnn, rust))
                entry["pil"] = result(mtcnn, pil)
                images[rel] = entry
                print(f"{rel}: {len(entry['boxes'])} faces ({len(entry['pil']['boxes'])} on PIL's decode)")
    fixture = {
        "generator": "scripts/mtcnn_fixtures.py",
        "call": "facenet_pytorch.MTCNN(keep_all=True, device='cpu', **parameters)"
        ".detect(rgb, landmarks=True), rgb = the image crate's decode (HxWx3 uint8); "
        "'pil': the same on PIL.Image.open(path).convert('RGB')",
        "versions": {
            "facenet-pytorch": importlib.metadata.version("facenet-pytorch"),
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
            "numpy": np.__version__,
            "pillow": Image.__version__,
        },
        "parameters": PARAMS,
        "landmark_order": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
        "images": images,
    }
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {FIXTURE}")


def bench(media, repeats):
    img = Image.open(os.path.join(media, BENCH_IMAGE)).convert("RGB")
    img = img.resize(BENCH_SIZE, Image.BILINEAR)
    mtcnn = make_mtcnn()
    all_threads = torch.get_num_threads()
    for threads in (1, all_threads):
        torch.set_num_threads(threads)
        with torch.no_grad():
            detect(mtcnn, img)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                n = len(detect(mtcnn, img)[0])
                times.append((time.perf_counter() - t) * 1e3)
        print(
            f"facenet-pytorch {importlib.metadata.version('facenet-pytorch')} (torch {torch.__version__}) "
            f"MTCNN.detect {BENCH_IMAGE} @ {BENCH_SIZE[0]}x{BENCH_SIZE[1]}, {threads} thread(s): "
            f"median {statistics.median(times):.2f} ms, min {min(times):.2f} ms over {repeats} runs, "
            f"{n} faces"
        )
    torch.set_num_threads(all_threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=os.path.join(ROOT, "..", "shared", "media"))
    ap.add_argument("--bench", action="store_true", help="time facenet-pytorch instead of writing the fixture")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if args.bench:
        bench(args.media, args.repeats)
    else:
        write_fixture(args.media)


if __name__ == "__main__":
    main()
