"""The pipeline registers between the layers: plain (fkhw_pipe) or with
some data bits and the valid flag triplicated (fkhw_pipe_tmr)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fkhw.faults.space import protectable
from fkhw.model.stages import PipelineStage
from fkhw.rtlgen.layers.base import Bus
from fkhw.rtlgen.verilog import mask_literal, signedness


@dataclass(frozen=True)
class StageCode:
    """A stage's wires, its instance, its entry in meta["stages"] and the
    error net of its voters with its declaration (None: nothing triplicated;
    declared after the datapath's wires)."""

    q: Bus
    valid: str
    decl: list
    body: str
    meta: dict
    err: str | None
    err_decl: str | None


def stage_protection(n_sites: int, stages: tuple, extra: tuple) -> dict:
    """stage -> (PMASK bool array over the stage's DW bits or None, valid
    protected) for the protected flip-flop ids ``extra`` (pipeline data
    bits, then valid flags, numbered as in fkhw.faults.space); raises FaultError
    for ids that are no pipeline or valid flip-flop."""
    if not extra:
        return {}
    first, spans = n_sites, []
    for st in stages:
        spans.append(first)
        first += st.ff_used
    first_control = first
    ids = protectable(n_sites, first_control + len(stages), extra)
    out = {}
    for ff in ids:
        if ff >= first_control:
            k = ff - first_control
            pm, _ = out.get(k, (None, False))
            out[k] = (pm, True)
            continue
        k = int(np.searchsorted(spans, ff, side="right") - 1)
        st = stages[k]
        rel = ff - spans[k]
        e, b = st.used[rel // st.width], rel % st.width
        pm, vt = out.get(k, (None, False))
        pm = np.zeros(st.bits, dtype=bool) if pm is None else pm
        pm[e * st.width + st.width - 1 - b] = True  # bit 0 = MSB of the element's code
        out[k] = (pm, vt)
    return out


def stage_code(st: PipelineStage, d: Bus, d_valid: str, prot: tuple | None) -> StageCode:
    """The register of stage ``st`` loading bus ``d``; ``prot``: its entry
    of :func:`stage_protection` (None: a plain fkhw_pipe)."""
    k = st.stage
    q = Bus(f"s{k}_data", d.spec, d.width, d.signed)
    decl = [f"    wire             s{k}_valid;",
            f"    wire [{q.bits - 1}:0] {q.name};  // stage {k}: {q.n} x {q.width}-bit "
            f"{signedness(q.signed)} codes, frac {q.spec.frac}"]
    meta = {"stage": k, "signal": q.name, "instance": f"u_stage{k}", "bits": st.bits, "ff_used": st.ff_used,
            "elements": st.elements, "width": st.width, "signed": st.signed, "frac": st.frac,
            "layer_pos": st.layer_pos, "used_elements": list(st.used)}
    ports = (f"        .clk(clk), .rst(rst), .d_valid({d_valid}), .d({d.name}),\n"
             f"        .q_valid(s{k}_valid), .q(s{k}_data)")
    if prot is None:
        body = f"    // pipeline stage {k}\n    fkhw_pipe #(.DW({st.bits})) u_stage{k} (\n{ports}\n    );\n"
        return StageCode(q, f"s{k}_valid", decl, body, meta, None, None)
    pm, vt = prot
    pm = np.zeros(st.bits, dtype=bool) if pm is None else pm
    err = f"s{k}_tmr_err"
    meta.update({"module": "fkhw_pipe_tmr", "pmask": mask_literal(pm), "protected_bits": int(pm.sum()),
                 "valid_protected": bool(vt), "err_net": err})
    body = (f"    // pipeline stage {k}: {int(pm.sum())} of {st.bits} data bits"
            f"{' and the valid flag' if vt else ''} triplicated (PMASK bit j = Verilog bit j of q)\n"
            f"    fkhw_pipe_tmr #(.DW({st.bits}), .VTMR({int(vt)}),\n        .PMASK({mask_literal(pm)})) "
            f"u_stage{k} (\n{ports}, .err({err})\n    );\n")
    err_decl = f"    wire             {err};  // replicas of a protected stage {k} flip-flop disagree"
    return StageCode(q, f"s{k}_valid", decl, body, meta, err, err_decl)
