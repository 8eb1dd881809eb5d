"""Evaluate a detector on DATASETS.TEST: maskrcnn-benchmark's test_net.py interface.

python models/tools/test_net.py --config-file CFG --ckpt model_final.pth MODEL.DEVICE cpu
"""

from __future__ import annotations

import argparse
import sys

from rcnn.engine.cli import main_test

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="rcnn-bench evaluation")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: MODEL.WEIGHT)")
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=0, help="legacy; torchrun sets it"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    sys.exit(main_test(parser.parse_args()))
