"""Train a detector: maskrcnn-benchmark's train_net.py interface, on any device.

    python models/tools/train_net.py \
        --config-file models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml MODEL.DEVICE cpu
    torchrun --nproc_per_node 2 models/tools/train_net.py --config-file ... MODEL.DEVICE cpu
"""

from __future__ import annotations

import argparse
import sys

from rcnn.engine.cli import main_train

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="rcnn-bench training")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=0, help="legacy; torchrun sets it"
    )
    parser.add_argument("--skip-test", action="store_true", help="do not evaluate after training")
    parser.add_argument("--no-resume", action="store_true", help="ignore the last checkpoint")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    sys.exit(main_train(parser.parse_args()))
