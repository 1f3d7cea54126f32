"""TMR figures: the cost/protection trade-off a designer picks from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkhw.outpaths import save_figure
from fkhw.tmr.select import residual_curve


def tradeoff_figure(table, n_all_bits: int, chosen_overhead: float, chosen_label: str, thresholds=(1.0, 1.05, 1.1)):
    """Flip-flop overhead of protecting the k most damaging bits against the
    worst emd_norm an unprotected single upset can still cause."""
    from matplotlib.figure import Figure

    overhead, worst = residual_curve(table, n_all_bits)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.step(overhead, worst, where="post", color="tab:blue", lw=1.4, label="protect the k most damaging bits")
    for t in thresholds:
        k = int((table.emd_norm > t).sum())
        if k < worst.size:
            ax.plot(100.0 * 2 * k / n_all_bits, worst[k], "o", ms=5, label=f"threshold {t:g}: {k} bits")
    k_chosen = int(round(chosen_overhead * n_all_bits / 200.0))
    ax.plot(chosen_overhead, worst[min(k_chosen, worst.size - 1)] if worst.size else 1.0, "*", ms=14, color="red",
            label=f"chosen: {chosen_label}")
    ax.axvline(200.0, color="grey", ls=":", lw=1)
    ax.text(200.0, ax.get_ylim()[1], " full TMR (200%)", va="top", ha="left", fontsize=8, color="grey")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, 230)
    ax.set_xlabel("flip-flop overhead of the weight storage (%; 2 extra FFs per protected bit)")
    ax.set_ylabel("worst unprotected single-upset emd_norm")
    ax.set_title(f"Selective TMR trade-off ({table.site.size} campaign sites of {n_all_bits} bits)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def save_tradeoff(table, n_all_bits: int, chosen_overhead: float, chosen_label: str, out_png: Path) -> Path:
    fig = tradeoff_figure(table, n_all_bits, chosen_overhead, chosen_label)
    save_figure(fig, out_png, dpi=130)
    return Path(out_png)


def worst_after(table, protected_rows: np.ndarray) -> float:
    """Worst emd_norm among the campaign's unprotected sites (1.0 if none)."""
    mask = np.ones(table.site.size, dtype=bool)
    mask[protected_rows] = False
    return float(table.emd_norm[mask].max()) if mask.any() else 1.0
