"""The formal certificate (fkhw.tmr.certificate): every single replica upset
of the synthesised register files is masked for all register contents and
port inputs, and the certificate fails, naming the flip-flop, when the
netlist is mutated the way synthesis could break TMR.

Real Yosys + ABC netlists of the tiny model (fkhw.rtlgen.testing), the
area table's register-file runs; sizes come from the design.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fkhw.rtlgen.emit import generate
from fkhw.rtlgen.testing import tiny_model
from fkhw.tmr.area import area_designs, design_dir, regfile_netlist
from fkhw.tmr.certificate import CertificateError, certify

pytestmark = pytest.mark.yosys


@pytest.fixture(scope="module")
def netlists(tmp_path_factory):
    """(name, hardened design, its register-file netlist) of the area table's four TMR designs."""
    ir = tiny_model()
    cache = tmp_path_factory.mktemp("synth_cache")
    work = tmp_path_factory.mktemp("synth")
    prot = np.arange(0, ir.n_param_bits(), 5)
    plain = generate(ir)
    out = []
    for name, design, _n, _refresh in area_designs(ir, prot)[1:]:
        path, _ = regfile_netlist(design, plain, work / design_dir(name), cache=cache)
        out.append((name, design, path))
    return out


def _protected_bits(design) -> int:
    return len(design.meta["tmr"]["sites"])


@pytest.mark.parametrize("k", range(4), ids=["selective", "selective + refresh", "full", "full + refresh"])
def test_each_tmr_design_of_the_area_table_is_proven(netlists, k, tmp_path):
    name, design, path = netlists[k]
    cert = certify(design, path, tmp_path, name)
    assert cert.proven, cert.counterexample.line()
    assert cert.counterexample is None
    # every replica A, B, C of every protected bit was upset, the register bits all appear
    assert cert.protected_flip_flops == 3 * _protected_bits(design)
    assert cert.register_bits == sum(rf["count"] * rf["bits"] for rf in design.meta["register_files"])
    assert cert.refresh == ("refresh" in name)
    assert ("corrected" in cert.properties[2]) == cert.refresh
    # the certificate names the very netlist it proved
    import hashlib

    assert cert.netlist_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    written = json.loads(json.dumps(cert.to_json()))
    assert written["proven"] and written["design"] == name and "Yosys" in written["yosys"]


def _voter_module(text: str) -> tuple:
    """(start, end) of the first TMR voter module of a register-file netlist."""
    start = text.index("fkhw_tmr_voter (")
    start = text.rindex("\nmodule ", 0, start)
    return start, text.index("endmodule", start)


def _mutate_voter(text: str, pattern: str, replace) -> tuple:
    a, b = _voter_module(text)
    body = text[a:b]
    m = re.search(pattern, body)
    assert m, pattern
    return text[:a] + body[:m.start()] + replace(m) + body[m.end():] + text[b:], m


def test_a_voter_that_passes_replica_a_through_fails_with_its_flip_flop_named(netlists, tmp_path):
    """One voter output term removed: the output is replica A alone, so an
    upset of A reaches it. The counterexample names replica A of that bit."""
    name, design, path = netlists[2]  # full TMR: every bit goes through a voter
    mutated, m = _mutate_voter(path.read_text(), r"assign q\[(\d+)\] = [^;]+;",
                               lambda m: f"assign q[{m.group(1)}] = a[{m.group(1)}];")
    (tmp_path / "mutant.v").write_text(mutated)
    cert = certify(design, tmp_path / "mutant.v", tmp_path / "work", name)
    assert not cert.proven
    cex = cert.counterexample
    assert cex.replica == "A" and cex.verilog_bit == int(m.group(1)) and "outputs" in cex.failed
    assert cex.outputs_changed and cex.site >= 0
    # the output that changed is that bit of that register: contents and output differ in it alone
    bus, reg, contents, faulty = cex.outputs_changed[0]
    assert reg == cex.register and contents ^ faulty == 1 << cex.verilog_bit
    assert contents == cex.register_value
    assert f"replica A of bit {cex.verilog_bit} of register {cex.register}" in cex.line()


def test_replicas_merged_by_synthesis_fail_the_certificate(netlists, tmp_path):
    """What synthesis does without (* keep *): replica B becomes replica A.
    Then one upset flips two of the three voter inputs."""
    name, design, path = netlists[2]
    text = path.read_text()
    inst = re.search(r"\\(rf_\w+)\.g_reg\[(\d+)\]\.g_tmr\.u_vote\s+\(", text)
    assert inst
    end = text.index(");", inst.end())
    ports = text[inst.end():end]
    a_conn = re.search(r"\.a\(([^()]*)\)", ports).group(1)
    merged = re.sub(r"\.b\(([^()]*)\)", lambda m: f".b({a_conn})", ports, count=1)
    (tmp_path / "mutant.v").write_text(text[:inst.end()] + merged + text[end:])
    cert = certify(design, tmp_path / "mutant.v", tmp_path / "work", name)
    assert not cert.proven
    cex = cert.counterexample
    assert (cex.register_file, cex.register, cex.replica) == (inst.group(1), int(inst.group(2)), "A")
    assert "outputs" in cex.failed


def test_a_silent_error_flag_fails_the_certificate(netlists, tmp_path):
    """A voter whose mismatch bit is tied low: that bit's upsets are masked
    but not flagged; the certificate says so."""
    name, design, path = netlists[2]
    mutated, m = _mutate_voter(path.read_text(), r"assign disagree\[(\d+)\] = [^;]+;",
                               lambda m: f"assign disagree[{m.group(1)}] = 1'h0;")
    (tmp_path / "mutant.v").write_text(mutated)
    cert = certify(design, tmp_path / "mutant.v", tmp_path / "work", name)
    assert not cert.proven and cert.counterexample.failed == ("flag",)
    assert cert.counterexample.verilog_bit == int(m.group(1))


def test_a_netlist_the_certificate_cannot_read_is_a_one_line_error(netlists, tmp_path):
    name, design, path = netlists[0]
    (tmp_path / "other.v").write_text("module something_else(input a); endmodule\n")
    with pytest.raises(CertificateError, match=r"^.*no flip-flop in the netlist$|^the netlist has no module"):
        certify(design, tmp_path / "other.v", tmp_path / "work", name)
    plain = generate(tiny_model())
    with pytest.raises(CertificateError, match="no protected bit"):
        certify(plain, path, tmp_path / "work2", "plain")
