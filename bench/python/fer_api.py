#!/usr/bin/env python3
"""emotrack's Python package against `fer`, in Python, on the same photos, video frames and
FER-2013 val crops.

    python bench/python/fer_api.py compare [--photos DIR] [--video FILE ...] [--val DIR] [--rounds N]
    python bench/python/fer_api.py memory --tool TOOL [--photos DIR] [--video FILE ...]

Both need a Python environment holding both packages: bench/peers/venv.sh's (fer, TensorFlow,
facenet-pytorch) with the emotrack wheel added, e.g. `pip install --no-deps --target DIR` and
`PYTHONPATH=DIR` (emotrack needs only NumPy, which is there). The tools, each through the interface a user calls:

* `emotrack`: `emotrack.Analyzer()` (YuNet, the default), `analyze(frame, bgr=True)`;
* `emotrack-compat`, `emotrack-compat-mtcnn`: `emotrack.compat.FER()` / `FER(mtcnn=True)`,
  the drop-in, `detect_emotions(frame)`;
* `fer`, `fer-mtcnn`: `fer.FER()` (OpenCV Haar) / `FER(mtcnn=True)` (facenet-pytorch),
  `detect_emotions(frame)`.

Photos are fitted into 640x480 (aspect ratio kept, black bars), BGR as `cv2.imread` gives;
video frames are decoded by FFmpeg at 640x480 the same way.

**Why two kinds of process.** The issue asks for both tools "in one Python process", and the
speed of two tools is best compared in one process in the same minutes: on a machine shared
with other work, load that comes and goes then slows both alike. So `compare` runs every tool
in one process: accuracy on val, photos per second and video FPS, each tool taking one pass
over the images per round, the order reversed every other round; it prints each tool's rate
and its ratio to fer's (emotrack's rate divided by fer's, with the per-round range). Peak
memory cannot be told apart in such a process (`ru_maxrss` is the process's, and TensorFlow,
torch and emotrack would all be in it), so `memory` runs one tool alone in a fresh process:
start-up (imports and model loading), resident memory after start-up and at its peak
(`ru_maxrss`) over one pass of the photos and the video frames, which are read from FFmpeg
one at a time so that held frames do not count.

Accuracy (FER-2013 val, one folder per emotion): each crop is decoded once by OpenCV
(`cv2.imread(path, cv2.IMREAD_GRAYSCALE)`) and given to both tools. fer: `detect_emotions`
of the crop in BGR with `face_rectangles=[(0, 0, w, h)]`, as fer's docs allow (fer then pads
the picture by 40 px with the mean gray of its bottom rows, widens the box by its `offsets`,
10 px a side by default, resizes that to 64x64 and runs its default quantized TFLite model),
once with the default offsets and once with `FER(offsets=(0, 0))`, which classifies the crop
alone; its label is the top of the rounded `emotions` dict, ties to the first in fer's order
(counted). emotrack: `Analyzer.classify([crop])`, the crop whole (what `emotrack eval` does),
one call per crop as for fer and once as one batch; also the files by path, decoded by
emotrack itself, which must give `emotrack eval`'s accuracy.

Installed size: the bytes of the files each distribution's RECORD lists, for the tool and
every distribution it requires on this platform (transitively, extras left out; a requirement
not installed counts nothing and is listed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZE = (640, 480)
TOOLS = ("emotrack", "emotrack-compat", "emotrack-compat-mtcnn", "fer", "fer-mtcnn")
#: Which fer each emotrack tool is compared with (same kind of detector, and the default).
PAIRS = (
    ("emotrack", "fer"),
    ("emotrack", "fer-mtcnn"),
    ("emotrack-compat", "fer"),
    ("emotrack-compat-mtcnn", "fer-mtcnn"),
)
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Distributions that stand in for a requirement: fer requires `tensorflow` (bench/peers
#: installs the CPU-only build, another distribution) and `opencv-contrib-python` (the headless
#: build is the same cv2 module without the GUI and extras fer does not use).
ALIASES = {"tensorflow": "tensorflow-cpu", "opencv-contrib-python": "opencv-python-headless"}
#: GPU runtime distributions that PyPI's Linux torch wheel requires (counted, and also shown
#: apart: a CPU-only torch from PyTorch's own index would leave them out).
GPU_DIST = re.compile(r"^(nvidia-|cuda-|triton$)")


def installed(name: str) -> dict:
    """Bytes of distribution `name` alone and with everything it requires on this platform
    (environment markers evaluated, extras left out), the GPU runtime's share, and the
    requirements that are not installed."""
    from packaging.requirements import Requirement

    seen, todo, sizes, missing = set(), [name], {}, []
    while todo:
        dist_name = todo.pop().lower().replace("_", "-")
        if dist_name in seen:
            continue
        seen.add(dist_name)
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            if dist_name in ALIASES:
                todo.append(ALIASES[dist_name])
            else:
                missing.append(dist_name)
            continue
        sizes[dist_name] = sum(
            Path(f.locate()).stat().st_size for f in dist.files or [] if Path(f.locate()).is_file()
        )
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    if name not in sizes:
        raise SystemExit(f"{name} is not installed in this environment")
    mb = lambda n: round(n / 2**20)  # noqa: E731
    return {
        "own_mb": mb(sizes[name]),
        "mb": mb(sum(sizes.values())),
        "gpu_runtime_mb": mb(sum(v for k, v in sizes.items() if GPU_DIST.match(k))),
        "largest_mb": {k: mb(v) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:6]},
        "distributions": len(sizes),
        "not_installed": sorted(missing),
    }


def fitted(image: np.ndarray) -> np.ndarray:
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


def photos(folder: str) -> list:
    from PIL import Image

    out = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png")):
        with Image.open(path) as image:
            out.append(fitted(np.asarray(image.convert("RGB"))[:, :, ::-1].copy()))
    return out


def frames(videos: list):
    """Every frame of `videos` at 640x480 (BGR), one at a time from FFmpeg."""
    w, h = SIZE
    n = w * h * 3
    for video in videos:
        ffmpeg = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-i", str(video), "-vf",
             f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
             "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
            stdout=subprocess.PIPE)
        while len(raw := ffmpeg.stdout.read(n)) == n:
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        ffmpeg.stdout.close()
        if ffmpeg.wait() != 0:
            raise RuntimeError(f"ffmpeg could not decode {video}")


def fer_class(mtcnn: bool):
    """fer's `FER`; with `mtcnn`, imported after facenet-pytorch: torch and TensorFlow both
    bundle LLVM, and the process aborts when TensorFlow's copy registers first (`compare`
    imports facenet-pytorch first for every tool; fer's Haar alone never imports torch)."""
    import logging

    if mtcnn:
        import facenet_pytorch  # noqa: F401

    from fer.fer import FER

    logging.getLogger("fer").setLevel(logging.WARNING)
    return FER


def make(tool: str):
    """`tool`'s detector as a function of a BGR frame returning its number of faces."""
    if tool == "emotrack":
        import emotrack

        analyzer = emotrack.Analyzer()
        return lambda frame: len(analyzer.analyze(frame, bgr=True))
    mtcnn = tool.endswith("-mtcnn")
    if tool.startswith("emotrack-compat"):
        from emotrack.compat import FER
    else:
        FER = fer_class(mtcnn)
    detector = FER(mtcnn=mtcnn)
    return lambda frame: len(detector.detect_emotions(frame))


def rss_mb() -> float:
    """The process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return float("nan")


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }


def versions() -> dict:
    names = ("emotrack", "fer", "tensorflow-cpu", "torch", "facenet-pytorch",
             "opencv-python-headless", "numpy")
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def accuracy(val: str) -> dict:
    """Both tools' accuracy on the crops of `val` (one folder per emotion)."""
    FER = fer_class(mtcnn=False)
    import cv2
    import emotrack

    files = [
        (path, emotion)
        for emotion in sorted(p.name for p in Path(val).iterdir() if p.is_dir())
        for path in sorted((Path(val) / emotion).iterdir())
    ]
    crops = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path, _ in files]
    truth = [emotion for _, emotion in files]
    analyzer = emotrack.Analyzer()

    def score(labels):
        right = sum(a == b for a, b in zip(labels, truth))
        return {"right": right, "accuracy": round(100 * right / len(truth), 2)}

    out = {"crops": len(files), "decoder": f"OpenCV {cv2.__version__}"}
    start = time.perf_counter()
    labels = [analyzer.classify([crop])[0].label for crop in crops]
    seconds = time.perf_counter() - start
    out["emotrack"] = {**score(labels), "crops_per_s": round(len(crops) / seconds, 1)}
    start = time.perf_counter()
    batch = [face.label for face in analyzer.classify(crops)]
    seconds = time.perf_counter() - start
    out["emotrack"]["one_batch_crops_per_s"] = round(len(crops) / seconds, 1)
    out["emotrack"]["one_batch_same_labels"] = batch == labels
    out["emotrack_own_decoder"] = score([f.label for f in analyzer.classify([p for p, _ in files])])

    for name, fer in (("fer", FER()), ("fer_offsets_0", FER(offsets=(0, 0)))):
        labels, ties = [], 0
        start = time.perf_counter()
        for crop in crops:
            h, w = crop.shape
            (face,) = fer.detect_emotions(cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR), [(0, 0, w, h)])
            scores = face["emotions"]
            best = max(scores.values())
            ties += sum(v == best for v in scores.values()) > 1
            labels.append(next(e for e in EMOTIONS if scores[e] == best))
        seconds = time.perf_counter() - start
        out[name] = {**score(labels), "crops_per_s": round(len(crops) / seconds, 1), "ties": ties}
        out[f"emotrack_ahead_of_{name}_points"] = round(
            out["emotrack"]["accuracy"] - out[name]["accuracy"], 2
        )
    return out


def speed(images: list, rounds: int) -> dict:
    """Each tool's images per second over `rounds` passes, one pass per tool per round (the
    order reversed every other round), and each emotrack tool's ratio to fer's."""
    tools = {tool: make(tool) for tool in TOOLS}
    for detect in tools.values():  # warm-up
        detect(images[0])
    seconds = {tool: [] for tool in TOOLS}
    faces = {}
    for r in range(rounds):
        for tool in TOOLS if r % 2 == 0 else reversed(TOOLS):
            start = time.perf_counter()
            faces[tool] = sum(tools[tool](image) for image in images)
            seconds[tool].append(time.perf_counter() - start)
    out = {
        tool: {
            "per_s": round(len(images) * rounds / sum(seconds[tool]), 2),
            "faces_per_pass": faces[tool],
        }
        for tool in TOOLS
    }
    for a, b in PAIRS:
        per_round = [sb / sa for sa, sb in zip(seconds[a], seconds[b])]
        out[f"{a} / {b}"] = {
            "ratio": round(sum(seconds[b]) / sum(seconds[a]), 2),
            "per_round": [round(min(per_round), 2), round(max(per_round), 2)],
        }
    return out


def compare(a) -> dict:
    import facenet_pytorch  # noqa: F401  (first: see fer_class)

    result = {"machine": machine(), "versions": versions(), "rounds": a.rounds}

    def done(section: str, value) -> None:
        """Keeps `value`, and writes what is done so far to --out (a long run that fails late
        keeps its first sections)."""
        result[section] = value
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=1) + "\n")

    done("installed", {"emotrack": installed("emotrack"), "fer": installed("fer")})
    if a.val:
        done("accuracy", accuracy(a.val))
    if a.photos:
        images = photos(a.photos)
        done("photos", {"images": len(images), **speed(images, a.rounds)})
    if a.video:
        images = list(frames(a.video))
        done("video", {
            "videos": [Path(v).name for v in a.video],
            "frames": len(images),
            **speed(images, a.rounds),
        })
    done("load_average_end", [round(x, 2) for x in os.getloadavg()])
    return result


def memory(a) -> dict:
    start = time.perf_counter()
    detect = make(a.tool)
    result = {
        "tool": a.tool,
        "machine": machine(),
        "startup_s": round(time.perf_counter() - start, 2),
        "rss_after_startup_mb": rss_mb(),
    }
    if a.photos:
        result["photo_faces"] = sum(detect(image) for image in photos(a.photos))
    if a.video:
        result["frames"], result["video_faces"] = 0, 0
        for frame in frames(a.video):
            result["frames"] += 1
            result["video_faces"] += detect(frame)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("compare", help="every tool in this process: accuracy, speed ratios")
    c.add_argument("--val", help="FER-2013 val folder (one sub-folder per emotion)")
    c.add_argument("--rounds", type=int, default=3, help="passes per tool (default 3)")
    c.add_argument("--out", help="also write the JSON here, after each section")
    m = sub.add_parser("memory", help="one tool alone in this process: start-up, peak memory")
    m.add_argument("--tool", choices=TOOLS, required=True)
    for p in (c, m):
        p.add_argument("--photos", help="folder of .jpg/.png photos")
        p.add_argument("--video", nargs="+", help="video files (every frame)")
    a = ap.parse_args()
    print(json.dumps(compare(a) if a.mode == "compare" else memory(a), indent=1))


if __name__ == "__main__":
    main()
