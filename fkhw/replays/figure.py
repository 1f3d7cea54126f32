"""The picture of a replayed upset: one module's input charges, its
fault-free and faulty decoder reconstructions on the 8 x 8 sensor image,
their difference, and the latent codes the fault changed.

Matplotlib through Figure objects (Agg), never pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkhw.outpaths import save_figure


def _image(cells: np.ndarray) -> np.ndarray:
    """48 cells as the encoder's 8 x 8 image, in percent of the module's sum
    (cells outside the sensor: NaN, drawn blank)."""
    from fkhw.model.data import geometry, to_image

    geo = geometry()
    total = float(cells.sum())
    img = to_image((cells / total * 100.0 if total > 0 else cells)[None])[0, :, :, 0]
    return np.where(geo.mask.reshape(8, 8) > 0, img, np.nan)


def _title(r) -> str:
    ups = "; ".join(f"{u.register} bit {u.bit} ({u.cls}) at cycle {u.cycle}" for u in r.upsets) or "no upset"
    head = f"{r.key} {r.row_id} ({r.kind}, {r.level} level): {ups}"
    verdict = "equals the campaign row" if r.matches else f"DIFFERS from the campaign row ({len(r.mismatched)} modules)"
    row = (f"row {r.metric}_norm {r.damage_norm:.4f}, {len(r.changed)} of {r.n_modules} modules changed: "
           f"{verdict}")
    return f"{head}\n{row}"


def replay_figure(r, path: Path) -> Path:
    """Draw the replay ``r`` (fkhw.replays.row.Replay) into ``path`` (PNG)."""
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    fig = Figure(figsize=(12.5, 7.2), layout="constrained")
    grid = GridSpec(2, 4, figure=fig, height_ratios=[1.15, 1.0])
    mod = f"module {r.module} (data row {r.module_row})"
    if r.recon_free is not None:
        free, faulty = _image(r.recon_free), _image(r.recon_faulty)
        panels = [(_image(r.charges), f"input charge, {mod}"),
                  (free, f"fault-free reconstruction\nEMD {r.module_damage_free:.3f}"),
                  (faulty, f"faulty reconstruction\nEMD {r.module_damage_faulty:.3f}")]
        top = np.nanmax([np.nanmax(p) for p, _ in panels])
        for k, (img, title) in enumerate(panels):
            ax = fig.add_subplot(grid[0, k])
            im = ax.imshow(img, cmap="viridis", vmin=0.0, vmax=top, origin="upper")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("image column")
            ax.set_ylabel("image row")
        fig.colorbar(im, ax=fig.axes[:3], label="charge, % of the module's sum", shrink=0.85)
        diff = faulty - free
        lim = max(float(np.nanmax(np.abs(diff))), 1e-9)
        ax = fig.add_subplot(grid[0, 3])
        im = ax.imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="upper")
        ax.set_title("faulty - fault-free\n(percentage points)", fontsize=9)
        ax.set_xlabel("image column")
        ax.set_ylabel("image row")
        fig.colorbar(im, ax=ax, label="percentage points", shrink=0.85)
    ax = fig.add_subplot(grid[1, :])
    n_out = r.latent_free.size
    x = np.arange(n_out)
    scale = 2.0 ** -r.latent_frac
    ax.bar(x - 0.2, r.latent_free * scale, width=0.4, label="fault-free", color="tab:gray")
    ax.bar(x + 0.2, r.latent_faulty * scale, width=0.4, label="faulty", color="tab:red")
    changed = np.flatnonzero(r.latent_free != r.latent_faulty)
    for c in changed:
        ax.annotate(f"{int(r.latent_free[c])}\u2192{int(r.latent_faulty[c])}", (c, max(r.latent_free[c], r.latent_faulty[c]) * scale),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(x)
    ax.set_xlabel(f"latent output (code, LSB = 2^-{r.latent_frac}; changed codes annotated: {changed.size} of {n_out})")
    ax.set_ylabel("latent value")
    ax.set_title(f"{mod}: the encoder's {n_out} latent outputs", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(_title(r), fontsize=10)
    return save_figure(fig, path, dpi=110)
