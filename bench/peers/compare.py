#!/usr/bin/env python3
"""Runs emotrack and the Python peers on the same data, one process at a time, and prints the
comparison table; the full run also writes it into bench/RESULTS.md between the peers markers.

Called by bench/peers/run.sh, which makes the environment and builds emotrack (see its header).
Every measured process runs under GNU time (`/usr/bin/time -v`) for its peak memory.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from peers import EMOTIONS, image_files as images  # noqa: E402  (peers.py imports nothing heavy at load)
from detect_reference import letterbox  # noqa: E402  (on the path peers.py sets)

BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"
HEADING = "## Peers: emotrack vs fer, OpenCV and facenet-pytorch"
SIZE = (640, 480)
QUICK_PHOTO = "ageitgey_two_people.jpg"  # two large frontal faces: every detector finds them
QUICK_CROPS_PER_CLASS = 3
QUICK_FRAMES = 8
# fer's Haar settings (FER(): scale_factor 1.1, min_neighbors 5, min_face_size 50) as emotrack flags.
FER_HAAR_FLAGS = ["--min-neighbors", "5", "--min-face", "50"]


class Failed(Exception):
    pass


# --- running and measuring ----------------------------------------------------------------------

def measure(name, argv, logs):
    """Runs `argv` under `/usr/bin/time -v`: (stdout, peak RSS in MB, wall seconds)."""
    err, timing = logs / f"{name}.stderr", logs / f"{name}.time"
    start = time.perf_counter()
    with open(err, "w") as stderr:
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(timing), *map(str, argv)],
                              stdout=subprocess.PIPE, stderr=stderr, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(err.read_text(errors="replace").splitlines()[-15:])
        raise Failed(f"{name} failed (exit {proc.returncode}): {' '.join(map(str, argv))}\n{tail}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read_text()).group(1))
    print(f"  {name}: {wall:.1f} s, peak {rss_kb / 1024:.0f} MB", file=sys.stderr)
    return proc.stdout, rss_kb / 1024, wall


# --- inputs: everyone gets the same files -------------------------------------------------------

def resized_copies(files, out):
    """Each image fitted into SIZE (aspect ratio kept, black bars) and saved as PNG in `out`; a
    tool then decodes the same pixels whatever its JPEG decoder."""
    out.mkdir(parents=True)
    for p in files:
        letterbox(Image.open(p), SIZE).save(out / f"{p.stem}.png")
    return out


def crop_subset(val, out, per_class):
    """The first `per_class` crops of each emotion of `val`, linked into `out`/<emotion>/."""
    for emotion in EMOTIONS:
        (out / emotion).mkdir(parents=True)
        for p in images(val / emotion)[:per_class]:
            (out / emotion / p.name).symlink_to(p.resolve())
    return out


def video_seconds(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.strip() or 0)


def cut_video(path, out, limit):
    """The start of `path` (`limit` = ["-t", secs] or ["-frames:v", n]) re-encoded into `out`."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), *limit, "-an",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(out)], check=True)
    return out


def prepare(a, work):
    media = Path(a.media)
    photos, no_faces = images(media / "photos"), images(media / "no_faces")
    videos = sorted((media / "videos").glob("*.mp4"))
    val = Path(a.val)
    if a.quick:
        photos = [p for p in photos if p.name == QUICK_PHOTO] or photos[:1]
        no_faces = no_faces[:1]
        val = crop_subset(val, work / "val", QUICK_CROPS_PER_CLASS)
        videos = [cut_video(videos[0], work / f"{videos[0].stem}.mp4", ["-frames:v", str(QUICK_FRAMES)])]
    else:
        videos = [cut_video(v, work / v.name, ["-t", str(a.video_seconds)])
                  if video_seconds(v) > a.video_seconds else v for v in videos]
    return {
        "photos": resized_copies(photos, work / "photos"),
        "no_faces": resized_copies(no_faces, work / "no_faces"),
        "photo_count": len(photos),
        "no_face_count": len(no_faces),
        "val": val,
        "videos": videos,
    }


# --- the measurements ---------------------------------------------------------------------------

def run_emotrack(a, inputs, logs):
    exe, r = a.emotrack, {}
    out, _, _ = measure("emotrack-eval", [exe, "eval", "--model", a.model, "--data", inputs["val"],
                                          "--format", "json", "--no-png"], logs)
    r["accuracy"] = json.loads(out)["metrics"]
    out, _, _ = measure("emotrack-bench-detect", [exe, "bench", "detect", inputs["photos"], "--size", "640x480",
                                                  "--seconds", a.seconds, "--json"], logs)
    rows = json.loads(out)
    for det in ("haar", "mtcnn", "yunet"):
        mine = [row for row in rows if row["name"].split(" ")[0] == det]
        best = max(mine, key=lambda row: row["threads"])  # all cores, like the peers
        res = {"detect_ms": best["ms_per_item"]}
        out, res["rss_mb"], wall = measure(f"emotrack-analyze-{det}", [
            exe, "analyze", inputs["photos"], "--format", "json", "--detector", det], logs)
        res["faces"] = sum(len(im["faces"]) for im in json.loads(out))
        res["analyze_ms"] = wall / inputs["photo_count"] * 1e3
        out, _, _ = measure(f"emotrack-analyze-{det}-no-faces", [
            exe, "analyze", inputs["no_faces"], "--format", "json", "--detector", det], logs)
        res["false_faces"] = sum(len(im["faces"]) for im in json.loads(out))
        r[f"photos:{det}"] = res
    return r


def emotrack_video_runs(a, inputs):
    """emotrack's video settings, `{key: argv}`: whole-frame detection on every frame (emotrack
    video's default, like fer) and on every 5th frame with known faces re-found around their last
    box in between (--detect-every 5); Haar also with fer's own detector settings, so both sides
    scan the same windows."""
    runs = {}
    for det in ("haar", "mtcnn", "yunet"):
        settings = [(1, f"video:{det}", [])]
        if det != "yunet":  # YuNet is the detector for searching every frame
            settings.append((5, f"video:{det}-every5", []))
        if det == "haar":
            settings += [(1, "video:haar-fer-settings", FER_HAAR_FLAGS),
                         (5, "video:haar-fer-settings-every5", FER_HAAR_FLAGS)]
        for every, key, flags in settings:
            runs[f"emotrack:{key}"] = [
                a.emotrack, "bench", "video", *inputs["videos"], "--size", "640x480", "--detectors", det,
                "--detect-every", str(every), *flags, "--json"]
    return runs


def emotrack_video(out, rss):
    return {"rss_mb": rss, "videos": [
        {"video": v["video"], "frames": v["frames"], "faces": round(v["faces_per_frame"] * v["frames"]),
         "seconds": v["frames"] / v["fps"]} for v in json.loads(out)]}


PEER_TASKS = ["accuracy:fer-keras", "accuracy:fer-tflite",
              "photos:opencv-haar", "photos:facenet-mtcnn", "photos:fer", "photos:fer-mtcnn"]
PEER_VIDEO_TASKS = ["video:fer", "video:fer-mtcnn"]
VIDEO_ORDER = ["emotrack:video:haar", "emotrack:video:haar-every5", "emotrack:video:yunet", "video:fer",
               "emotrack:video:haar-fer-settings",
               "emotrack:video:haar-fer-settings-every5", "emotrack:video:mtcnn", "video:fer-mtcnn",
               "emotrack:video:mtcnn-every5"]


def peers_command(a, inputs):
    return [sys.executable, HERE / "peers.py", "--val", inputs["val"], "--photos", inputs["photos"],
            "--no-faces", inputs["no_faces"], "--seconds", a.seconds, "--videos", *inputs["videos"], "--"]


def run_peers(a, inputs, logs):
    """The full run gives each task its own process (its own peak memory); the quick run, one
    process for every task, the video ones included."""
    groups = [PEER_TASKS + PEER_VIDEO_TASKS] if a.quick else [[t] for t in PEER_TASKS]
    r = {}
    for tasks in groups:
        name = "peers-" + ("all" if len(tasks) > 1 else tasks[0].replace(":", "-"))
        out, rss, _ = measure(name, [*peers_command(a, inputs), *tasks], logs)
        for result in json.loads(out):
            r[result["task"]] = {**result, "rss_mb": None if a.quick else rss}
    return r


def run_videos(a, inputs, logs):
    """Every video setting of emotrack and of fer, `a.rounds` times, the tools alternating within
    each round, so a stretch of slow minutes on this shared machine falls on both sides. Each
    video's time is the median over the rounds, peak memory the largest."""
    runs = emotrack_video_runs(a, inputs)
    if not a.quick:
        runs.update({t: [*peers_command(a, inputs), t] for t in PEER_VIDEO_TASKS})
    # Each fer setting next to the emotrack settings it is compared with; every other round in
    # reverse order.
    order = [k for k in VIDEO_ORDER if k in runs]
    assert set(order) == set(runs), "VIDEO_ORDER names every video setting"
    rounds = {k: [] for k in runs}
    for i in range(a.rounds):
        for key in (order if i % 2 == 0 else order[::-1]):
            name = key.replace(":", "-") + (f"-round{i + 1}" if a.rounds > 1 else "")
            out, rss, _ = measure(name, runs[key], logs)
            if key.startswith("emotrack:"):
                rounds[key].append(emotrack_video(out, rss))
            else:
                (result,) = json.loads(out)
                rounds[key].append({**result, "rss_mb": rss})
    return {k: median_run(v) for k, v in rounds.items()}


def median_run(runs):
    """One video result from several rounds: each video's median time, the largest peak memory."""
    videos = []
    for per_round in zip(*(r["videos"] for r in runs)):
        seconds = sorted(v["seconds"] for v in per_round)
        videos.append({**per_round[0], "seconds": seconds[len(seconds) // 2]})
    rss = [r["rss_mb"] for r in runs if r["rss_mb"] is not None]
    return {**runs[0], "videos": videos, "rss_mb": max(rss) if rss else None}


# --- the table ----------------------------------------------------------------------------------

def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def pct(x):
    return f"{x * 100:.1f}%"


def times(x):
    return "—" if x is None else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def num(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def fps(res):
    return sum(v["frames"] for v in res["videos"]) / sum(v["seconds"] for v in res["videos"])


def ratio(a, b):
    return None if a is None or b is None else a / b


def accuracy_table(res):
    acc = res["emotrack:accuracy"]
    lines = ["| model | crops | accuracy | macro-F1 | emotrack ahead by |", "|---|---:|---:|---:|---:|",
             f"| emotrack, built-in model (models/emotion.safetensors) | {acc['count']} | {pct(acc['accuracy'])} | "
             f"{acc['macro_f1']:.3f} | — |"]
    for task, label in (("accuracy:fer-keras", "fer, Keras mini-Xception (emotion_model.hdf5)"),
                        ("accuracy:fer-tflite", "fer, quantized TFLite copy (fer's default)")):
        p = res[task]
        lines.append(f"| {label} | {p['count']} | {pct(p['accuracy'])} | {p['macro_f1']:.3f} | "
                     f"{(acc['accuracy'] - p['accuracy']) * 100:+.1f} points |")
    return lines


PHOTO_ROWS = [  # (label, settings, result key, emotrack row it is compared with)
    ("emotrack haar", "scale 1.1, 3 neighbours, min 20 px", "emotrack:photos:haar", "emotrack:photos:haar"),
    ("emotrack mtcnn", "min 20 px, thresholds 0.6/0.7/0.7", "emotrack:photos:mtcnn", "emotrack:photos:mtcnn"),
    ("emotrack yunet", "min 20 px, score 0.6, photos searched at up to 640 px", "emotrack:photos:yunet", "emotrack:photos:yunet"),
    ("OpenCV detectMultiScale", "same as emotrack haar", "photos:opencv-haar", "emotrack:photos:haar"),
    ("facenet-pytorch MTCNN", "same as emotrack mtcnn", "photos:facenet-mtcnn", "emotrack:photos:mtcnn"),
    ("fer (default)", "OpenCV Haar, 5 neighbours, min 50 px", "photos:fer", "emotrack:photos:haar"),
    ("fer (mtcnn=True)", "facenet-pytorch MTCNN", "photos:fer-mtcnn", "emotrack:photos:mtcnn"),
]


def photos_table(res):
    lines = ["| tool | detector settings | faces found | false faces | detect ms/image | emotrack faster | "
             "with emotions ms/image | emotrack faster | peak RSS MB | × emotrack's RSS |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, settings, key, ref in PHOTO_ROWS:
        r, e = res[key], res[ref]
        same = key == ref
        lines.append(" | ".join([
            f"| {label}", settings, str(r["faces"]), str(r["false_faces"]), num(r["detect_ms"]),
            "—" if same else times(ratio(r["detect_ms"], e["detect_ms"])),
            num(r.get("analyze_ms")),
            "—" if same or "analyze_ms" not in r else times(ratio(r["analyze_ms"], e["analyze_ms"])),
            num(r["rss_mb"], 0),
            "—" if same else times(ratio(r["rss_mb"], e["rss_mb"])),
        ]) + " |")
    return lines


VIDEO_ROWS = [
    ("emotrack haar (default: every frame)", "emotrack:video:haar", "emotrack:video:haar"),
    ("emotrack mtcnn (default: every frame)", "emotrack:video:mtcnn", "emotrack:video:mtcnn"),
    ("emotrack yunet (every frame)", "emotrack:video:yunet", "emotrack:video:yunet"),
    ("emotrack haar (--detect-every 5)", "emotrack:video:haar-every5", "emotrack:video:haar-every5"),
    ("emotrack mtcnn (--detect-every 5)", "emotrack:video:mtcnn-every5", "emotrack:video:mtcnn-every5"),
    ("emotrack haar with fer's Haar settings (5 neighbours, min 50 px; every frame)",
     "emotrack:video:haar-fer-settings", "emotrack:video:haar-fer-settings"),
    ("emotrack haar with fer's Haar settings (--detect-every 5)",
     "emotrack:video:haar-fer-settings-every5", "emotrack:video:haar-fer-settings-every5"),
    ("fer (default: Haar)", "video:fer", "emotrack:video:haar"),
    ("fer (mtcnn=True)", "video:fer-mtcnn", "emotrack:video:mtcnn"),
]


def faces_per_frame(r):
    return num(sum(v["faces"] for v in r["videos"]) / sum(v["frames"] for v in r["videos"]), 2)


def video_table(res):
    names = [v["video"] for v in res["emotrack:video:haar"]["videos"]]
    lines = ["| tool | frames | faces/frame | FPS | emotrack faster | peak RSS MB | × emotrack's RSS | "
             + " | ".join(f"FPS {n}" for n in names) + " |",
             "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names)]
    for label, key, ref in VIDEO_ROWS:
        r, e = res[key], res[ref]
        same = key == ref
        frames = sum(v["frames"] for v in r["videos"])
        per_video = {v["video"]: v["frames"] / v["seconds"] for v in r["videos"]}
        lines.append(" | ".join([
            f"| {label}", str(frames), faces_per_frame(r), num(fps(r)),
            "—" if same else times(ratio(fps(e), fps(r))),
            num(r["rss_mb"], 0), "—" if same else times(ratio(r["rss_mb"], e["rss_mb"])),
            *(num(per_video.get(n)) for n in names),
        ]) + " |")
    return lines


def targets(res):
    acc = res["emotrack:accuracy"]["accuracy"]
    fer_acc = res["accuracy:fer-keras"]["accuracy"]
    lines = [f"- Accuracy: emotrack {pct(acc)} vs fer {pct(fer_acc)} on val: {(acc - fer_acc) * 100:+.1f} points "
             f"(target ≥ +5): **{'met' if acc - fer_acc >= 0.05 else 'not met'}**."]
    for label, ours, theirs in (("haar vs fer's default (Haar), both every frame", "emotrack:video:haar", "video:fer"),
                                ("yunet vs fer's default (Haar), both every frame", "emotrack:video:yunet", "video:fer"),
                                ("yunet vs fer's mtcnn=True, both every frame", "emotrack:video:yunet",
                                 "video:fer-mtcnn"),
                                ("haar with fer's Haar settings vs fer's default, both every frame",
                                 "emotrack:video:haar-fer-settings", "video:fer"),
                                ("mtcnn vs fer's mtcnn=True, both every frame", "emotrack:video:mtcnn", "video:fer-mtcnn"),
                                ("emotrack mtcnn --detect-every 5 vs fer's mtcnn=True (every frame)",
                                 "emotrack:video:mtcnn-every5", "video:fer-mtcnn"),
                                ("emotrack haar with fer's Haar settings, --detect-every 5, vs fer's default "
                                 "(every frame)", "emotrack:video:haar-fer-settings-every5", "video:fer"),
                                ("emotrack mtcnn --detect-every 5 vs fer's default (Haar)",
                                 "emotrack:video:mtcnn-every5", "video:fer"),
                                ("emotrack haar --detect-every 5 vs fer's default (Haar)",
                                 "emotrack:video:haar-every5", "video:fer")):
        speed = fps(res[ours]) / fps(res[theirs])
        line = (f"- Video, {label}: {times(speed)} fer's FPS (target ≥ 5x): **{'met' if speed >= 5 else 'not met'}**, "
                f"faces per frame {faces_per_frame(res[ours])} vs {faces_per_frame(res[theirs])}")
        ours_mb, theirs_mb = res[ours]["rss_mb"], res[theirs]["rss_mb"]
        if ours_mb and theirs_mb:  # the quick run does not measure the peers' memory
            line += (f"; peak memory {ours_mb:.0f} vs {theirs_mb:.0f} MB "
                     f"(target: less): **{'met' if ours_mb < theirs_mb else 'not met'}**")
        lines.append(line + ".")
    return lines


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB, {platform.system()} {platform.release()}"


def versions(a):
    def cmd(*argv):
        return subprocess.run(argv, capture_output=True, text=True, cwd=REPO).stdout.strip()

    ffmpeg = cmd("ffmpeg", "-version").splitlines()[0].split()[2]
    pkgs = ["fer", "tensorflow-cpu", "keras", "torch", "facenet-pytorch", "opencv-python-headless", "numpy"]
    return ", ".join([f"{cmd(a.emotrack, '--version')} (commit {cmd('git', 'describe', '--always', '--dirty')})",
                      *(f"{p} {version(p)}" for p in pkgs), f"Python {platform.python_version()}",
                      f"FFmpeg {ffmpeg}"])


def render(a, inputs, res, seconds):
    videos = ", ".join(f"`{Path(v).name}`" for v in inputs["videos"])
    return "\n".join([
        f"Measured on {datetime.date.today().isoformat()} by `{a.command}` in {seconds / 60:.1f} min, "
        f"one process at a time: {machine()}.",
        "",
        f"Versions: {versions(a)}.",
        "",
        f"### Emotion classifier on FER-2013 val ({inputs['val']}, 48x48 crops, no detection)",
        "",
        *accuracy_table(res),
        "",
        "emotrack: `emotrack eval --model models/emotion.safetensors` (the model built into the binary; no "
        "flip averaging). fer: its model run on each crop resized to 64x64 and scaled to [-1, 1] as "
        "`FER.detect_emotions` does, fer's class order mapped by name. fer's model (oarriaga/face_classification, "
        "mini-Xception) was trained on the first 80% of fer2013.csv, i.e. exactly the Training split, with "
        "PublicTest (this val) in its validation part: the same footing as emotrack's.",
        "",
        f"### Photos ({plural(inputs['photo_count'], 'photo')}, {plural(inputs['no_face_count'], 'image')} "
        "without faces, each fitted into 640x480: aspect ratio kept, black bars)",
        "",
        *photos_table(res),
        "",
        "Faces found: detections summed over the photos; false faces: detections on the images without faces. "
        f"ms/image: mean over ≥ {a.seconds} s (and ≥ 1 pass) of passes over the photos after a warm-up, in one process on "
        "all cores (emotrack: `emotrack bench detect`; the peers: the same loop in `bench/peers/peers.py`). "
        "With emotions: fer's `detect_emotions` in that loop; emotrack: the wall time of the whole "
        "`emotrack analyze` process over the photos divided by their number (start-up and decoding included, "
        "files analysed in parallel). Peak RSS: `/usr/bin/time -v` of the process doing that tool's photo work "
        "(emotrack: `emotrack analyze`). \"emotrack faster\" compares with emotrack's detector of the same kind.",
        "",
        f"### Video ({videos}; every frame of the first {a.video_seconds:g} s at most, fitted into 640x480 by "
        "ffmpeg while decoding: aspect ratio kept, black bars where the shapes differ)",
        "",
        *video_table(res),
        "",
        "End to end in one process on both cores: decode, detect, classify every face (emotrack also tracks "
        "and smooths); no output written. emotrack: `emotrack bench video --detectors D --detect-every N` "
        "(N = 1, the default: the detector on every whole frame, like fer; N = 5: the whole frame every 5th "
        "frame, each known face re-found around its last box in between); fer: "
        "`detect_emotions` on each frame, frames decoded ahead on a thread by the same ffmpeg command as "
        "emotrack's. FPS = frames / wall time of the frame loop (models loaded before); each video's time is the "
        f"median of {plural(a.rounds, 'run')}, emotrack's and fer's runs alternating (every other round in "
        "reverse order), so slow minutes on this shared machine fall on both sides. Peak RSS: "
        "`/usr/bin/time -v` of the process (the largest of it and its ffmpeg child, over the runs).",
        "",
        "### Targets",
        "",
        *targets(res),
        "",
        (HERE / "unavailable.md").read_text().strip(),
    ])


def write_section(path, body):
    """Replaces what is between the peers markers in `path` (adds the section if absent)."""
    text = path.read_text() if path.exists() else \
        "# Benchmark results\n\nEach section names the command that produced it.\n"
    section = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + f"\n\n{HEADING}\n\n{section}\n"
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--emotrack", required=True, help="the emotrack binary")
    ap.add_argument("--model", required=True, help="the built-in model's file (for emotrack eval)")
    ap.add_argument("--val", required=True, help="FER-2013 val folder")
    ap.add_argument("--media", required=True, help="folder with photos/, no_faces/, videos/")
    ap.add_argument("--quick", action="store_true", help="one image per tool, a few crops and frames")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per photo setting")
    ap.add_argument("--video-seconds", type=float, default=60, help="longer videos are cut to this")
    ap.add_argument("--rounds", type=int, default=3,
                    help="video runs per setting (median per video); the quick run makes one")
    ap.add_argument("--results", type=Path, help="RESULTS.md to update (full run only)")
    ap.add_argument("--command", default="bench/peers/run.sh", help="the command to name in the results")
    a = ap.parse_args()
    if a.quick:
        a.seconds = 0  # a smoke test: the fewest timed passes
        a.rounds = 1
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="emotrack-peers-"))
    logs = work / "logs"
    logs.mkdir()
    try:
        print(f"preparing inputs in {work}", file=sys.stderr)
        inputs = prepare(a, work)
        print("measuring (one process at a time)", file=sys.stderr)
        res = {f"emotrack:{k}": v for k, v in run_emotrack(a, inputs, logs).items()}
        res.update(run_peers(a, inputs, logs))
        res.update(run_videos(a, inputs, logs))
        check(a, res)
    except (Failed, subprocess.CalledProcessError) as e:
        print(f"compare.py: {e}\n(logs kept in {logs})", file=sys.stderr)
        sys.exit(1)
    body = render(a, inputs, res, time.perf_counter() - start)
    print(body)
    if a.results and not a.quick:
        write_section(a.results, body)
        print(f"written to {a.results}", file=sys.stderr)
    shutil.rmtree(work)


def check(a, res):
    """The quick run is CI's smoke test: every peer must have run and seen something."""
    problems = [f"{k}: no frames decoded" for k, v in res.items()
                if "video:" in k and not sum(x["frames"] for x in v["videos"])]
    if a.quick:
        problems += [f"{k}: no face found on {QUICK_PHOTO}" for k, v in res.items()
                     if "photos:" in k and v["faces"] == 0]
    if problems:
        raise Failed("implausible results:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
