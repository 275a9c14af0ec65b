"""ONNX Runtime against PyTorch on real frames: a run's model exported as `syn2real export` does, both run on
every CamVid val frame at its native size (or --size), compared pixel by pixel.

    python benchmarks/export_agreement.py RUN_DIR                    # ../shared/data/camvid val, 480x360
    python benchmarks/export_agreement.py RUN_DIR --size 960x720 --threads 2

Prints the share of pixels where both give the same class (acceptance: >= 99.9 %), the worst frame's share,
the largest logit difference, and each backend's images/s on the same threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder or a .safetensors checkpoint with model metadata")
    parser.add_argument("--images", type=Path, default=CAMVID / "val", help="folder of frames (default CamVid val)")
    parser.add_argument("--size", help="WxH to resize frames to (default: each frame's own size)")
    parser.add_argument("--threads", type=int, default=1, help="threads for both backends")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from syn2real.evaluate.predict import find_images
    from syn2real.export import export_model, open_model

    torch.set_num_threads(args.threads)
    frames = find_images(args.images)
    model = open_model(args.run, device="cpu").model
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(args.run, "onnx", Path(tmp) / "model.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    same = total = 0
    worst, max_diff, torch_s, onnx_s = 1.0, 0.0, 0.0, 0.0
    for frame in frames:
        rgb = np.asarray(Image.open(frame).convert("RGB"))
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div_(255)
        if args.size:
            w, h = (int(v) for v in args.size.split("x"))
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        t = time.perf_counter()
        with torch.no_grad():
            expected = model(x).numpy()
        torch_s += time.perf_counter() - t
        t = time.perf_counter()
        logits = session.run(None, {"image": x.numpy()})[0]
        onnx_s += time.perf_counter() - t
        agree = logits.argmax(1) == expected.argmax(1)
        same, total = same + int(agree.sum()), total + agree.size
        worst = min(worst, float(agree.mean()))
        max_diff = max(max_diff, float(np.abs(logits - expected).max()))

    size = args.size or "native"
    print(f"{args.run}: {len(frames)} frames from {args.images} ({size}), {args.threads} thread(s)")
    print(f"pixel agreement ONNX Runtime vs PyTorch: {100 * same / total:.4f} % of {total} pixels "
          f"(worst frame {100 * worst:.4f} %), max |logit difference| {max_diff:.2e}")
    print(f"images/s: PyTorch {len(frames) / torch_s:.2f}, ONNX Runtime {len(frames) / onnx_s:.2f}")


if __name__ == "__main__":
    main()
