"""The hls4ml level: QKeras encoder -> hls4ml project -> C-simulation.

:func:`generate` writes and compiles a project; :class:`HlsProject` reads
one back. Fault injection through the C-sim lives in :mod:`fkhw.levels.hls`.
"""

from fkhw.hls.project import (BACKENDS, HlsProject, HlsProjectError, HlsUnsupportedError, csim_predict, generate,
                              mismatched_rows, project_for)

__all__ = ["BACKENDS", "HlsProject", "HlsProjectError", "HlsUnsupportedError", "csim_predict", "generate",
           "mismatched_rows", "project_for"]
