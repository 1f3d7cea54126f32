"""Replay of one campaign row: the fault rerun at a level, its numbers checked
against the row, its waveform (RTL) and the picture of the damaged module.

    from fkhw.replays import ReplayRequest, replay

    r = replay(ReplayRequest(Path("out/econt-bol/campaign_rtl"), site=4711, waves=Path("site4711.vcd")), work)
    r.matches, r.emd_norm, r.waves.upset_cycles   # the row's numbers again; where the waveform shows the upset

``fkhw replay`` is the command; ``fkhw sim`` replays the most damaging row of
its RTL campaign.
"""

from fkhw.replays.row import Replay, ReplayError, ReplayRequest, replay, replay_to

__all__ = ["Replay", "ReplayError", "ReplayRequest", "replay", "replay_to"]
