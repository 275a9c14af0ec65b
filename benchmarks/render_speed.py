"""SynStreets render speed: frames per second on one core, for both styles and a randomisation file (by default
the shipped `default` one), with the time of each step.

    python benchmarks/render_speed.py [--frames 60] [--size 512x256] [--randomize default ...]

One process, OpenCV limited to one thread, so the figure is per core; `render_dataset` with W workers
runs W such processes.
"""

from __future__ import annotations

import argparse
import time

import cv2

from syn2real.synth import Randomization, load_randomization, sample_scene
from syn2real.synth.look import Look, apply_look
from syn2real.synth.raster import render
from syn2real.synth.styles import STYLES
from syn2real.synth.writer import compress_image, encode_png, frame_generators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="512x256", help="WxH")
    parser.add_argument("--randomize", nargs="*", default=["default"],
                        help="randomisation files or named points to measure besides the styles")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(1)
    print(f"SynStreets, {args.frames} frames of {width}x{height}, one core")
    runs = [(style, Randomization(look=Look.point(style))) for style in STYLES]
    runs += [(f"--randomize {name}", load_randomization(name)) for name in args.randomize]
    for name, randomization in runs:
        steps = {"scene": 0.0, "raster": 0.0, "look": 0.0, "png": 0.0}
        for index in range(-1, args.frames):  # frame -1 warms caches (texture photos, cloud noise)
            geometry, look = frame_generators(0, "bench", max(index, 0))
            t0 = time.perf_counter()
            scene = sample_scene(width, height, geometry, randomization.knobs)
            t1 = time.perf_counter()
            frame = render(scene)
            t2 = time.perf_counter()
            image, label = apply_look(frame, scene, randomization.look, look)
            t3 = time.perf_counter()
            encode_png(image, compress_image(randomization.look)), encode_png(label)
            t4 = time.perf_counter()
            if index >= 0:
                for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    steps[key] += dt
        total = sum(steps.values())
        detail = ", ".join(f"{k} {v / args.frames * 1000:.1f} ms" for k, v in steps.items())
        print(f"{name:>20}: {args.frames / total:5.1f} frames/s per core ({detail})")


if __name__ == "__main__":
    main()
