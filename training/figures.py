"""The evaluation's plots (matplotlib): the paper's Fig. 5 Isomap of z_F, and tracked ball paths of
real beside generated videos, with teleports and unexplained accelerations marked."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from balls import motion


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def isomap_figure(zf: np.ndarray, z_prior: np.ndarray, lines: np.ndarray, path: Path) -> None:
    """The paper's Fig. 5: 2-D Isomap of the z_F of generated videos (V, T, L), prior samples (P, L)
    and linear interpolations between prior samples (I, T, L)."""
    from sklearn.manifold import Isomap

    plt = _pyplot()
    latent = zf.shape[-1]
    points = np.concatenate([zf.reshape(-1, latent), z_prior, lines.reshape(-1, latent)])
    with warnings.catch_warnings():  # separate clusters (videos vs prior) leave the graph disconnected;
        warnings.simplefilter("ignore")  # Isomap completes it, which is what the figure needs
        xy = Isomap(n_components=2, n_neighbors=10).fit_transform(points)
    t, n = zf.shape[1], zf.shape[0] * zf.shape[1]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for i in range(zf.shape[0]):
        seg = xy[i * t : (i + 1) * t]
        ax.plot(seg[:, 0], seg[:, 1], "-o", ms=2, lw=1, label="G_V videos" if i == 0 else None)
    ax.scatter(xy[n : n + len(z_prior), 0], xy[n : n + len(z_prior), 1], c="k", marker="x", s=14, label="N(0, I)")
    for j in range(len(lines)):
        seg = xy[n + len(z_prior) + j * t : n + len(z_prior) + (j + 1) * t]
        ax.plot(seg[:, 0], seg[:, 1], "--", c="grey", lw=1, label="linear interpolation" if j == 0 else None)
    ax.set_title("Isomap of z_F: generated videos, prior samples, interpolations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _draw_paths(ax, video: np.ndarray, n_balls: int, title: str) -> None:
    res = video.shape[-1]
    tracked = motion.track(video, n_balls)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    for t in range(len(tracked) - 1):
        a, b = tracked[t], tracked[t + 1]
        if a is None or b is None:
            continue
        for i in range(n_balls):
            jump = np.linalg.norm(b[i] - a[i]) > motion.TELEPORT_PX
            ax.plot([a[i, 0], b[i, 0]], [a[i, 1], b[i, 1]], "-" if not jump else ":", lw=1.2 if not jump else 2,
                    c="red" if jump else colours[i % len(colours)])  # fmt: skip
    for _, p1, clear, accel in motion.accelerations(tracked, res):
        hit = clear & (accel > motion.ACCEL_PX)
        ax.scatter(p1[hit, 0], p1[hit, 1], marker="x", c="black", s=25, zorder=3)
    ax.set_xlim(0, res)
    ax.set_ylim(res, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def paths_figure(real: np.ndarray, generated: np.ndarray, n_balls: int, path: Path, count: int = 4) -> None:
    """Tracked ball centres of ``count`` real (top row) and generated (bottom row) videos: a line per
    ball, red dotted where it teleports, x where it accelerates with nothing near."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, count, figsize=(2.5 * count, 5.2), dpi=100)
    for row, (name, videos) in enumerate((("real", real), ("generated", generated))):
        for i in range(count):
            m = motion.video_motion(videos[i], n_balls)
            title = f"{name} {i}: {m.teleports} teleports, {m.unexplained} unexpl."
            _draw_paths(axes[row, i], videos[i], n_balls, title)
    fig.suptitle("Tracked ball paths (red dotted: teleport > 4 px; x: acceleration with nothing near)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
