#!/usr/bin/env python3
"""Converts facenet-pytorch's MTCNN weights (P-, R-, O-Net state dicts) into models/mtcnn.safetensors.

facenet-pytorch (MIT license) ships the three nets as torch state dicts in facenet_pytorch/data/
{pnet,rnet,onet}.pt. This script reads them once and writes one float32 safetensors file whose
tensor names are PyTorch's own with a `pnet.` / `rnet.` / `onet.` prefix (e.g. `pnet.conv1.weight`,
`onet.dense6_3.bias`), which crates/emotrack/src/detect/mtcnn.rs embeds with include_bytes!.
It prints the package version and each source file's SHA-256 for models/NOTICE.md.

Environment (pinned):
    python3 -m venv /work/venv
    /work/venv/bin/pip install facenet-pytorch==2.6.0 --no-deps   # its pins (torch<2.3) predate numpy 2
    /work/venv/bin/pip install torch==2.15.0 torchvision==0.29.2 safetensors==0.8.0 numpy pillow
Run from the repository root:
    /work/venv/bin/python scripts/convert_mtcnn.py [--out models/mtcnn.safetensors]
"""

import argparse
import hashlib
import importlib.metadata
import os

import torch
from safetensors.torch import save_file

NETS = ("pnet", "rnet", "onet")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models/mtcnn.safetensors")
    args = parser.parse_args()

    import facenet_pytorch

    data_dir = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data")
    version = importlib.metadata.version("facenet-pytorch")
    print(f"facenet-pytorch {version} ({data_dir})")

    tensors = {}
    for net in NETS:
        path = os.path.join(data_dir, f"{net}.pt")
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f"  data/{net}.pt  sha256 {digest}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, value in state.items():
            tensors[f"{net}.{name}"] = value.detach().to(torch.float32).contiguous()

    metadata = {
        "source": f"facenet-pytorch {version}, data/{{pnet,rnet,onet}}.pt",
        "license": "MIT",
    }
    save_file(tensors, args.out, metadata=metadata)
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes, sha256 {digest}")
    for name in sorted(tensors):
        print(f"  {name} {list(tensors[name].shape)}")


if __name__ == "__main__":
    main()
