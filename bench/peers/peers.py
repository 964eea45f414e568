#!/usr/bin/env python3
"""The Python peers' side of bench/peers: runs the given tasks and prints their results as JSON.

    peers.py [--val DIR] [--photos DIR --no-faces DIR --seconds S] [--videos FILE...] TASK...

Tasks (compare.py runs them, each in its own process for the full run so that its peak memory is
its own, and turns them into the table):

    accuracy:fer-keras    fer's Keras mini-Xception (fer/data/emotion_model.hdf5) on FER-2013 crops
    accuracy:fer-tflite   the quantized TFLite copy of that model, fer's default since 25.x
    photos:opencv-haar    OpenCV detectMultiScale at emotrack's haar settings (detection only)
    photos:facenet-mtcnn  facenet-pytorch MTCNN at its defaults, which emotrack's mtcnn shares
    photos:fer            fer.FER() as shipped: its Haar settings, then the TFLite emotion model
    photos:fer-mtcnn      fer.FER(mtcnn=True): facenet-pytorch's MTCNN, then the same model
    video:fer             per-frame FER().detect_emotions on ffmpeg-decoded frames
    video:fer-mtcnn       the same with FER(mtcnn=True)

Images and videos are read as given: compare.py has already resized the photos to 640x480;
video frames are scaled by ffmpeg while decoding, exactly as emotrack decodes them.
"""
import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from detect_reference import facenet_mtcnn, image_files, load_rgb, opencv_haar, time_it  # noqa: E402

# emotrack's class order (models/emotion.json); fer's own order is read from fer itself.
EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
TORCH_TASKS = {"photos:facenet-mtcnn", "photos:fer-mtcnn", "video:fer-mtcnn"}


def make_fer(**kwargs):
    """fer.FER(**kwargs); fer's own INFO logging silenced."""
    import logging

    from fer.fer import FER

    logging.getLogger("fer").setLevel(logging.WARNING)
    return FER(**kwargs)


# --- accuracy -----------------------------------------------------------------------------------

def load_crops(folder):
    """FER-2013 split folder -> (gray 48x48 crops, emotion index in EMOTIONS)."""
    import cv2

    crops, labels = [], []
    for index, emotion in enumerate(EMOTIONS):
        for path in image_files(Path(folder) / emotion):
            crops.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
            labels.append(index)
    if not crops:
        sys.exit(f"peers.py: no FER-2013 crops under {folder}/<emotion>/")
    return crops, labels


def metrics(truth, predicted):
    """Accuracy and macro-F1 (mean F1 over the classes present), as `emotrack eval` computes them."""
    f1s = []
    for c in sorted(set(truth)):
        tp = sum(t == c and p == c for t, p in zip(truth, predicted))
        support = sum(t == c for t in truth)
        claimed = sum(p == c for p in predicted)
        precision = tp / claimed if claimed else 0.0
        recall = tp / support
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    accuracy = sum(t == p for t, p in zip(truth, predicted)) / len(truth)
    return {"count": len(truth), "accuracy": accuracy, "macro_f1": sum(f1s) / len(f1s)}


def fer_accuracy(val, use_tflite):
    """fer's emotion model on the crops themselves (they are already faces): resized to the model's
    64x64 and scaled to [-1, 1] as FER.detect_emotions does, run through FER._classify_emotions."""
    import cv2
    import numpy as np

    fer = make_fer(use_tflite=use_tflite)
    size = fer._FER__emotion_target_size  # (64, 64) for both models
    fer_to_ours = [EMOTIONS.index(name) for _, name in sorted(fer._get_labels().items())]
    crops, truth = load_crops(val)
    predicted = []
    for start in range(0, len(crops), 256):
        batch = np.array([cv2.resize(c, size) for c in crops[start:start + 256]], dtype="float32")
        batch = (batch / 255.0 - 0.5) * 2.0
        scores = np.asarray(fer._classify_emotions(batch))
        predicted += [fer_to_ours[i] for i in scores.argmax(axis=1)]
    return metrics(truth, predicted)


# --- photos -------------------------------------------------------------------------------------

def photo_peer(name):
    """(detect(rgb) -> boxes, analyze(rgb) -> faces with emotions, or None)."""
    if name == "opencv-haar":
        return opencv_haar(), None
    if name == "facenet-mtcnn":
        return facenet_mtcnn(), None
    fer = make_fer(mtcnn=name == "fer-mtcnn")

    def bgr(rgb):
        return rgb[:, :, ::-1].copy()

    return (lambda rgb: fer.find_faces(bgr(rgb))), (lambda rgb: fer.detect_emotions(bgr(rgb)))


def photos(name, photos_dir, no_faces_dir, seconds):
    detect, analyze = photo_peer(name)
    with_faces, without = load_rgb(photos_dir), load_rgb(no_faces_dir)
    result = {
        "images": len(with_faces),
        "no_face_images": len(without),
        "faces": sum(len(detect(im)) for im in with_faces),
        "false_faces": sum(len(detect(im)) for im in without),
    }
    for key, fn in (("detect_ms", detect), ("analyze_ms", analyze)):
        if fn is not None:
            # One timed pass may be enough: a pass is every photo, and the slow peers take seconds.
            secs, _ = time_it(seconds, lambda: [fn(im) for im in with_faces], min_runs=1)
            result[key] = secs / len(with_faces) * 1e3
    return result


# --- video --------------------------------------------------------------------------------------

def decoded_frames(path, width, height):
    """Frames of `path` as BGR arrays, decoded and scaled by ffmpeg with emotrack's decoder settings,
    read ahead on a thread (at most two frames waiting, as in emotrack's pipeline)."""
    import numpy as np

    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0",
           "-vf", f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=area,"
                  f"format=bgr24,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2", "-vsync", "passthrough",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    frame_bytes = width * height * 3
    frames = queue.Queue(maxsize=2)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)

    def read():
        while len(data := proc.stdout.read(frame_bytes)) == frame_bytes:
            frames.put(np.frombuffer(data, np.uint8).reshape(height, width, 3))
        frames.put(None)

    threading.Thread(target=read, daemon=True).start()
    while (frame := frames.get()) is not None:
        yield frame
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not decode {path}")


def video(name, videos, width, height):
    import numpy as np

    fer = make_fer(mtcnn=name == "fer-mtcnn")
    fer.detect_emotions(np.zeros((height, width, 3), np.uint8))  # warm-up, like a loaded model
    rows = []
    for path in videos:
        frames = faces = 0
        start = time.perf_counter()
        for frame in decoded_frames(path, width, height):
            faces += len(fer.detect_emotions(frame))
            frames += 1
        rows.append({"video": Path(path).name, "frames": frames, "faces": faces,
                     "seconds": time.perf_counter() - start})
    return {"videos": rows}


# --- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tasks", nargs="+", metavar="TASK")
    ap.add_argument("--val", help="FER-2013 split folder (accuracy tasks)")
    ap.add_argument("--photos", help="folder of photos with faces (photos tasks)")
    ap.add_argument("--no-faces", help="folder of images without faces (photos tasks)")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per photo setting")
    ap.add_argument("--videos", nargs="*", default=[], help="videos (video tasks)")
    ap.add_argument("--size", default="640x480", help="video frame size WIDTHxHEIGHT")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))

    # PyPI's torchvision and tensorflow both bundle LLVM; importing tensorflow first makes
    # torchvision's import abort the process ("LLVM ERROR: inconsistency in registered CommandLine
    # options"), which is what FER(mtcnn=True) does on its own. The other order works, so a process
    # that needs both loads facenet-pytorch (torch, torchvision) before anything imports fer.
    if TORCH_TASKS & set(a.tasks):
        import facenet_pytorch  # noqa: F401

    results = []
    for task in a.tasks:
        kind, _, name = task.partition(":")
        if kind == "accuracy" and name in ("fer-keras", "fer-tflite"):
            result = fer_accuracy(a.val, use_tflite=name == "fer-tflite")
        elif kind == "photos" and name in ("opencv-haar", "facenet-mtcnn", "fer", "fer-mtcnn"):
            result = photos(name, a.photos, a.no_faces, a.seconds)
        elif kind == "video" and name in ("fer", "fer-mtcnn"):
            result = video(name, a.videos, width, height)
        else:
            sys.exit(f"peers.py: unknown task {task!r} (see --help)")
        results.append({"task": task, **result})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
    main()
