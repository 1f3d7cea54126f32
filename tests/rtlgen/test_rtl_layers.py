"""The RTL level on the layer kinds beyond conv2d/dense (issue 17): conv1d,
max pooling (1-D, 2-D, same/valid), average pooling, reshape, and the folded
QConv2DBatchnorm (a conv2d in the IR). As specifications:

- generated Verilog lints clean (Verilator) for every model holding them;
- RTL on Verilator through cocotb == the integer engine, fault-free on every
  row, and under every single parameter upset (the exhaustive SEU campaign):
  the software level and the RTL level agree on every site;
- the flip-flop space (``fkhw sites --all-flip-flops``) counts exactly the
  flip-flops Yosys keeps, including pipeline registers only partly read
  (a strided pool skips pixels, and through it a column of the input).

Models: :func:`fkhw.rtlgen.testing.pool_model` (integer IR, every path of
the new blocks) and small random-weight QKeras networks from
tests/qkeras_models.py, extracted by fkhw. Sizes come from the models.
"""

from __future__ import annotations

import numpy as np
import pytest
from qkeras_models import conv1d_model, conv_bn_model, plain_average_model, pooling_model, strided_pool_model

from fkhw.model import engine
from fkhw.levels.rtl import RtlLevel
from fkhw.levels.software import SoftwareLevel
from fkhw.rtlgen import write_rtl
from fkhw.rtlgen.emit import TOP
from fkhw.rtlgen.lint import lint
from fkhw.rtlgen.testing import pool_model, toy_inputs
from fkhw.faults.sites import SiteSpace

JOBS = 2
N_ROWS = 2000  # fault-free rows per model
N_SEU_ROWS = 24  # rows per upset in the exhaustive campaigns

pytestmark = [pytest.mark.usefixtures("uncached"), pytest.mark.verilator, pytest.mark.yosys]

BUILDERS = {"conv1d-maxpool1d": conv1d_model, "maxpool2d-qavgpool-reshape-conv1d": pooling_model,
            "qavgpool-no-quantizer": plain_average_model, "qconv2dbatchnorm": conv_bn_model,
            "strided-maxpool-reshape-conv1d": strided_pool_model}
NEW_KINDS = {"conv1d", "maxpool", "avgpool", "reshape"}


@pytest.fixture(scope="module")
def qkeras_models(tf):
    return {name: build(tf) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def qkeras_irs(qkeras_models):
    from fkhw.model.extract import extract

    return {name: extract(model, name) for name, model in qkeras_models.items()}


def kinds(ir) -> set:
    return {layer.kind for layer in ir.layers}


def test_the_models_hold_every_new_kind(qkeras_irs):
    assert NEW_KINDS <= kinds(pool_model())
    assert NEW_KINDS <= set().union(*(kinds(ir) for ir in qkeras_irs.values()))
    assert qkeras_irs["qconv2dbatchnorm"].source["folded_batchnorm"] == ["cbn"]


@pytest.mark.parametrize("name", ["pool_model", *BUILDERS])
def test_generated_verilog_lints_clean(name, qkeras_irs, tmp_path):
    ir = pool_model() if name == "pool_model" else qkeras_irs[name]
    design = write_rtl(ir, tmp_path)
    res = lint(design.verilog_files(tmp_path), TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    used = {n for n in design.files if n.endswith(".v")}
    # the pooling blocks travel only with designs that instantiate them
    assert ("fkhw_maxpool.v" in used) == ("maxpool" in kinds(ir))
    assert ("fkhw_avgpool.v" in used) == ("avgpool" in kinds(ir))


def _fault_free_mismatches(ir, n_rows: int, seed: int) -> tuple:
    lv = RtlLevel(ir, jobs=JOBS)
    x = toy_inputs(ir, n_rows, seed=seed)
    ref = engine.forward(ir, x)
    rtl = lv.golden(x)
    return int((rtl != ref).any(axis=1).sum()), np.unique(ref).size, lv


@pytest.mark.parametrize("name", list(BUILDERS))
def test_rtl_equals_qkeras_and_engine_on_every_row_of_each_qkeras_model(name, qkeras_models, qkeras_irs):
    """N_ROWS random inputs over the input quantizer's range: RTL output
    codes == QKeras' float output x 2**frac, value by value."""
    from fkhw.model.fixed import quantize_float

    model, ir = qkeras_models[name], qkeras_irs[name]
    rng = np.random.default_rng(7)
    span = 2.0 ** (ir.input.fmt.integer_bits - 1)
    x = rng.uniform(-span, span, size=(N_ROWS,) + tuple(ir.input.shape)).astype(np.float32)
    codes = quantize_float(x, ir.input.fmt)
    theirs = model(x, training=False).numpy().astype(np.float64).reshape(N_ROWS, -1) * 2.0 ** ir.output_spec.frac
    rtl = RtlLevel(ir, jobs=JOBS).golden(codes)
    assert rtl.shape == theirs.shape
    bad = int(np.sum(rtl != theirs))
    assert bad == 0, f"{name}: {bad} of {rtl.size} output codes differ between RTL and QKeras"
    assert np.array_equal(rtl, engine.forward(ir, codes).reshape(N_ROWS, -1))
    assert np.unique(rtl).size >= 8, f"{name}: only {np.unique(rtl).size} distinct output codes"


def test_pool_model_fault_free_and_every_single_upset_agree_with_software():
    """Fault-free on every row, then the exhaustive SEU campaign: every
    parameter bit flipped, RTL vs the software level (0 disagreeing sites)."""
    ir = pool_model()
    bad, distinct, lv = _fault_free_mismatches(ir, N_ROWS, seed=3)
    assert bad == 0, f"{bad} of {N_ROWS} rows differ between RTL and engine"
    assert distinct >= 8
    sites = np.arange(SiteSpace.of(ir).n_sites)
    x = toy_inputs(ir, N_SEU_ROWS, seed=4)
    rtl = lv.run(sites, x)
    sw = SoftwareLevel(ir).run(sites, x)
    disagree = int((rtl != sw).any(axis=(1, 2)).sum())
    assert disagree == 0, f"{disagree} of {sites.size} sites disagree between RTL and software"
    gold = engine.forward(ir, x)
    assert int((sw != gold).any(axis=(1, 2)).sum()) > sites.size // 4  # the upsets do reach the outputs


def test_qkeras_pooling_model_every_single_upset_agrees_with_software(qkeras_irs):
    ir = qkeras_irs["maxpool2d-qavgpool-reshape-conv1d"]
    lv = RtlLevel(ir, jobs=JOBS)
    sites = np.arange(SiteSpace.of(ir).n_sites)
    x = toy_inputs(ir, N_SEU_ROWS, seed=5)
    rtl = lv.run(sites, x)
    sw = SoftwareLevel(ir).run(sites, x)
    disagree = int((rtl != sw).any(axis=(1, 2)).sum())
    assert disagree == 0, f"{disagree} of {sites.size} sites disagree between RTL and software"
    assert int((sw != engine.forward(ir, x)).any(axis=(1, 2)).sum()) > sites.size // 4


def test_all_flip_flops_equal_yosys_flip_flops(qkeras_models, qkeras_irs, tmp_path):
    """`fkhw sites --all-flip-flops` on a saved QKeras model lists as many
    flip-flops as Yosys keeps in its synthesised RTL, whose stage registers
    are partly dead (a strided max pool)."""
    from fkhw.cli import main
    from fkhw.rtlgen.synth import synth

    name = "strided-maxpool-reshape-conv1d"
    ir = qkeras_irs[name]
    model_file = tmp_path / "model.h5"
    qkeras_models[name].save(model_file)
    design = write_rtl(ir, tmp_path / "rtl")
    rep = synth(design.verilog_files(tmp_path / "rtl"), TOP, work_dir=tmp_path / "synth", abc=False)
    assert main(["sites", "--all-flip-flops", "--model", str(model_file), "--out", str(tmp_path / "ff.csv")]) == 0
    rows = (tmp_path / "ff.csv").read_text().splitlines()[1:]
    assert len(rows) == rep["flip_flops"] == design.meta["flip_flops_expected"], rep["cell_types"]
    # the dead input column: the pool reads 4 of the conv's 6 output columns, none of which touches input column 6
    st0 = design.meta["stages"][0]
    assert st0["ff_used"] < st0["bits"]


def test_an_average_pool_whose_reciprocal_quantizes_to_zero_is_refused_in_one_line(tmp_path):
    """A reciprocal code of 0 makes the output constant: synthesis would
    remove the whole datapath before it (and its flip-flops from the space)."""
    from dataclasses import replace

    from fkhw.rtlgen import RtlUnsupported

    ir = pool_model()
    pos = next(i for i, layer in enumerate(ir.layers) if layer.kind == "avgpool")
    bad = ir.with_layer(pos, replace(ir.layers[pos], mult=0))
    with pytest.raises(RtlUnsupported, match="'avg_b'.*reciprocal") as e:
        write_rtl(bad, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_every_pipeline_and_valid_upset_of_the_pool_model_equals_the_fault_model():
    """The stages in front of the pools and behind the reshape: every data
    and valid flip-flop at every window cycle, RTL vs fkhw's fault model
    (software): 0 mismatching faults."""
    from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
    from fkhw.faults.software import simulate_set

    ir = pool_model()
    n = 4
    lv = RtlLevel(ir, jobs=JOBS)
    space = lv.space
    fs = enumerate_faults(space, parse_kind("pipeline"), KindOptions(n_vectors=n, samples=0, seed=0))
    assert len(fs) == (space.n_pipeline + space.latency) * n
    x = toy_inputs(ir, n, seed=6)
    obs = lv.run_faults(fs, x)
    ref = simulate_set(ir, space, fs, x)
    bad = fs.ids[obs.mismatches(ref)]
    assert bad.size == 0, f"{bad.size} of {len(fs)} faults differ from the fault model, e.g. {bad[:5]}"
    changed = (obs.latent != engine.forward(ir, x)[None]).any(axis=(1, 2)) | obs.lost.any(axis=1)
    assert changed.sum() > 0.2 * len(fs), f"only {int(changed.sum())} of {len(fs)} faults change anything"


def test_yosys_keeps_exactly_the_stage_flip_flops_the_space_lists(tmp_path):
    """Flip-flop by flip-flop, not only their number: in the flat synthesis
    of the pool model, the pipeline bits Yosys keeps are the bits of the
    elements each stage lists (dead columns out, an unsigned average
    without a constant sign bit), and the total equals the space's."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.rtlgen.netlist import _rename, _rename_pipeline, flip_flop_map, flip_flops
    from fkhw.rtlgen.synth import synth

    ir = pool_model()
    design = write_rtl(ir, tmp_path / "rtl")
    rep = synth(design.verilog_files(tmp_path / "rtl"), TOP, work_dir=tmp_path / "synth", abc=False, netlist="n.v")
    ffmap = flip_flop_map(flip_flops(_rename_pipeline(_rename((tmp_path / "synth" / "n.v").read_text()))), design.meta)
    for st in design.meta["stages"]:
        kept = {key[2] for key in ffmap if key[0] == "pipe" and key[1] == st["stage"]}
        listed = {e * st["width"] + b for e in st["used_elements"] for b in range(st["width"])}
        assert kept == listed, f"stage {st['stage']}: Yosys keeps {len(kept)} bits, the space lists {len(listed)}"
    assert {key for key in ffmap if key[0] == "valid"} == {("valid", k) for k in range(design.meta["latency"])}
    assert rep["flip_flops"] == FlipFlopSpace.of(ir).n_ff == design.meta["flip_flops_expected"]


def test_an_even_reciprocal_registered_without_a_quantizer_is_refused_in_one_line(tmp_path):
    """Window sum x an even code: its low bits are constant 0, flip-flops
    synthesis would remove behind the space's back."""
    from dataclasses import replace

    from fkhw.rtlgen import RtlUnsupported

    ir = pool_model()
    pos = next(i for i, layer in enumerate(ir.layers) if layer.kind == "avgpool")
    bad = ir.with_layer(pos, replace(ir.layers[pos], mult=2, frac_add=2))
    with pytest.raises(RtlUnsupported, match="'avg_b'.*code 2.*QActivation") as e:
        write_rtl(bad, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_software_level_flattens_an_output_that_is_not_a_vector():
    """A model ending in a pool (output (width, channels)): every level
    reports outputs flattened per row in C order, and the software level's
    single upsets equal the engine on the flipped model, site by site."""
    import dataclasses

    from fkhw.faults.sites import flip

    ir = pool_model()
    ir = dataclasses.replace(ir, layers=tuple(ir.layers[:[l.kind for l in ir.layers].index("flatten")]))
    x = toy_inputs(ir, 8, seed=1)
    assert engine.forward(ir, x).ndim > 2
    space = SiteSpace.of(ir)
    got = SoftwareLevel(ir).run(np.arange(space.n_sites), x)
    want = np.stack([engine.forward(flip(ir, space, s), x).reshape(len(x), -1) for s in range(space.n_sites)])
    assert got.shape == want.shape
    assert int((got != want).sum()) == 0
    assert (want != SoftwareLevel(ir).golden(x)[None]).any(axis=(1, 2)).sum() > space.n_sites // 4
