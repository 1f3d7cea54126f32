"""TMR figures: the cost/protection trade-off a designer picks from.

``tradeoff.png`` is drawn from ``tradeoff.json`` (written beside it): the
curve, the bit count at each threshold and the chosen count, all read off
the rule's own figure per bit (emd_norm, or emd_norm_hi for ``--rule
upper``) and counted by fkhw.tmr.select.select, the function that chose the
map. So the figure, the map, the report and `fkhw sim`'s summary show one
count per threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fkhw.outpaths import save_figure, write_text
from fkhw.tmr.select import residual_curve


def tradeoff_data(table, selection, threshold_rows: list, chosen_label: str, figure_name: str) -> dict:
    """What the trade-off figure shows. ``threshold_rows``:
    fkhw.tmr.select.threshold_table of the same rule; ``selection``: the map's."""
    n_all = selection.n_all_bits
    overhead, worst = residual_curve(table, n_all, selection.rule.column)

    def worst_at(k: int) -> float | None:
        # protecting the k highest leaves the (k+1)-th; nothing is left when every campaign site is protected
        return float(worst[k]) if k < worst.size else None

    return {
        "column": selection.rule.column, "figure": figure_name, "all_bits": n_all, "campaign_sites": int(table.site.size),
        "chosen": {"rule": chosen_label, "protected_bits": selection.n_protected,
                   "overhead_pct": selection.overhead_pct, "worst_unprotected": worst_at(selection.n_protected)},
        "thresholds": [{**r, "worst_unprotected": worst_at(r["protected_bits"])} for r in threshold_rows],
        "curve": {"overhead_pct": overhead.tolist(), "worst_unprotected": worst.tolist()},
    }


def tradeoff_figure(data: dict):
    """Flip-flop overhead of protecting the k bits with the highest figure
    against the worst figure an unprotected single upset can still cause."""
    from matplotlib.figure import Figure

    overhead, worst = (np.asarray(data["curve"][k]) for k in ("overhead_pct", "worst_unprotected"))
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.step(overhead, worst, where="post", color="tab:blue", lw=1.4, label="protect the k most damaging bits")
    for r in data["thresholds"]:
        if r["worst_unprotected"] is not None:
            ax.plot(r["overhead_pct"], r["worst_unprotected"], "o", ms=5,
                    label=f"threshold {r['threshold']:g}: {r['protected_bits']} bits")
    c = data["chosen"]
    ax.plot(c["overhead_pct"], 1.0 if c["worst_unprotected"] is None else c["worst_unprotected"], "*", ms=14,
            color="red", label=f"chosen: {c['rule']}: {c['protected_bits']} bits ({c['overhead_pct']:.2f}%)")
    ax.axvline(200.0, color="grey", ls=":", lw=1)
    ax.text(200.0, ax.get_ylim()[1], " full TMR (200%)", va="top", ha="left", fontsize=8, color="grey")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, 230)
    ax.set_xlabel("flip-flop overhead of the weight storage (%; 2 extra FFs per protected bit)")
    ax.set_ylabel(f"worst unprotected single-upset {data['figure']}", fontsize=9)
    ax.set_title(f"Selective TMR trade-off ({data['campaign_sites']} campaign sites of {data['all_bits']} bits)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def save_tradeoff(data: dict, out_png: Path) -> list:
    """tradeoff.png and, beside it, tradeoff.json (its data)."""
    out_png = Path(out_png)
    out_json = out_png.with_suffix(".json")
    write_text(out_json, json.dumps(data, indent=1) + "\n")
    save_figure(tradeoff_figure(data), out_png, dpi=130)
    return [out_png, out_json]


def worst_after(table, protected_rows: np.ndarray) -> float:
    """Worst emd_norm among the campaign's unprotected sites (1.0 if none)."""
    mask = np.ones(table.site.size, dtype=bool)
    mask[protected_rows] = False
    return float(table.emd_norm[mask].max()) if mask.any() else 1.0
