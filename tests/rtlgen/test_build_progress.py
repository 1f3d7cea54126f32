"""Progress of a Verilator build (fkhw.rtlgen.sim.build_phase): which phase
it is in, read from the files Verilator and make have written so far."""

from pathlib import Path

from fkhw.rtlgen.sim import TB_TOP, build_objects, build_phase

CLASSES_MK = """# Verilated -*- Makefile -*-
VM_PARALLEL_BUILDS = 1
VM_CLASSES_FAST += \\
  Vtop \\
  Vtop___024root__0 \\

VM_CLASSES_SLOW += \\
  Vtop___024root__Slow \\

VM_SUPPORT_FAST += \\
  Vtop__Dpi \\

VM_SUPPORT_SLOW += \\
  Vtop__Syms__Slow \\

VM_GLOBAL_FAST += \\
  verilated \\
  verilated_vpi \\

VM_GLOBAL_SLOW += \\

"""
TOP_MK = """VM_USER_CFLAGS = \\
  -std=c++20 \\

VM_USER_CLASSES = \\
  verilator \\

VM_USER_DIR = \\
  . \\

"""


def test_phases_follow_the_files_of_a_build(tmp_path: Path):
    d = tmp_path / "sim"
    d.mkdir()
    assert build_phase(d) == "verilating"
    (d / "Vtop___024root__0.cpp").write_text("")  # Verilator writes sources before its makefiles
    assert build_phase(d) == "verilating"
    (d / "Vtop_classes.mk").write_text(CLASSES_MK)
    (d / "Vtop.mk").write_text(TOP_MK)
    objects = build_objects(d)
    assert objects == ["Vtop", "Vtop___024root__0", "Vtop___024root__Slow", "Vtop__Dpi", "Vtop__Syms__Slow",
                       "verilated", "verilated_vpi", "verilator"]
    assert build_phase(d) == f"compiling C++, 0 of {len(objects)} objects"
    for k, name in enumerate(objects[:-1]):
        (d / f"{name}.o").write_bytes(b"")
        assert build_phase(d) == f"compiling C++, {k + 1} of {len(objects)} objects"
    (d / f"{objects[-1]}.o").write_bytes(b"")
    assert build_phase(d) == "linking"
    (d / TB_TOP).write_bytes(b"")
    assert build_phase(d) == "done"


def test_a_yosys_pass_is_named_however_much_it_has_printed(tmp_path: Path):
    """hierarchy on a large generate prints megabytes after its header; the
    progress line must still name it, and then the next pass as it starts."""
    from fkhw.rtlgen.synth import PassReader

    log = tmp_path / "yosys.log"
    log.write_text("1. Executing Verilog-2005 frontend: src/top.v\n")
    reader = PassReader(log)
    assert reader() == "step 1, Verilog-2005 frontend: src/top.v"
    with log.open("a") as f:
        f.write("2. Executing HIERARCHY pass (managing design hierarchy).\n")
        for k in range(20_000):  # ~1 MB of AST messages
            f.write(f"Generating RTLIL representation for module `\\g_reg[{k}]'.\n")
        f.write("2.1. Executing AST frontend in derive mode us")  # a line still being written
    assert reader() == "step 2, HIERARCHY pass (managing design hierarchy)"
    with log.open("a") as f:
        f.write("ing pre-parsed AST for module `\\fkhw_regfile_tmr'.\n")
    # long pass names are cut to 70 characters
    assert reader() == "step 2.1, AST frontend in derive mode using pre-parsed AST for module `\\fkhw_..."
