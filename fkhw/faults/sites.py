"""The fault-site space: one stable integer id per stored parameter bit.

Order: parameter layers in model order, kernel before bias, C-order flat
index inside the tensor, then bit with bit 0 = MSB (sign). So
``site = tensor.offset + index * bits + bit``. Every level, table and map
names a bit by this id and nothing else.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.model.fixed import FixedFormat
from fkhw.model.ir import PARAM_KINDS, IntegerModel
from fkhw.outpaths import atomic_open
from fkhw.validate import integer_text


class SiteError(InputError):
    """A site id or site list that does not belong to the model."""


@dataclass(frozen=True, eq=False)
class ParamTensor:
    layer_pos: int  # position in IntegerModel.layers
    layer: str
    tensor: str  # 'kernel' | 'bias'
    fmt: FixedFormat
    shape: tuple
    offset: int  # first site id

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_sites(self) -> int:
        return self.size * self.fmt.bits


@dataclass(frozen=True)
class Site:
    site: int
    layer: str
    tensor: str
    index: int
    bit: int


@dataclass(frozen=True, eq=False)
class SiteSpace:
    tensors: tuple
    n_sites: int

    @staticmethod
    def of(model: IntegerModel) -> "SiteSpace":
        tensors, offset = [], 0
        for pos, layer in enumerate(model.layers):
            if layer.kind not in PARAM_KINDS:
                continue
            parts = [("kernel", layer.kernel, layer.kernel_fmt)]
            if layer.bias is not None:
                parts.append(("bias", layer.bias, layer.bias_fmt))
            for tname, arr, fmt in parts:
                t = ParamTensor(pos, layer.name, tname, fmt, tuple(arr.shape), offset)
                tensors.append(t)
                offset += t.n_sites
        return SiteSpace(tuple(tensors), offset)

    def check(self, sites) -> np.ndarray:
        sites = np.asarray(sites, dtype=np.int64).reshape(-1)
        bad = sites[(sites < 0) | (sites >= self.n_sites)]
        if bad.size:
            raise SiteError(f"site id(s) {bad[:5].tolist()} out of range: this model has sites 0..{self.n_sites - 1}")
        return sites

    def locate(self, sites) -> tuple:
        """(tensor number, flat index, bit) arrays for site ids."""
        sites = self.check(sites)
        offsets = np.array([t.offset for t in self.tensors])
        bits = np.array([t.fmt.bits for t in self.tensors])
        tn = np.searchsorted(offsets, sites, side="right") - 1
        rel = sites - offsets[tn]
        return tn, rel // bits[tn], rel % bits[tn]

    def site_id(self, layer: str, tensor: str, index: int, bit: int) -> int:
        for t in self.tensors:
            if t.layer == layer and t.tensor == tensor:
                if not (0 <= index < t.size and 0 <= bit < t.fmt.bits):
                    raise SiteError(f"{layer}.{tensor}[{index}] bit {bit} is out of range")
                return t.offset + index * t.fmt.bits + bit
        raise SiteError(f"no parameter tensor {layer}.{tensor}")

    def describe(self, site: int) -> Site:
        tn, idx, bit = self.locate([site])
        t = self.tensors[int(tn[0])]
        return Site(int(site), t.layer, t.tensor, int(idx[0]), int(bit[0]))

    def table(self, model: IntegerModel, sites=None) -> dict:
        """Columns site, layer, tensor, index, bit, code for the given sites."""
        sites = np.arange(self.n_sites) if sites is None else self.check(sites)
        tn, idx, bit = self.locate(sites)
        codes = np.empty(sites.size, dtype=np.int64)
        for k, t in enumerate(self.tensors):
            sel = tn == k
            if sel.any():
                codes[sel] = tensor_codes(model, t).reshape(-1)[idx[sel]]
        return {
            "site": sites,
            "layer": np.array([self.tensors[k].layer for k in tn], dtype=object),
            "tensor": np.array([self.tensors[k].tensor for k in tn], dtype=object),
            "index": idx,
            "bit": bit,
            "code": codes,
        }


def tensor_codes(model: IntegerModel, t: ParamTensor) -> np.ndarray:
    """The integer codes of one parameter tensor (kernel or bias) of ``model``."""
    layer = model.layers[t.layer_pos]
    return layer.kernel if t.tensor == "kernel" else layer.bias


def flip(model: IntegerModel, space: SiteSpace, site: int) -> IntegerModel:
    """A copy of ``model`` with one bit flipped; the original is untouched.
    Flipping the same site again restores the original codes."""
    tn, idx, bit = space.locate([site])
    t = space.tensors[int(tn[0])]
    layer = model.layers[t.layer_pos]
    codes = tensor_codes(model, t).copy()
    flat = codes.reshape(-1)
    flat[idx[0]] = t.fmt.flip(flat[idx[0]], bit[0])
    return model.with_layer(t.layer_pos, replace(layer, **{t.tensor: codes}))


def write_sites_csv(model: IntegerModel, path: Path) -> int:
    space = SiteSpace.of(model)
    cols = space.table(model)
    path = Path(path)
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site", "layer", "tensor", "index", "bit", "code"])
        w.writerows(zip(*(cols[k].tolist() for k in ("site", "layer", "tensor", "index", "bit", "code"))))
    return space.n_sites


def read_site_list(path: Path, space: SiteSpace) -> np.ndarray:
    """Site ids from a file: one id per line, or a CSV with a ``site``
    column; each an integer below the model's site count (fkhw.validate),
    named by row (line) and column when it is not."""
    path = Path(path)
    if not path.is_file():
        raise SiteError(f"{path}: no such site list")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise SiteError(f"{path}: a binary file, not a text list of site ids") from None
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.startswith("#")]
    column = ""  # a plain list: one id per line
    header = next(csv.reader([lines[0][1]])) if lines else []
    if "site" in [c.strip() for c in header]:
        col, column = [c.strip() for c in header].index("site"), " column site"
        cells = []
        for n, ln in lines[1:]:
            row = next(csv.reader([ln]))
            if col >= len(row):
                raise SiteError(f"{path} row {n}: no site column (cut short?)")
            cells.append((n, row[col]))
        lines = cells
    if not lines:
        raise SiteError(f"{path}: no site ids")
    try:
        sites = np.array([integer_text(v, f"{path} row {n}{column}", 0, space.n_sites - 1, ": this model's sites")
                          for n, v in lines], dtype=np.int64)
    except InputError as e:
        raise SiteError(str(e)) from None
    first = {}
    for (n, _), site in zip(lines, sites.tolist()):
        if site in first:
            raise SiteError(f"{path} row {n}{column}: site {site} is listed twice (first in row {first[site]})")
        first[site] = n
    return sites
