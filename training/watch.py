"""Training you can watch: each stage's loss and quality curves as a PNG, redrawn at every evaluation
(RUN_DIR/<stage>/curves.png), and, when the `tensorboard` extra is installed, TensorBoard event files
(RUN_DIR/<stage>/tensorboard/: every stats.jsonl value as a scalar, sample images at --sample-every).

    tensorboard --logdir RUN_DIR      # the TensorBoard view of a run (pip install -e ".[tensorboard]")
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

# what the curves show, per panel: (title, stats keys)
PANELS = {
    "frames": [("losses", ("loss_d", "loss_g")), ("discriminator outputs", ("d_real", "d_fake")),
               ("Table 1 random-z row (real ~0.2 with 3 balls)", ("random_z_mse",)),
               ("right ball count", ("right_count",))],
    "video": [("losses", ("loss_d", "loss_g")), ("discriminator outputs", ("d_real", "d_fake")),
              ("Table 1 (generated videos)", ("video_mse",)),
              ("motion", ("teleport_rate", "unexplained_rate", "right_count"))],
}  # fmt: skip


def read_stats(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def draw_curves(stage: str, stats: Path, out: Path) -> Path:
    """The curves of a stats.jsonl, written atomically to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_stats(stats)
    panels = PANELS[stage]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)
                      and math.isfinite(r[key])]  # fmt: skip
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="." if len(points) < 30 else None, label=key)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out


def redraw(stage: str, stats: Path, out: Path) -> None:
    """draw_curves in a child process, waited for: matplotlib never loads into the training process
    (loaded there, it changed the float results of later steps in about one run in six, which broke
    bit-identical resumes)."""
    import subprocess
    import sys

    try:  # a failed or stuck drawing never stops the training; its error goes to stderr
        subprocess.run([sys.executable, "-m", "training.watch", stage, str(stats), str(out)], check=False,
                       stdout=subprocess.DEVNULL, timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        pass


class Board:
    """TensorBoard event files of one stage, or nothing when tensorboard is not installed."""

    def __init__(self, folder: Path, start_step: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the `tensorboard` extra is not installed
            self.writer = None
            return
        # a resumed run writes its later steps again: TensorBoard drops the earlier run's from start_step on
        self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=start_step or None)

    def scalars(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(key, value, row["step"])
        self.writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """A sample PNG (a frame grid or video strips) as a TensorBoard image."""
        if self.writer is None or not png.exists():
            return
        from PIL import Image

        pixels = np.asarray(Image.open(png).convert("L"))
        self.writer.add_image(tag, pixels[None], step, dataformats="CHW")
        self.writer.flush()

    def video(self, tag: str, gif: Path, step: int) -> None:
        """A sample GIF as a TensorBoard image summary that holds the GIF itself: the Images tab plays
        it (what SummaryWriter.add_video writes, without its moviepy dependency)."""
        if self.writer is None or not gif.exists():
            return
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        with Image.open(gif) as img:
            width, height = img.size
        image = Summary.Image(height=height, width=width, colorspace=1, encoded_image_string=gif.read_bytes())
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


if __name__ == "__main__":  # python -m training.watch STAGE STATS_JSONL OUT_PNG (what redraw runs)
    import sys

    draw_curves(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
