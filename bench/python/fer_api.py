#!/usr/bin/env python3
"""emotrack's Python package against `fer`, through the one interface they share:
`FER(mtcnn=True).detect_emotions(bgr_array)` (`emotrack.compat.FER` is the drop-in).

    python bench/python/fer_api.py --tool emotrack|fer [--photos DIR] [--video FILE] [--seconds S]

Prints JSON: photos per second over the photos (each fitted into 640x480, aspect kept, black
bars, BGR as cv2.imread gives), frames per second over a video's frames decoded by ffmpeg at
640x480, faces found, start-up time (import and model load), peak memory of the process
(ru_maxrss), and the installed size of the tool's distribution with everything it requires
(sizes of the files each distribution's RECORD lists). Run each tool in its own process (its
own venv: emotrack's with the wheel, bench/peers' for fer), so memory is its own.
"""

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

SIZE = (640, 480)


#: Distributions that stand in for a requirement (fer requires `tensorflow`; the CPU-only build,
#: which bench/peers installs, is another distribution).
ALIASES = {"tensorflow": "tensorflow-cpu"}


def installed_bytes(name):
    """Bytes of distribution `name` and every distribution it requires (extras left out); a
    requirement not installed (CUDA libraries on a CPU machine) counts nothing."""
    seen, todo, total = set(), [name], 0
    while todo:
        dist_name = re.split(r"[ ;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if dist_name in seen:
            continue
        seen.add(dist_name)
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            if dist_name in ALIASES:
                todo.append(ALIASES[dist_name])
            continue
        for f in dist.files or []:
            path = Path(f.locate())
            if path.is_file():
                total += path.stat().st_size
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return total, sorted(seen)


def fitted(image):
    """`image` (BGR) fitted into SIZE, aspect ratio kept, centred between black bars."""
    from PIL import Image

    w, h = SIZE
    scale = min(w / image.shape[1], h / image.shape[0])
    nw, nh = round(image.shape[1] * scale), round(image.shape[0] * scale)
    resized = np.asarray(Image.fromarray(image[:, :, ::-1]).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = resized[:, :, ::-1]
    return out


def photos(folder):
    from PIL import Image

    out = []
    for path in sorted(Path(folder).glob("*.jpg")):
        with Image.open(path) as image:
            out.append(fitted(np.asarray(image.convert("RGB"))[:, :, ::-1].copy()))
    return out


def frames(video):
    w, h = SIZE
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-vf",
         f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
         "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
        check=True, capture_output=True).stdout
    n = w * h * 3
    return [np.frombuffer(raw[i : i + n], np.uint8).reshape(h, w, 3) for i in range(0, len(raw), n)]


def timed(detector, images, seconds):
    """Images per second over whole passes lasting at least `seconds`, and faces per pass."""
    detector.detect_emotions(images[0])
    passes, faces, start = 0, 0, time.perf_counter()
    while True:
        faces = sum(len(detector.detect_emotions(i)) for i in images)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return len(images) * passes / elapsed, faces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=["emotrack", "fer"], required=True)
    ap.add_argument("--photos")
    ap.add_argument("--video")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    start = time.perf_counter()
    if a.tool == "emotrack":
        from emotrack.compat import FER
    else:
        import facenet_pytorch  # noqa: F401  (before tensorflow: both bundle LLVM)
        import logging

        from fer.fer import FER

        logging.getLogger("fer").setLevel(logging.WARNING)
    detector = FER(mtcnn=True)
    result = {"tool": a.tool, "startup_s": round(time.perf_counter() - start, 2)}
    if a.photos:
        ps, faces = timed(detector, photos(a.photos), a.seconds)
        result["photos"] = {"per_s": round(ps, 2), "faces": faces}
    if a.video:
        fps, faces = timed(detector, frames(a.video), a.seconds)
        result["video"] = {"name": Path(a.video).name, "fps": round(fps, 2), "faces": faces}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    size, dists = installed_bytes(a.tool)
    result["installed_mb"] = round(size / 2**20)
    result["distributions"] = len(dists)
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
