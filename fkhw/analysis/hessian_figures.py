"""Figures of the Hessian analysis: the seed's Figure 2 (per-parameter
Hessian diagonal) and the found-vs-injected curves of ``fkhw rank``.

Matplotlib through Figure objects (Agg canvas), never pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkhw.outpaths import save_figure


def figure2(slices: list, diagonal: np.ndarray, title: str, traces: dict | None = None):
    """One panel per parameter layer, parameters on x in the order of
    Figure 1 (C order, kernel then bias after a dashed line), the Hessian
    diagonal H_pp on y: its sum over a layer is the layer's trace."""
    from matplotlib.figure import Figure

    layers: list = []
    for s in slices:
        if not layers or layers[-1][0] != s.layer:
            layers.append((s.layer, []))
        layers[-1][1].append(s)
    fig = Figure(figsize=(13, 1.6 + 2.0 * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]
    for ax, (name, parts) in zip(axes, layers):
        start = parts[0].start
        end = parts[-1].start + parts[-1].size
        y = diagonal[start:end]
        x = np.arange(end - start)
        colors = np.where(y >= 0, "tab:blue", "tab:red")
        ax.bar(x, y, width=1.0, color=colors, linewidth=0)
        for p in parts[:-1]:
            ax.axvline(p.start + p.size - start - 0.5, color="grey", lw=0.8, ls="--")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlim(-0.5, end - start - 0.5)
        label = " + ".join(f"{p.tensor} {p.size}" for p in parts)
        tr = f", trace {traces[name]:.4g}" if traces and name in traces else ""
        ax.set_title(f"{name} ({label} parameters{tr})", fontsize=9)
        ax.set_ylabel("Hessian diagonal")
    axes[-1].set_xlabel("parameter index (C order; kernel, then bias after the dashed line); red = negative")
    fig.suptitle(title, fontsize=10)
    return fig


def save_figure2(path: Path, slices, diagonal, title: str, traces=None) -> Path:
    fig = figure2(slices, diagonal, title, traces)
    save_figure(fig, path, dpi=130)
    return Path(path)


_STYLE = {"oracle": dict(color="black", lw=2.0), "random_expected": dict(color="grey", lw=1.5, ls="--"),
          "random": dict(color="grey", lw=0.8), "msb": dict(color="tab:orange", lw=1.5, ls="-.")}
# the other scores cycle through colours the baselines above do not use
_PALETTE = ["tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
            "navy", "darkgoldenrod", "teal", "magenta"]


def rank_curves(curves: dict, n_sites: int, title: str):
    """Sensitive bits found (fraction) against bits injected, one panel per
    threshold, one curve per score plus the oracle and random's mean."""
    from matplotlib.figure import Figure

    ts = list(curves)
    fig = Figure(figsize=(4.6 * len(ts), 4.2), layout="constrained")
    axes = fig.subplots(1, len(ts), squeeze=False)[0]
    for ax, t in zip(axes, ts):
        x = np.arange(1, n_sites + 1)
        total = max(max(float(c[-1]) for c in curves[t].values()), 0.0)
        others = [name for name in curves[t] if name not in _STYLE]
        for name, found in curves[t].items():
            frac = found / total if total > 0 else np.zeros_like(found, dtype=float)
            style = _STYLE.get(name) or dict(lw=1.2, color=_PALETTE[others.index(name) % len(_PALETTE)])
            ax.plot(x, frac, label=name, **style)
        ax.set_xscale("log")
        ax.set_xlim(1, n_sites)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"emd_norm > {t:g}: {int(total)} sensitive of {n_sites}", fontsize=9)
        ax.set_xlabel("bits injected (in score order)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("fraction of sensitive bits found")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return fig


def save_rank_curves(path: Path, curves: dict, n_sites: int, title: str) -> Path:
    fig = rank_curves(curves, n_sites, title)
    save_figure(fig, path, dpi=130)
    return Path(path)
