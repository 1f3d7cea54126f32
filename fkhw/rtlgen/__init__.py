"""RTL generation from the integer IR: Verilog emitter, lint and synthesis.

``generate(ir, variant)`` returns an :class:`RtlDesign` (files, register map,
metadata) of a :class:`DesignVariant` (plain by default) without touching the
disk; ``write_rtl(ir, out)`` writes the plain one.
"""

from fkhw.rtlgen.emit import (META_FILE, REGMAP_FILE, TOP, TOP_FILE, DesignVariant, RtlDesign, RtlUnsupported,
                              generate, write_rtl)

__all__ = ["generate", "write_rtl", "DesignVariant", "RtlDesign", "RtlUnsupported", "TOP", "TOP_FILE", "META_FILE",
           "REGMAP_FILE"]
