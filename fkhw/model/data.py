"""Input data: HGCAL trigger-cell CSVs (loading, normalisation, the 8x8
image) and, for any other network, arrays (``.npy`` / ``.npz`` / HDF5) in
the model's input shape with optional labels or targets.

The geometry (cell centres, 8x8 arrangement, mask) comes from
``assets/hgcal/geometry.json``, the one source of truth for it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.validate import fields, integer, json_document, number_column, string_in

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "hgcal"
GEOMETRY_JSON = ASSETS / "geometry.json"
DEFAULT_DATA = ASSETS / "ttbar_0PU_5k.csv"
N_CELLS = 48
COLUMNS = [f"CALQ_{i}" for i in range(N_CELLS)]
IMAGE_SHAPE = (8, 8, 1)


class DataError(InputError):
    """A data file that cannot be read as the model's inputs (or labels)."""


@dataclass(frozen=True, eq=False)
class Geometry:
    xy: np.ndarray  # (48, 2) cell centres in units of adjacent-cell distance
    arrange: np.ndarray  # (64,) pixel -> cell
    mask: np.ndarray  # (64,) 1 where the pixel carries its cell

    @property
    def ground_distance(self) -> np.ndarray:
        d = self.xy[:, None, :] - self.xy[None, :, :]
        return np.sqrt((d ** 2).sum(-1))

    @property
    def pixel_of_cell(self) -> np.ndarray:
        """(48,) the masked pixel that holds each cell."""
        pix = np.full(N_CELLS, -1)
        for p in np.flatnonzero(self.mask):
            pix[self.arrange[p]] = p
        return pix


@lru_cache(maxsize=None)
def geometry(path: Path = GEOMETRY_JSON) -> Geometry:
    g = json.loads(Path(path).read_text())
    xy = np.asarray(g["tc_xy"], dtype=np.float64) / float(g["tc_unit"])
    arrange = np.asarray(g["arrange_8x8"], dtype=np.int64)
    mask = np.asarray(g["mask_8x8"], dtype=np.int64)
    if xy.shape != (N_CELLS, 2) or arrange.shape != (64,) or mask.shape != (64,):
        raise DataError(f"{path}: geometry must hold 48 cell centres and a 64-pixel arrangement and mask")
    if sorted(arrange[mask == 1].tolist()) != list(range(N_CELLS)):
        raise DataError(f"{path}: the masked pixels must hold each of the 48 cells exactly once")
    return Geometry(xy, arrange, mask)


def load_charges(path: Path | str | None = None) -> np.ndarray:
    """The (N, 48) charges of a CSV with columns CALQ_0..CALQ_47."""
    path = Path(path) if path is not None else DEFAULT_DATA
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(b"\x1f\x8b") or b"\0" in head:
        raise DataError(f"{path}: a binary (or compressed) file, not a CSV text file; decompress it first")
    try:
        return _read_charges(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV text file ({e})") from None


def _read_charges(path: Path) -> np.ndarray:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file (expected a header with {COLUMNS[0]}..{COLUMNS[-1]})") from None
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        cols = [header.index(c) for c in COLUMNS]
        cells, lines = [], []
        for row in reader:
            if not row:
                continue
            if len(row) <= max(cols):
                raise DataError(f"{path} row {reader.line_num}: cut short ({len(row)} cells, the header has "
                                f"{len(header)})")
            cells.extend(row[c] for c in cols)
            lines.append(reader.line_num)
    if not lines:
        raise DataError(f"{path}: no data rows")
    try:
        charges = number_column(cells, lambda i: f"{path} row {lines[i // N_CELLS]} column {COLUMNS[i % N_CELLS]}",
                                lo=0)
    except InputError as e:
        raise DataError(str(e)) from None
    charges = charges.reshape(-1, N_CELLS)
    with np.errstate(over="ignore"):
        sums = charges.sum(axis=1)
    if not np.isfinite(sums).all():
        r = int(np.flatnonzero(~np.isfinite(sums))[0])
        raise DataError(f"{path} row {lines[r]}: the module's charges sum beyond the float64 range (overflow)")
    return charges


def row_pool(path) -> np.ndarray:
    """Weights (N, k) whose positive row sums mark the rows a campaign may
    draw: an HGCAL CSV's charges (modules with non-zero charge), or ones for
    an array file (every row). The one draw rule of campaigns, held-out sets
    and ``--inputs auto`` (:func:`select_modules`)."""
    path = Path(path) if path is not None else DEFAULT_DATA
    if path.suffix in ARRAY_SUFFIXES:
        return np.ones((_read_array(path, "x", "inputs").shape[0], 1))
    return load_charges(path)


def all_input_codes(ir, path) -> np.ndarray:
    """The model's input codes of every row of a data file: an HGCAL CSV's
    8x8 images, or an array file's rows through the model's input quantizer."""
    path = Path(path) if path is not None else DEFAULT_DATA
    if path.suffix in ARRAY_SUFFIXES:
        return array_input_codes(load_arrays(path, None, ir.input.shape)[0], ir.input.fmt, str(path))
    return encoder_input_codes(load_charges(path), ir.input.fmt)


EXAMPLE = "example.json"  # a model directory's own data and metric (the digits example's)


def model_example(model_dir) -> dict:
    """What a model directory says it is run with: ``data``, ``labels``
    (paths relative to it), ``metric`` and ``validate_inputs``; {} if it
    says nothing (ECON-T: the HGCAL sample, EMD)."""
    path = Path(model_dir) / EXAMPLE
    if not path.is_file():
        return {}
    try:
        ex = fields(json_document(path.read_text(), str(path)), str(path))
        for key in ("about", "data", "labels", "metric"):
            if key in ex:
                string_in(ex[key], f"{path} {key}")
        if "validate_inputs" in ex:
            integer(ex["validate_inputs"], f"{path} validate_inputs", 1)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: damaged ({e})") from None
    except InputError as e:
        raise DataError(str(e)) from None
    for key in ("data", "labels"):
        if key in ex:
            ex[key] = str(Path(model_dir) / ex[key])
    return ex


def normalise(charges: np.ndarray) -> np.ndarray:
    """Divide each module by 2**floor(log2(sum)); all-zero modules stay 0."""
    s = charges.sum(axis=1)
    k = np.floor(np.log2(np.where(s > 0, s, 1.0)))
    return charges / np.exp2(k)[:, None]


def to_image(cells: np.ndarray, geo: Geometry | None = None) -> np.ndarray:
    """(N, 48) -> (N, 8, 8, 1) as the encoder reads it (masked pixels 0)."""
    geo = geo or geometry()
    img = cells[:, geo.arrange] * geo.mask[None, :]
    return img.reshape(-1, 8, 8, 1)


def from_image(img: np.ndarray, geo: Geometry | None = None) -> np.ndarray:
    """(N, 8, 8[, 1]) -> (N, 48): each cell from the pixel that holds it."""
    geo = geo or geometry()
    return img.reshape(img.shape[0], 64)[:, geo.pixel_of_cell]


def encoder_input_codes(charges: np.ndarray, fmt) -> np.ndarray:
    """The encoder's input codes of modules: normalise, 8x8 image, then the
    input quantizer's format ``fmt`` (round half to even, saturate)."""
    from fkhw.model.fixed import quantize_float

    return quantize_float(to_image(normalise(charges)), fmt)


def check_image_input(shape, model_name: str) -> None:
    """The encoder must read the 8x8x1 image this data gives."""
    if tuple(shape) != IMAGE_SHAPE:
        raise DataError(f"model {model_name!r} reads inputs of shape {tuple(shape)}; HGCAL trigger-cell data "
                        f"gives 8x8 images {IMAGE_SHAPE}")


def select_modules(charges: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` modules with non-zero charge, seeded and reproducible."""
    nonzero = np.flatnonzero(charges.sum(axis=1) > 0)
    if n < 1:
        raise DataError(f"--inputs must be at least 1, got {n}")
    if n > nonzero.size:
        raise DataError(f"--inputs {n} is larger than the {nonzero.size} modules with non-zero charge in the data")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(nonzero, size=n, replace=False))


def check_modules(charges: np.ndarray, rows, path) -> np.ndarray:
    """Explicit module rows (sorted, distinct, in range, non-zero charge)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise DataError(f"{path}: no modules chosen")
    if rows.min() < 0 or rows.max() >= charges.shape[0]:
        raise DataError(f"{path}: module row {int(rows.max())} is beyond its {charges.shape[0]} rows")
    if np.unique(rows).size != rows.size:
        raise DataError(f"{path}: a module is chosen twice")
    if np.any(charges[rows].sum(axis=1) <= 0):
        raise DataError(f"{path}: a chosen module has zero charge")
    return np.sort(rows)


# --- arrays -----------------------------------------------------------------

ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def _pick(path: Path, names: list, key: str, role: str) -> str:
    """The array of a several-array file: the only one, or the one named ``key``."""
    if len(names) == 1:
        return names[0]
    if key in names:
        return key
    if not names:
        raise DataError(f"{path}: holds no array")
    shown = ", ".join(sorted(names)[:8]) + (" ..." if len(names) > 8 else "")
    raise DataError(f"{path}: holds several arrays ({shown}); name the {role} {key!r}")


def _hdf5_datasets(f) -> list:
    import h5py

    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _read_array(path: Path, key: str, role: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: no such file (the {role})")
    if path.suffix not in ARRAY_SUFFIXES:
        raise DataError(f"{path}: not an array file (give {', '.join(ARRAY_SUFFIXES)}, or an HGCAL CSV as --data)")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[_pick(path, list(z.files), key, role)]
        import h5py

        with h5py.File(path, "r") as f:
            return f[_pick(path, _hdf5_datasets(f), key, role)][()]
    except DataError:
        raise
    except Exception as e:  # numpy, zipfile and h5py raise many types for damaged files
        raise DataError(f"{path}: cannot read the {role} ({_one_line(e)})") from None


def _checked(a: np.ndarray, path: Path, role: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.int64)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{path}: {role} of type {a.dtype} are not real numbers")
    if a.ndim == 0 or a.shape[0] == 0:
        raise DataError(f"{path}: no {role} (shape {a.shape}; one row per input is needed)")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{path}: {role}{list(where)} = {a[where]} is not a finite number")
    return a


def load_arrays(path, labels=None, input_shape=None) -> tuple:
    """Inputs and optional labels (or targets) from arrays: ``(x, y)``.

    ``path``: ``.npy``, ``.npz`` or HDF5 with the inputs, one row per input:
    the only array in the file, or the one named ``x``. ``labels``: another
    such file (or the same one, array ``y``) with one label or target row per
    input, or None (then ``y`` is None). ``input_shape``: the model's input
    shape without the batch axis; each row must have exactly that shape.
    Inputs are real values (float64); the model's own input quantizer turns
    them into codes (:func:`array_input_codes`).
    """
    path = Path(path)
    x = _checked(_read_array(path, "x", "inputs"), path, "inputs").astype(np.float64)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"{path}: inputs of shape {tuple(x.shape[1:])} per row (array {x.shape}); the model reads "
                        f"{tuple(input_shape)}")
    if labels is None:
        return x, None
    labels = Path(labels)
    y = _checked(_read_array(labels, "y", "labels"), labels, "labels")
    if y.ndim > 2:
        raise DataError(f"{labels}: labels of shape {y.shape}; give one label (N,) or one target row (N, k) per input")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{labels}: {y.shape[0]} labels for the {x.shape[0]} inputs of {path}")
    return x, y


def array_input_codes(x: np.ndarray, fmt, source="inputs") -> np.ndarray:
    """Input codes of real-valued inputs: the model's input quantizer ``fmt``
    (round half to even, saturate), as its QActivation does on the float32
    values Keras feeds it.

    QKeras quantizes as ``x + (q - x)`` in float32; once a float32 step
    exceeds one code (``|x| >= 2**(24 - frac)``) that sum loses ``q`` and a
    far out-of-range input comes back near 0 instead of saturated. Such
    inputs are refused: no level could agree with QKeras on them.
    """
    from fkhw.model.fixed import quantize_float

    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    limit = 2.0 ** (24 - fmt.frac)
    beyond = np.abs(x32) >= limit
    if beyond.any():
        where = tuple(int(i) for i in np.argwhere(beyond)[0])
        raise DataError(f"{source}: input{list(where)} = {x32[where]:g} is beyond +-2**{24 - fmt.frac}, where QKeras' "
                        f"float32 quantizer ({fmt.describe()}) no longer saturates; clip the data to the input range")
    return quantize_float(x32, fmt)
