#!/usr/bin/env python3
"""Converts the YuNet face detector (libfacedetection, YuNet_s) into models/yunet.safetensors,
and writes the parity reference tests/fixtures/yunet/ that a Rust test compares against.

YuNet: Wu, Peng, Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence
Research 2023. Two public sources hold the same trained YuNet_s network:

* ShiqiYu/libfacedetection.train (Apache-2.0), onnx/yunet_s_dynamic.onnx (also _320_320, _640_640):
  float32 weights exported by PyTorch 1.7 with every BatchNorm already folded into the preceding
  convolution. This is the exact network, and the default source.
* ShiqiYu/libfacedetection (BSD-3-Clause), src/facedetectcnn-data.cpp: the same weights written as
  C arrays by tools/yunet2cpp.py of the training repository, batch norm folded, each number rounded
  to three significant digits ('%.3g'), with libfacedetection's own layouts (the 3x3 stem conv as a
  27(+5 zero)-wide 1x1 conv over an im2col of the image; depthwise weights transposed to [9][C]).
  Given with --cpp, it is parsed, brought back to the PyTorch layout and checked against the ONNX
  weights (agreement to 3 significant digits proves both are the same network); with --cpp alone
  (no --onnx) the rounded weights are converted instead.

Tensor layout of models/yunet.safetensors (float32, PyTorch OIHW; batch norm folded; "pw" is a 1x1
conv, "dw" a 3x3 depthwise conv with stride 1 and padding 1, groups = channels; ReLU where noted):

  backbone.0.conv   [16,3,3,3]  3x3 conv, stride 2, padding 1, on the BGR image (0..255), ReLU
  backbone.0.dp     pw 16->16, dw 16, ReLU                                     then maxpool 2x2
  backbone.1.dp1    pw 16->16, dw 16, ReLU;  backbone.1.dp2  pw 16->32, dw 32, ReLU
  backbone.2.dp1    pw 32->32, dw 32, ReLU;  backbone.2.dp2  pw 32->64, dw 64, ReLU  then maxpool
  backbone.3.dp1/dp2 pw 64->64, dw 64, ReLU (x2)  -> feature C3 (stride 8)         then maxpool
  backbone.4.dp1/dp2 likewise                      -> feature C4 (stride 16)        then maxpool
  backbone.5.dp1/dp2 likewise                      -> feature C5 (stride 32)
  neck.2  pw 64->64, dw 64, ReLU on C5                     -> P5 (stride 32)
  neck.1  pw+dw+ReLU on C4 + upsample2x_nearest(P5)        -> P4 (stride 16)
  neck.0  pw+dw+ReLU on C3 + upsample2x_nearest(P4)        -> P3 (stride 8)
  head.{cls,obj,bbox,kps}.{0,1,2}  pw 64->{1,1,4,10}, dw {1,1,4,10}, no activation,
                                   on P3 / P4 / P5 (index 0/1/2 = stride 8/16/32)
Each layer has "<name>.weight" and "<name>.bias" (e.g. "backbone.3.dp1.pw.weight" [64,64,1,1],
"backbone.3.dp1.dw.weight" [64,1,3,3], "head.kps.2.dw.bias" [10]). The safetensors metadata holds
the source file, its SHA-256 and licence. The full description (input format, decoding, NMS) is in
the module documentation of crates/emotrack/src/detect/yunet/; in short: input BGR 0..255 float NCHW, no mean/scale, zero-padded on the right
and bottom to a multiple of 32; cls and obj go through a sigmoid, score = sqrt(cls * obj).

Subcommands (no network access; the source files are arguments):
  convert    --onnx yunet_s_dynamic.onnx [--cpp facedetectcnn-data.cpp] [--out models/yunet.safetensors]
  reference  --weights models/yunet.safetensors --onnx yunet_s_dynamic.onnx
             [--media ../shared/media] [--out tests/fixtures/yunet] [--score-threshold 0.6]
             [--nms-threshold 0.3] [--top-k 5000]
    Runs the ONNX with onnxruntime and this file's own numpy forward pass from the safetensors on
    a few real photos resized to 320x240 and 640x480, reports the largest head-output difference,
    decodes + NMS's the ONNX outputs and writes reference.json plus the exact input images (PNG).

Environment (pinned):
    python3 -m venv /var/tmp/emotrack-yunet-venv
    /var/tmp/emotrack-yunet-venv/bin/pip install numpy==2.4.6 safetensors==0.8.0 onnx==1.23.2 \
        onnxruntime==1.32.0 pillow==13.0.0
Sources (git snapshots; read with `git show HEAD:path`):
    github.com/ShiqiYu/libfacedetection.train  0047ac24afb1a50a0c6105001c89d1b5b805dbf1  onnx/yunet_s_dynamic.onnx
    github.com/ShiqiYu/libfacedetection        acf7b254121927e7dced30e233a2e03119f28ea2  src/facedetectcnn-data.cpp
Run from the repository root:
    python scripts/yunet_weights.py convert --onnx SRC/yunet_s_dynamic.onnx --cpp SRC/facedetectcnn-data.cpp
    python scripts/yunet_weights.py reference --onnx SRC/yunet_s_dynamic.onnx
"""

import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, in, out, relu) of every pw+dw unit, in network order; the stem conv comes first.
UNITS = (
    [("backbone.0.dp", 16, 16, True)]
    + [("backbone.1.dp1", 16, 16, True), ("backbone.1.dp2", 16, 32, True)]
    + [("backbone.2.dp1", 32, 32, True), ("backbone.2.dp2", 32, 64, True)]
    + [(f"backbone.{i}.dp{j}", 64, 64, True) for i in (3, 4, 5) for j in (1, 2)]
    + [(f"neck.{i}", 64, 64, True) for i in (0, 1, 2)]
    + [(f"head.{k}.{i}", 64, c, False) for k, c in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)) for i in (0, 1, 2)]
)
STRIDES = (8, 16, 32)
HEAD_CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


def expected_shapes():
    shapes = {"backbone.0.conv.weight": (16, 3, 3, 3), "backbone.0.conv.bias": (16,)}
    for name, cin, cout, _ in UNITS:
        shapes[f"{name}.pw.weight"] = (cout, cin, 1, 1)
        shapes[f"{name}.pw.bias"] = (cout,)
        shapes[f"{name}.dw.weight"] = (cout, 1, 3, 3)
        shapes[f"{name}.dw.bias"] = (cout,)
    return shapes


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Sources


def _unit_name_from_torch(prefix):
    """'backbone.model3.conv1' -> 'backbone.3.dp1'; 'backbone.model0.conv2' -> 'backbone.0.dp';
    'neck.lateral_convs.1' -> 'neck.1'; 'bbox_head.multi_level_kps.2' -> 'head.kps.2'."""
    m = re.fullmatch(r"backbone\.model0\.conv2", prefix)
    if m:
        return "backbone.0.dp"
    m = re.fullmatch(r"backbone\.model(\d)\.conv([12])", prefix)
    if m:
        return f"backbone.{m.group(1)}.dp{m.group(2)}"
    m = re.fullmatch(r"neck\.lateral_convs\.(\d)", prefix)
    if m:
        return f"neck.{m.group(1)}"
    m = re.fullmatch(r"bbox_head\.multi_level_(cls|obj|bbox|kps)\.(\d)", prefix)
    if m:
        return f"head.{m.group(1)}.{m.group(2)}"
    raise ValueError(f"unexpected layer {prefix}")


def read_onnx(path):
    """The weights of a libfacedetection.train YuNet ONNX export, by graph structure: the stem is
    the Conv reading 'input'; every 1x1 conv keeps its PyTorch name '<unit>.conv1.weight' and the
    depthwise conv that consumes its output (BN folded, so often renamed to a number) is its dw."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    by_input = {}
    for n in convs:
        by_input.setdefault(n.input[0], []).append(n)

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    out = {}
    stem = by_input["input"]
    assert len(stem) == 1
    a = attrs(stem[0])
    assert a["strides"] == [2, 2] and a["pads"] == [1, 1, 1, 1] and a.get("group", 1) == 1, a
    out["backbone.0.conv.weight"] = inits[stem[0].input[1]]
    out["backbone.0.conv.bias"] = inits[stem[0].input[2]]
    for n in convs:
        w = n.input[1]
        if not w.endswith(".conv1.weight"):
            continue
        a = attrs(n)
        assert a["kernel_shape"] == [1, 1] and a.get("group", 1) == 1, (w, a)
        unit = _unit_name_from_torch(w[: -len(".conv1.weight")])
        (dw,) = by_input[n.output[0]]
        d = attrs(dw)
        cout = inits[w].shape[0]
        assert d["kernel_shape"] == [3, 3] and d["pads"] == [1, 1, 1, 1] and d["strides"] == [1, 1], d
        assert d.get("group", 1) == cout, (w, d)  # cls/obj: 1 channel, group 1 == depthwise
        out[f"{unit}.pw.weight"] = inits[w]
        out[f"{unit}.pw.bias"] = inits[n.input[2]]
        out[f"{unit}.dw.weight"] = inits[dw.input[1]]
        out[f"{unit}.dw.bias"] = inits[dw.input[2]]
    return out


_CPP_ARRAY = re.compile(r"float\s+(\w+)\s*\[([\d*\s]+)\]\s*=\s*\{([^}]*)\};")


def read_cpp(path):
    """The weights of libfacedetection's src/facedetectcnn-data.cpp, back in PyTorch layout."""
    with open(path) as f:
        text = f.read()
    arrays = {}
    for name, size, body in _CPP_ARRAY.findall(text):
        values = np.array([float(v.rstrip("f")) for v in body.replace("\n", "").split(",")], dtype=np.float32)
        n = int(np.prod([int(s) for s in size.split("*")]))
        assert values.size == n, (name, values.size, n)
        arrays[name] = values

    def unit_of(cname):  # 'backbone__model1_dp2' -> 'backbone.model1.conv2' -> 'backbone.1.dp2'
        name = cname.replace("__", ".")
        name = re.sub(r"model0_dp$", "model0.conv2", name)
        name = re.sub(r"model(\d)_dp([12])$", r"model\1.conv\2", name)
        return _unit_name_from_torch(name)

    out = {}
    # Stem: [16][32], column (ky*3+kx)*3 + c for PyTorch [o][c][ky][kx]; columns 27..31 are zero.
    w = arrays.pop("backbone__model0_pw_weight").reshape(16, 32)
    assert not w[:, 27:].any()
    out["backbone.0.conv.weight"] = np.ascontiguousarray(w[:, :27].reshape(16, 3, 3, 3).transpose(0, 3, 1, 2))
    out["backbone.0.conv.bias"] = arrays.pop("backbone__model0_pw_bias")
    for cname in sorted({k.rsplit("_", 2)[0] for k in arrays}):
        unit = unit_of(cname)
        pw_b = arrays[f"{cname}_pw_bias"]
        cout = pw_b.size
        pw_w = arrays[f"{cname}_pw_weight"]
        out[f"{unit}.pw.weight"] = pw_w.reshape(cout, -1, 1, 1)  # [o][i]
        out[f"{unit}.pw.bias"] = pw_b
        # Depthwise: [9][C] (the transpose of PyTorch's [C][1][3][3] flattened to [C][9]).
        out[f"{unit}.dw.weight"] = np.ascontiguousarray(arrays[f"{cname}_dw_weight"].reshape(9, cout).T.reshape(cout, 1, 3, 3))
        out[f"{unit}.dw.bias"] = arrays[f"{cname}_dw_bias"]
    return out


def check_layout(tensors):
    shapes = expected_shapes()
    assert set(tensors) == set(shapes), sorted(set(tensors) ^ set(shapes))
    for k, s in shapes.items():
        assert tensors[k].shape == s, (k, tensors[k].shape, s)
        assert tensors[k].dtype == np.float32


def compare_sources(exact, rounded):
    """Largest deviation of the 3-significant-digit cpp numbers from the exact ONNX numbers, in
    units of the rounding step of '%.3g' at each value (<= 0.5 means the same numbers, rounded)."""
    worst, worst_name, worst_abs = 0.0, None, 0.0
    for k in sorted(exact):
        e, r = exact[k].astype(np.float64), rounded[k].astype(np.float64)
        step = np.where(e != 0, 10.0 ** (np.floor(np.log10(np.abs(np.where(e != 0, e, 1.0)))) - 2), 1e-30)
        units = np.abs(e - r) / step
        if units.max() > worst:
            worst, worst_name = float(units.max()), k
        worst_abs = max(worst_abs, float(np.abs(e - r).max()))
    return worst, worst_name, worst_abs


# ----------------------------------------------------------------------------------------------
# Numpy forward pass (written from the layer list above; CHW float32, batch of one)


def conv_stem(x, w, b):
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    ho, wo = (h + 1) // 2, (wd + 1) // 2
    cols = np.stack([xp[:, ky : ky + 2 * ho : 2, kx : kx + 2 * wo : 2] for ky in range(3) for kx in range(3)], axis=1)
    # cols [c][9][ho][wo]; w [o][c][3][3] -> [o][c*9]
    y = w.reshape(w.shape[0], -1) @ cols.reshape(c * 9, ho * wo)
    return (y + b[:, None]).reshape(-1, ho, wo)


def conv_pw(x, w, b):
    c, h, wd = x.shape
    y = w.reshape(w.shape[0], c) @ x.reshape(c, h * wd)
    return (y + b[:, None]).reshape(-1, h, wd)


def conv_dw(x, w, b):
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    y = np.zeros_like(x)
    for ky in range(3):
        for kx in range(3):
            y += w[:, 0, ky, kx][:, None, None] * xp[:, ky : ky + h, kx : kx + wd]
    return y + b[:, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def maxpool2(x):
    c, h, w = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def upsample2(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def unit(t, name, x, act=True):
    x = conv_pw(x, t[f"{name}.pw.weight"], t[f"{name}.pw.bias"])
    x = conv_dw(x, t[f"{name}.dw.weight"], t[f"{name}.dw.bias"])
    return relu(x) if act else x


def forward(t, x):
    """x: [3][H][W] float32 BGR 0..255, H and W multiples of 32. Returns the twelve head outputs
    named and shaped like the ONNX ones ([H_s*W_s][C], row-major over y then x; cls and obj after
    the sigmoid), as a dict."""
    x = relu(conv_stem(x, t["backbone.0.conv.weight"], t["backbone.0.conv.bias"]))
    x = maxpool2(unit(t, "backbone.0.dp", x))
    x = unit(t, "backbone.1.dp2", unit(t, "backbone.1.dp1", x))
    x = maxpool2(unit(t, "backbone.2.dp2", unit(t, "backbone.2.dp1", x)))
    c3 = unit(t, "backbone.3.dp2", unit(t, "backbone.3.dp1", x))
    c4 = unit(t, "backbone.4.dp2", unit(t, "backbone.4.dp1", maxpool2(c3)))
    c5 = unit(t, "backbone.5.dp2", unit(t, "backbone.5.dp1", maxpool2(c4)))
    p5 = unit(t, "neck.2", c5)
    p4 = unit(t, "neck.1", c4 + upsample2(p5))
    p3 = unit(t, "neck.0", c3 + upsample2(p4))
    outs = {}
    for i, (s, p) in enumerate(zip(STRIDES, (p3, p4, p5))):
        for k, ch in HEAD_CHANNELS.items():
            y = unit(t, f"head.{k}.{i}", p, act=False)
            y = y.reshape(ch, -1).T
            if k in ("cls", "obj"):
                y = 1.0 / (1.0 + np.exp(-y))
            outs[f"{k}_{s}"] = y.astype(np.float32)
    return outs


# ----------------------------------------------------------------------------------------------
# Decoding and NMS (as libfacedetection's detection_output / OpenCV's FaceDetectorYN; see notes)


def decode(outs, pad_w, pad_h, score_threshold):
    faces = []
    for s in STRIDES:
        cols, rows = pad_w // s, pad_h // s
        cls = np.clip(outs[f"cls_{s}"][:, 0].astype(np.float64), 0, 1)
        obj = np.clip(outs[f"obj_{s}"][:, 0].astype(np.float64), 0, 1)
        score = np.sqrt(cls * obj)
        bbox = outs[f"bbox_{s}"].astype(np.float64)
        kps = outs[f"kps_{s}"].astype(np.float64)
        assert score.size == rows * cols
        for idx in np.nonzero(score >= score_threshold)[0]:
            r, c = divmod(int(idx), cols)
            cx = (c + bbox[idx, 0]) * s
            cy = (r + bbox[idx, 1]) * s
            w = np.exp(bbox[idx, 2]) * s
            h = np.exp(bbox[idx, 3]) * s
            lm = [((kps[idx, 2 * n] + c) * s, (kps[idx, 2 * n + 1] + r) * s) for n in range(5)]
            faces.append({"score": float(score[idx]), "box": [cx - w / 2, cy - h / 2, w, h], "landmarks": lm,
                          "stride": s, "cell": [r, c]})
    return faces


def iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = min(ax2, bx2) - max(a[0], b[0]), min(ay2, by2) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def nms(faces, iou_threshold, top_k):
    order = sorted(faces, key=lambda f: -f["score"])  # stable
    if top_k > 0:
        order = order[:top_k]
    kept = []
    for f in order:
        if all(iou(f["box"], k["box"]) <= iou_threshold for k in kept):
            kept.append(f)
    return kept


# ----------------------------------------------------------------------------------------------


def save_safetensors(tensors, path, metadata):
    """Writes the safetensors format by hand (8-byte little-endian header length, JSON header,
    raw little-endian data) with sorted keys and tensors, so that the same input gives the same
    bytes: the safetensors library orders __metadata__ from a hash map, differently per run.
    The result is read back with safetensors.numpy.load_file and compared."""
    from safetensors.numpy import load_file

    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    back = load_file(path)
    assert set(back) == set(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)


def cmd_convert(args):
    if not args.onnx and not args.cpp:
        sys.exit("give --onnx and/or --cpp")
    meta = {"format": "emotrack yunet v1", "network": "YuNet_s (libfacedetection.train configs/yunet_s.py)",
            "layout": "float32 OIHW, batch norm folded; see scripts/yunet_weights.py",
            "input": "BGR 0..255 NCHW, no mean/scale, zero-padded right/bottom to a multiple of 32"}
    tensors = None
    if args.onnx:
        digest = sha256_file(args.onnx)
        print(f"onnx {args.onnx} sha256 {digest}")
        tensors = read_onnx(args.onnx)
        check_layout(tensors)
        meta.update(source=f"github.com/ShiqiYu/libfacedetection.train onnx/{os.path.basename(args.onnx)}",
                    source_sha256=digest, license="Apache-2.0 (libfacedetection.train LICENSE: Copyright 2018-2022 "
                    "OpenMMLab; Copyright 2022 OpenMMLab; Copyright (c) 2022 Shiqi Yu <shiqi.yu@gmail.com>)")
    if args.cpp:
        digest = sha256_file(args.cpp)
        print(f"cpp  {args.cpp} sha256 {digest}")
        rounded = read_cpp(args.cpp)
        check_layout(rounded)
        if tensors is None:
            tensors = rounded
            meta.update(source="github.com/ShiqiYu/libfacedetection src/facedetectcnn-data.cpp (3 significant digits)",
                        source_sha256=digest, license="BSD-3-Clause (libfacedetection LICENSE: Copyright (c) "
                        "2015-2019, Shiqi Yu; file header: Copyright (c) 2018-2023, Shiqi Yu)")
        else:
            units, name, absd = compare_sources(tensors, rounded)
            same = units <= 0.5 + 1e-3
            print(f"cpp vs onnx: largest deviation {units:.3f} rounding steps ({name}), max abs {absd:.3g}"
                  f" -> {'same network, rounded to 3 significant digits' if same else 'DIFFERENT WEIGHTS'}")
            if not same:
                sys.exit(1)
            meta["cross_check"] = f"equals libfacedetection src/facedetectcnn-data.cpp (sha256 {digest}) to 3 significant digits"
    n = sum(v.size for v in tensors.values())
    meta["parameters"] = str(n)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_safetensors(tensors, args.out, meta)
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} parameters, {os.path.getsize(args.out)} bytes, "
          f"sha256 {sha256_file(args.out)}")


# Photos for the reference: 4:3 originals (plain resize keeps faces undistorted) with faces of
# several sizes, and one without a face; all at 320x240, and the eight-face photo at 640x480 too
# (the fixture stays near 650 KB: each 640x480 input is a 120-165 KB PNG).
REFERENCE_CASES = (("photos/linzaer_imgs_5.jpg", (320, 240)), ("photos/linzaer_imgs_3.jpg", (320, 240)),
                   ("photos/linzaer_imgs_9.jpg", (320, 240)), ("photos/linzaer_imgs_9.jpg", (640, 480)),
                   ("no_faces/skimage_chelsea.png", (320, 240)))
PNG_LIMIT = 200 * 1024


def make_input(path, size, out_png):
    """Decode with Pillow, convert to RGB, resize to `size` with Pillow's BILINEAR filter (which
    widens its support when shrinking, i.e. antialiased) and save as PNG. When the 8-bit RGB PNG
    would exceed 200 KB the picture is first quantised to 256 colours (Pillow median cut, no
    dithering) and saved as a palette PNG; the saved PNG is the reference input either way.
    Returns the RGB uint8 array of exactly the PNG's pixels and the PNG's colour type."""
    from PIL import Image

    im = Image.open(path).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    im.save(out_png, optimize=True)
    kind = "rgb"
    if os.path.getsize(out_png) > PNG_LIMIT:
        im = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        im.save(out_png, optimize=True)
        kind = "palette256"
    assert os.path.getsize(out_png) <= PNG_LIMIT, out_png
    back = np.asarray(Image.open(out_png).convert("RGB"))
    return back, kind


def rgb_checksum(pixels):
    """sum(byte[i] * (i % 65521 + 1)) over the raw RGB bytes, as scripts/mtcnn_fixtures.py: the
    Rust test computes the same to know it decodes the PNG to these very pixels."""
    flat = pixels.reshape(-1).astype(np.uint64)
    weights = np.arange(flat.size, dtype=np.uint64) % np.uint64(65521) + np.uint64(1)
    return int((flat * weights).sum())


def to_tensor(rgb):
    """RGB uint8 [H][W][3] -> BGR float32 [3][Hp][Wp], zero-padded right/bottom to multiples of 32."""
    h, w, _ = rgb.shape
    ph, pw = (h + 31) // 32 * 32, (w + 31) // 32 * 32
    x = np.zeros((3, ph, pw), np.float32)
    x[:, :h, :w] = rgb[:, :, ::-1].transpose(2, 0, 1)
    return x


def cmd_reference(args):
    import onnxruntime as ort
    from PIL import Image
    from safetensors.numpy import load_file

    t = load_file(args.weights)
    check_layout(t)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    os.makedirs(args.out, exist_ok=True)
    cases, worst = [], {}
    for rel, size in REFERENCE_CASES:
        src = os.path.join(args.media, rel)
        stem = os.path.splitext(os.path.basename(rel))[0]
        png = os.path.join(args.out, f"{stem}_{size[0]}x{size[1]}.png")
        rgb, kind = make_input(src, size, png)
        x = to_tensor(rgb)
        ref = dict(zip(names, sess.run(None, {"input": x[None]})))
        ref = {k: v[0] for k, v in ref.items()}
        mine = forward(t, x)
        diffs = {k: float(np.abs(mine[k] - ref[k]).max()) for k in names}
        for k, d in diffs.items():
            worst[k] = max(worst.get(k, 0.0), d)
        faces = nms(decode(ref, x.shape[2], x.shape[1], args.score_threshold), args.nms_threshold, args.top_k)
        mine_faces = nms(decode(mine, x.shape[2], x.shape[1], args.score_threshold), args.nms_threshold, args.top_k)
        agree = len(mine_faces) == len(faces) and all(
            iou(a["box"], b["box"]) > 0.999 and abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(faces, mine_faces))
        print(f"{os.path.basename(png)}: {kind}, {os.path.getsize(png)} bytes, {len(faces)} faces, "
              f"numpy-vs-onnx max |diff| {max(diffs.values()):.3g}, numpy decode agrees: {agree}")
        cases.append({
            "image": os.path.basename(png),
            "source": rel,
            "png": kind,
            "width": size[0], "height": size[1],
            "padded_width": int(x.shape[2]), "padded_height": int(x.shape[1]),
            "rgb_sha256": hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(),
            "rgb_checksum": rgb_checksum(rgb),
            "numpy_vs_onnx_max_abs_diff": max(diffs.values()),
            "outputs": {k: {"shape": list(ref[k].shape), "sum": float(ref[k].astype(np.float64).sum()),
                            "abs_sum": float(np.abs(ref[k].astype(np.float64)).sum()),
                            "max": float(ref[k].max()), "first": [float(v) for v in ref[k].reshape(-1)[:4]]}
                        for k in names},
            "faces": [{"score": round(f["score"], 6),
                       "box": [round(v, 3) for v in f["box"]],
                       "landmarks": [[round(v, 3) for v in p] for p in f["landmarks"]],
                       "stride": f["stride"], "cell": f["cell"]} for f in faces],
        })
    doc = {
        "generator": "scripts/yunet_weights.py reference",
        "model": {"onnx": f"libfacedetection.train onnx/{os.path.basename(args.onnx)}",
                  "onnx_sha256": sha256_file(args.onnx),
                  "weights": os.path.relpath(os.path.abspath(args.weights), ROOT),
                  "weights_sha256": sha256_file(args.weights),
                  "runtime": f"onnxruntime {ort.__version__}, CPUExecutionProvider, 1 thread"},
        "input": ("PNG here -> RGB uint8 -> BGR float32 0..255 (no mean, no scale), NCHW, zero-padded on "
                  "the right and bottom to a multiple of 32 (padded_width/height); the PNGs were made by "
                  "Pillow: decode source, convert('RGB'), resize((w, h), BILINEAR) without keeping aspect "
                  "(sources are 4:3 except the cat, 451x300), and 256-colour median-cut quantisation "
                  "without dither where the RGB PNG would exceed 200 KB (png: palette256)"),
        "decoding": ("per stride s in 8,16,32, cell (r,c) row-major: score = sqrt(clamp01(cls)*clamp01(obj)); "
                     "cx=(c+bbox0)*s, cy=(r+bbox1)*s, w=exp(bbox2)*s, h=exp(bbox3)*s, box=[cx-w/2, cy-h/2, w, h]; "
                     "landmark n = ((kps[2n]+c)*s, (kps[2n+1]+r)*s), n = 0..4 in the network's order "
                     "(eye at image left, eye at image right, nose, mouth corner at image left, at image right); "
                     "coordinates in pixels of the resized image, not clipped"),
        "nms": {"score_threshold": args.score_threshold, "score_rule": "score >= threshold",
                "iou_threshold": args.nms_threshold, "iou_rule": "drop if IoU > threshold (float boxes, no +1)",
                "top_k_before_nms": args.top_k, "order": "score descending, stable (ties: stride 8,16,32 then row-major)"},
        "outputs_note": ("per case, statistics of the twelve raw ONNX head outputs ([cells][channels], cells "
                         "row-major over the padded grid; cls/obj after the sigmoid) to localise a mismatch"),
        "numpy_vs_onnx_max_abs_diff": worst,
        "cases": cases,
    }
    path = os.path.join(args.out, "reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}; numpy vs onnx, worst per output: " + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--onnx", help="libfacedetection.train onnx/yunet_s_*.onnx (exact weights; preferred)")
    c.add_argument("--cpp", help="libfacedetection src/facedetectcnn-data.cpp (3 significant digits)")
    c.add_argument("--out", default=os.path.join(ROOT, "models", "yunet.safetensors"))
    r = sub.add_parser("reference")
    r.add_argument("--onnx", required=True, help="libfacedetection.train onnx/yunet_s_dynamic.onnx")
    r.add_argument("--weights", default=os.path.join(ROOT, "models", "yunet.safetensors"))
    r.add_argument("--media", default=os.path.join(ROOT, "..", "shared", "media"))
    r.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "yunet"))
    r.add_argument("--score-threshold", type=float, default=0.6)
    r.add_argument("--nms-threshold", type=float, default=0.3)
    r.add_argument("--top-k", type=int, default=5000)
    args = p.parse_args()
    {"convert": cmd_convert, "reference": cmd_reference}[args.cmd](args)


if __name__ == "__main__":
    main()
