"""RTL generation from the integer IR: Verilog emitter, lint and synthesis.

``generate(ir)`` returns an :class:`RtlDesign` (files, register map,
metadata) without touching the disk; ``write_rtl(ir, out)`` writes it.
"""

from fkhw.rtlgen.emit import (META_FILE, REGMAP_FILE, TOP, TOP_FILE, RtlDesign, RtlUnsupported, generate,
                              write_rtl)

__all__ = ["generate", "write_rtl", "RtlDesign", "RtlUnsupported", "TOP", "TOP_FILE", "META_FILE", "REGMAP_FILE"]
