"""Where the remaining risk sits: damage by flip-flop class and fault kind,
for the plain and the selectively hardened encoder, from campaign folders.

A fault is degraded when its emd_norm exceeds the threshold or it lost or
added an output (fkhw.damage.meter). Each row gives the fraction of a class's
faults that degrade, with its 95% Wilson interval, and the fraction of all
upsets of that kind (per flip-flop of the class) that is left in it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from fkhw.damage.intervals import wilson
from fkhw.outpaths import atomic_open, make_dir, save_figure, write_text

COLUMNS = ["design", "kind", "class", "faults", "degraded", "fraction", "lo", "hi", "mean_emd_norm"]


def _key(threshold: float) -> str:
    return f"{threshold:g}"


def rows_of(folder: Path, design: str, threshold: float) -> list:
    """Rows of one campaign folder: per class for a fault campaign, one
    ``param`` row for a seu campaign (its table has no classes)."""
    from fkhw.campaign.files import read_summary, read_table

    summary = read_summary(folder)
    faults = summary.get("faults") if isinstance(summary.get("faults"), dict) else None
    kind = faults["kind"] if faults else "seu"
    out = []
    if faults is None:
        e = read_table(folder, summary).emd_norm
        k = int((e > threshold).sum())
        out.append({"design": design, "kind": kind, "class": "param", "faults": int(e.size), "degraded": k,
                    "fraction": k / e.size, **dict(zip(("lo", "hi"), wilson(k, e.size))),
                    "mean_emd_norm": float(e.mean())})
        return out
    for cls, c in summary["classes"].items():
        if cls == "all":
            continue  # the classes' rows add up to it
        deg = c["degraded"].get(_key(threshold))
        if deg is None:
            raise ValueError(f"{folder}: no degraded fraction at threshold {threshold} (thresholds: "
                             f"{', '.join(c['degraded'])})")
        n, k = int(c["faults"]), int(deg["faults"])
        out.append({"design": design, "kind": kind, "class": cls, "faults": n, "degraded": k, "fraction": k / n,
                    **dict(zip(("lo", "hi"), wilson(k, n))), "mean_emd_norm": float(c["mean_emd_norm"])})
    return out


def write_risk(rows: list, out: Path, threshold: float, title: str, column: str = "emd_norm") -> list:
    """``column``: the campaigns' normalised damage (fkhw.damage.metrics); the file
    keys keep the EMD-era name ``mean_emd_norm``."""
    out = Path(out)
    make_dir(out)
    write_text(out / "risk.json", json.dumps({"threshold": threshold, "rows": rows}, indent=1) + "\n")
    with atomic_open(out / "risk.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    lines = [f"| design | kind | class | faults | degraded ({column} > {threshold:g} or lost/extra output) | "
             f"mean {column} |", "|---|---|---|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['kind']} | {r['class']} | {r['faults']:,} | {100 * r['fraction']:.2f}% "
                     f"[{100 * r['lo']:.2f}, {100 * r['hi']:.2f}] | {r['mean_emd_norm']:.4f} |")
    write_text(out / "risk.md", "\n".join(lines) + "\n")
    figure(rows, out / "risk.png", threshold, title, column)
    return [out / "risk.json", out / "risk.csv", out / "risk.md", out / "risk.png"]


def figure(rows: list, path: Path, threshold: float, title: str, column: str = "emd_norm") -> Path:
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(f"{r['kind']}\n{r['class']}" for r in rows))
    designs = list(dict.fromkeys(r["design"] for r in rows))
    fig = Figure(figsize=(max(7, 1.1 * len(labels)), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(designs)
    x = np.arange(len(labels))
    for j, d in enumerate(designs):
        by = {f"{r['kind']}\n{r['class']}": r for r in rows if r["design"] == d}
        vals = np.array([100 * by[lab]["fraction"] if lab in by else np.nan for lab in labels])
        err = np.array([[100 * (by[lab]["fraction"] - by[lab]["lo"]), 100 * (by[lab]["hi"] - by[lab]["fraction"])]
                        if lab in by else [0, 0] for lab in labels]).T
        ax.bar(x + (j - (len(designs) - 1) / 2) * width, vals, width, yerr=np.clip(err, 0, None), capsize=2, label=d)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(f"faults degrading the output [%]\n({column} > {threshold:g}, or a lost/extra output)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path, dpi=110)
    return path
