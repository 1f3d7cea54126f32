"""Figures of campaigns: the seed's Figure 1 heat map (bit x parameter) of a
seu campaign, and damage by flip-flop class of any other kind (where the
risk sits once the weights are protected).

Matplotlib is used through Figure objects (Agg), never pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkhw.outpaths import save_figure


def read_campaign_csv(path: Path) -> dict:
    from fkhw.campaign.files import read_table

    t = read_table(path)
    return {"site": t.site, "layer": t.layer, "tensor": t.tensor, "index": t.index, "bit": t.bit,
            "emd_norm": t.emd_norm, "column": t.column,
            # the interval columns came later: absent in older tables
            **{k: t.number(k) for k in ("emd_norm_lo", "emd_norm_hi") if t.has(k)}}


def heatmap_figure(space, emd_norm_by_site: dict, title: str, marked: set | None = None, threshold: float | None = None,
                   column: str = "emd_norm"):
    """Figure 1: normalised mean EMD, parameter index (x) against bit (y,
    0 = sign on top), one panel per parameter layer (kernel then bias)."""
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    layers = []
    for t in space.tensors:
        if not layers or layers[-1][0] != t.layer:
            layers.append((t.layer, []))
        layers[-1][1].append(t)
    widths = [sum(t.size for t in ts) for _, ts in layers]
    vals = np.array(list(emd_norm_by_site.values())) if emd_norm_by_site else np.array([1.0])
    # a power scale keeps the many small degradations visible next to the few large ones
    norm = PowerNorm(gamma=0.4, vmin=min(1.0, float(np.nanmin(vals))), vmax=max(float(np.nanmax(vals)), 1.0 + 1e-6))
    fig = Figure(figsize=(13, 2.2 + 1.3 * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]
    im = None
    for ax, (name, ts), width in zip(axes, layers, widths):
        bits = max(t.fmt.bits for t in ts)
        grid = np.full((bits, width), np.nan)
        col = 0
        for t in ts:
            for bit in range(t.fmt.bits):
                ids = t.offset + np.arange(t.size) * t.fmt.bits + bit
                grid[bit, col:col + t.size] = [emd_norm_by_site.get(int(s), np.nan) for s in ids]
            col += t.size
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", norm=norm,
                       extent=(-0.5, width - 0.5, bits - 0.5, -0.5))
        col = 0
        for t in ts[:-1]:
            col += t.size
            ax.axvline(col - 0.5, color="white", lw=0.8, ls="--")
        if marked:
            col = 0
            xs, ys = [], []
            for t in ts:
                for s in marked:
                    if t.offset <= s < t.offset + t.n_sites:
                        rel = s - t.offset
                        xs.append(col + rel // t.fmt.bits)
                        ys.append(rel % t.fmt.bits)
                col += t.size
            ax.scatter(xs, ys, marker="s", s=6, facecolors="none", edgecolors="red", linewidths=0.6)
        parts = " + ".join(f"{t.tensor} {t.size}" for t in ts)
        ax.set_title(f"{name} ({parts} parameters)", fontsize=9)
        ax.set_ylabel("bit (0 = sign)")
        ax.set_yticks(range(bits))
    axes[-1].set_xlabel("parameter index (C order; kernel, then bias after the dashed line)")
    cb = fig.colorbar(im, ax=list(axes), shrink=0.9)
    from fkhw.damage.metrics import axis_label

    label = axis_label(column)
    if threshold is not None:
        label += f" (TMR threshold {threshold:g})"
    cb.set_label(label)
    fig.suptitle(title + ("   (red squares: protected by TMR)" if marked else ""), fontsize=10)
    return fig


def save_figure1(space, campaign_dir: Path, out_png: Path, title: str, marked=None, threshold=None) -> Path:
    table = read_campaign_csv(campaign_dir)
    by_site = dict(zip(table["site"].tolist(), table["emd_norm"].tolist()))
    fig = heatmap_figure(space, by_site, title, marked=marked, threshold=threshold, column=table["column"])
    save_figure(fig, out_png, dpi=130)
    return Path(out_png)


def campaign_figure1(space, model_name: str, campaign_dir: Path, level: str, n_inputs: int,
                     out_png: Path | None = None) -> Path:
    """Figure 1 of a campaign folder, titled with what it ran."""
    return save_figure1(space, campaign_dir, out_png or Path(campaign_dir) / "figure1.png",
                        f"{model_name}: single-bit upsets, {level} level, {n_inputs} inputs")


def damage_figure(campaign_dir: Path, out_png: Path | None = None) -> Path:
    """Damage by flip-flop class of a non-seu campaign: the emd_norm of its
    faults per class (box: quartiles, whiskers 5-95%, dots beyond) and the
    fraction degraded (emd_norm > T, or lost / extra outputs) per class at
    each threshold, with its interval (summary.json)."""
    from matplotlib.figure import Figure

    from fkhw.campaign.files import DAMAGE_FIGURE, read_fault_table, read_summary

    summary = read_summary(campaign_dir)
    table = read_fault_table(campaign_dir, summary)
    classes = [c for c in summary["classes"] if c != "all"]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    from fkhw.campaign.files import damage_column

    col = damage_column(summary)
    data = [table.emd_norm[table.classes == c] for c in classes]
    ax1.boxplot(data, whis=(5, 95), sym=".", widths=0.6)
    ax1.set_xticks(range(1, len(classes) + 1), [f"{c}\n({d.size} faults)" for c, d in zip(classes, data)])
    ax1.set_yscale("log")
    ax1.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax1.set_ylabel(f"{col} over the touched vectors")
    ax1.set_title("damage per fault", fontsize=10)
    thresholds = list(summary["classes"]["all"]["degraded"])
    width = 0.8 / max(1, len(thresholds))
    for j, t in enumerate(thresholds):
        frac = np.array([summary["classes"][c]["degraded"][t]["fraction"] for c in classes])
        iv = np.array([summary["classes"][c]["degraded"][t]["interval"] for c in classes]).reshape(-1, 2)
        x = np.arange(len(classes)) + (j - (len(thresholds) - 1) / 2) * width
        ax2.bar(x, 100 * frac, width, label=f"{col} > {t}")
        ax2.errorbar(x, 100 * frac, yerr=100 * np.abs(iv.T - frac), fmt="none", ecolor="black", lw=0.7, capsize=2)
    ax2.set_xticks(range(len(classes)), classes)
    ax2.set_ylabel("faults degraded (%)")
    ax2.set_title(f"degraded: {col} > T or an output lost / extra ({100 * summary['confidence']:g}% intervals)",
                  fontsize=10)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{summary['model']}: --faults {summary['faults']['kind']}, {summary['level']} level, "
                 f"{summary['inputs']} inputs: damage by flip-flop class", fontsize=10)
    out_png = Path(out_png) if out_png is not None else Path(campaign_dir) / DAMAGE_FIGURE
    save_figure(fig, out_png, dpi=130)
    return out_png
