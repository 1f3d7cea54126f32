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
