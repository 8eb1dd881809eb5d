"""Detect objects in an image or a folder of images; write per-image JSON, optionally draw.

    python models/tools/predict_net.py --config-file CFG --ckpt model_final.pth \\
        --input photos/ --output predictions.json --draw drawn/ MODEL.DEVICE cpu
"""

from __future__ import annotations

import argparse
import sys

from rcnn.engine.cli import main_predict

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="rcnn-bench predictions for loose images")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--ckpt", default=None, help="checkpoint to load (default: none)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", default="predictions.json", help="JSON file to write")
    parser.add_argument(
        "--classes",
        default=None,
        help="class names: a COCO json or one name a line (default: test set's)",
    )
    parser.add_argument("--score-threshold", type=float, default=0.05)
    parser.add_argument("--draw", default=None, metavar="DIR", help="also draw each image here")
    parser.add_argument("--draw-threshold", type=float, default=0.5)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    sys.exit(main_predict(parser.parse_args()))
