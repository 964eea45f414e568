#!/usr/bin/env python3
"""A Swin Transformer from timm (PyTorch) runs in emotrack: exported to ONNX, and as weights in
emotrack's own format, its probabilities on real FER-2013 val crops match PyTorch's.

    python scripts/byo_swin.py --emotrack target/debug/emotrack [--data ../shared/datasets/fer2013/val]

Run in the peers' environment (bench/peers/venv.sh: torch, timm, onnx, onnxscript; nothing is
downloaded: the network is built with random weights). Through `scripts/test-byo-swin.sh`.

1. A timm `SwinTransformer` for 48x48 gray faces (the layout of configs/fer2013-swin.json:
   patch 4, window 6, embed 48, depths 2-2-2, heads 2-4-8) with random weights at a realistic
   scale (so that its probabilities are far from uniform and a wrong operator shows).
2. Exported with `torch.onnx.export` (opset 18, batch axis dynamic) to `swin.onnx`, with the
   `swin.json` a user writes beside it (`{"kind": "onnx"}`, the class order, the normalisation),
   and run by `emotrack eval --model swin.onnx --predictions ...` on tract.
3. The same weights renamed to emotrack's Swin layout (`swin.safetensors` + `swin.json` with
   `{"kind": "swin", ...}`: timm puts patch merging at the start of the next stage, emotrack at
   the end of the stage before; everything else has the same names) and run on emotrack's own
   runtime: an independent check that emotrack's window attention, shifted windows, relative
   position bias and patch merging are Swin's.

Each must give PyTorch's probabilities within 1e-4 on every crop; the script exits 1 otherwise.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.models.swin_transformer import SwinTransformer

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
#: emotrack's normalisation (classify::Normalization's default): (pixel / 255 - mean) / std.
MEAN, STD = 0.508, 0.255
LAYOUT = dict(patch_size=4, embed_dim=48, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=6)
TOLERANCE = 1e-4


def build_swin(seed: int) -> SwinTransformer:
    """The timm network with random weights of a trained network's scale."""
    torch.manual_seed(seed)
    net = SwinTransformer(img_size=48, in_chans=1, num_classes=len(EMOTIONS), **LAYOUT)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif "relative_position_bias_table" in name:
                p.normal_(0.0, 1.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            elif name.startswith("head"):
                p.normal_(0.0, 4.0 / p.shape[1] ** 0.5)
            else:
                fan_in = p[0].numel()
                p.normal_(0.0, 1.0 / fan_in**0.5)
    return net.eval()


def sample_split(data: Path, per_class: int, out: Path) -> list[Path]:
    """`per_class` real crops of each emotion, in a split folder `emotrack eval` reads. They are
    written as PNG, so that PyTorch and emotrack see the same pixels (two JPEG decoders may
    differ by a grey level, which moves probabilities by more than the tolerance)."""
    crops = []
    for emotion in EMOTIONS:
        files = sorted((data / emotion).iterdir())
        if not files:
            sys.exit(f"no images in {data / emotion}")
        step = max(1, len(files) // per_class)
        (out / emotion).mkdir(parents=True)
        for f in files[::step][:per_class]:
            png = out / emotion / f"{f.stem}.png"
            Image.open(f).convert("L").save(png)
            crops.append(png)
    return crops


def torch_probabilities(net: SwinTransformer, crops: list[Path]) -> dict[str, np.ndarray]:
    """PyTorch's probabilities of each crop, by the path emotrack reports."""
    pixels = np.stack([np.asarray(Image.open(c).convert("L"), dtype=np.float32) for c in crops])
    x = torch.from_numpy((pixels / 255.0 - MEAN) / STD).unsqueeze(1)
    with torch.no_grad():
        p = torch.softmax(net(x), dim=1).numpy()
    return {str(c): row for c, row in zip(crops, p)}


def config(architecture: dict) -> dict:
    return {
        "architecture": architecture,
        "input_size": 48,
        "classes": EMOTIONS,
        "normalization": {"mean": MEAN, "std": STD},
    }


def export_onnx(net: SwinTransformer, path: Path) -> None:
    """The ONNX graph a PyTorch user makes, with its sidecar config."""
    x = torch.zeros(2, 1, 48, 48)
    torch.onnx.export(
        net,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=18,
        dynamo=True,
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
        external_data=False,
    )
    path.with_suffix(".json").write_text(json.dumps(config({"kind": "onnx", "outputs": "logits"})))


def emotrack_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's tensor names → emotrack's Swin names (classify/swin/mod.rs): `layers.{s}.downsample`
    (start of stage s in timm) is `layers.{s-1}.downsample` (end of stage s-1)."""
    out = {}
    for name, t in state.items():
        if "relative_position_index" in name or "attn_mask" in name:
            continue  # buffers emotrack derives from the layout
        parts = name.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        if parts[0] == "head" and parts[1] == "fc":
            parts = ["head"] + parts[2:]
        out[".".join(parts)] = t.detach().contiguous()
    return out


def save_native(net: SwinTransformer, path: Path) -> None:
    """The same weights as an emotrack Swin model file."""
    save_file(emotrack_names(net.state_dict()), str(path))
    architecture = {
        "kind": "swin",
        "patch_size": LAYOUT["patch_size"],
        "embed_dim": LAYOUT["embed_dim"],
        "depths": list(LAYOUT["depths"]),
        "heads": list(LAYOUT["num_heads"]),
        "window": LAYOUT["window_size"],
        "mlp_ratio": 4,
        "ln_eps": 1e-5,
    }
    path.with_suffix(".json").write_text(json.dumps(config(architecture)))


def emotrack_probabilities(emotrack: str, model: Path, split: Path) -> dict[str, np.ndarray]:
    """`emotrack eval --predictions`: each crop's probabilities, by path."""
    predictions = split.parent / f"{model.name}.jsonl"
    subprocess.run(
        [emotrack, "eval", "--model", str(model), "--data", str(split), "--no-png",
         "--format", "json", "--predictions", str(predictions)],
        check=True, stdout=subprocess.DEVNULL,
    )
    out = {}
    for line in predictions.read_text().splitlines():
        row = json.loads(line)
        out[row["path"]] = np.array([row["probabilities"][e] for e in EMOTIONS], dtype=np.float32)
    return out


def compare(what: str, reference: dict, got: dict) -> bool:
    missing = set(reference) - set(got)
    if missing:
        print(f"{what}: no prediction for {len(missing)} crops, e.g. {sorted(missing)[0]}")
        return False
    diff = max(float(np.abs(reference[k] - got[k]).max()) for k in reference)
    ok = diff <= TOLERANCE
    print(f"{what}: max |PyTorch - emotrack| probability difference over {len(reference)} crops: "
          f"{diff:.2e} ({'within' if ok else 'above'} {TOLERANCE:g})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emotrack", required=True, help="the emotrack binary")
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/datasets/fer2013/val",
                        help="a FER-2013 split folder (default: the shared val split)")
    parser.add_argument("--per-class", type=int, default=8, help="crops of each emotion")
    parser.add_argument("--seed", type=int, default=36)
    args = parser.parse_args()

    net = build_swin(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split = tmp / "split"
        crops = sample_split(args.data, args.per_class, split)
        reference = torch_probabilities(net, crops)
        spread = float(np.mean([p.max() - p.min() for p in reference.values()]))
        print(f"timm Swin ({sum(p.numel() for p in net.parameters()):,} parameters): "
              f"mean max-min probability spread {spread:.2f} over {len(crops)} real crops")
        if spread < 0.3:
            print("the random network is too close to uniform to test anything")
            return 1
        export_onnx(net, tmp / "swin.onnx")
        ok = compare("ONNX on tract (--model swin.onnx)", reference,
                     emotrack_probabilities(args.emotrack, tmp / "swin.onnx", split))
        save_native(net, tmp / "swin.safetensors")
        ok &= compare("emotrack's runtime (--model swin.safetensors)", reference,
                      emotrack_probabilities(args.emotrack, tmp / "swin.safetensors", split))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
