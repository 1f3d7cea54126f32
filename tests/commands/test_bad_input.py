"""Every command against a catalogue of bad inputs: each must end with
exit status 2 and exactly one line on stderr that names the option or file
at fault, with no traceback, and must leave no new (or changed) file or
folder behind.

Each case runs ``fkhw.cli.main``, the function the installed ``fkhw``
entry point calls, in the test's own process, with the case's working
folder and environment: a process per case spent ~0.3 s of its ~0.4 s
starting Python and importing fkhw. The entry point itself, as a user runs
it, is tests/commands/test_cli.py's (every command) and
test_interrupts.py's.

The classes (issue 12): unwritable or malformed outputs, damaged, cut or
foreign campaign and scores files, out-of-range and malformed options,
binary or overflowing data, models whose parts do not fit each other or
the data, campaign folders another run holds or owns, services on the
scheduler port that are not Dask. A new bug found is a new row here.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

FKHW = Path(sys.executable).parent / "fkhw"  # the console script: the workspace's good campaigns
INPUTS = 8


@dataclass(frozen=True)
class Case:
    command: str
    bad: str  # what is wrong: the test id
    args: tuple  # {placeholders} filled from the workspace
    culprit: str  # the error line must contain this (filled like args)
    env: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.command}-{self.bad}"


# placeholders: {model} a good small model, {camp} a good finished campaign, {scores} good scores,
# {file} an existing file, {under} a path below a file, {dir} an existing folder, {ws} the workspace;
# /sys refuses new files even to root (the suite may run as root, for whom permission bits do not count)
READ_ONLY = "/sys/fkhw_bad_input_out"
OUT_CASES = [
    # (command, args before --out, what --out should be: a folder or a file)
    ("sites", ("--model", "{model}"), "file"),
    ("train", ("--epochs", "1"), "folder"),
    ("campaign", ("--model", "{model}", "--inputs", INPUTS), "folder"),
    ("plot", ("--campaign", "{camp}"), "file"),
    ("hessian", ("--model", "{model}", "--inputs", 16), "folder"),
    ("rank", ("--campaign", "{camp}", "--scores", "{scores}"), "folder"),
    ("hls", ("--model", "{model}"), "folder"),
    ("rtl", ("--model", "{model}"), "folder"),
    ("agree", ("--a", "{camp}", "--b", "{camp}"), "file"),
    ("tmr", ("--campaign", "{camp}", "--no-synth", "--no-prove"), "folder"),
    ("rate", ("--campaign", "{camp}"), "folder"),
    ("protect", ("--campaign", "{camp}", "--scrub", "1h", "--target", "0.5"), "folder"),
    ("replay", ("--campaign", "{camp}", "--site", "0"), "folder"),
    ("sim", ("--model", "{model}", "--inputs", INPUTS, "--no-synth"), "folder"),
]


def _out_cases() -> list:
    cases = []
    for cmd, args, kind in OUT_CASES:
        cases.append(Case(cmd, "out-below-a-file", (*args, "--out", "{under}"), "--out {under}: cannot write there"))
        cases.append(Case(cmd, "out-empty", (*args, "--out", ""), "--out '': an empty path"))
        cases.append(Case(cmd, "out-in-a-read-only-folder", (*args, "--out", READ_ONLY),
                          f"--out {READ_ONLY}: cannot write there"))
        if kind == "folder":
            cases.append(Case(cmd, "out-is-a-file", (*args, "--out", "{file}"), "--out {file}: exists and is not a folder"))
        else:
            cases.append(Case(cmd, "out-is-a-folder", (*args, "--out", "{dir}"), "--out {dir}: is a folder"))
    return cases


SEED_CASES = [Case(cmd, "seed-negative", (*args, "--seed", "-1", "--out", "{ws}/new"), "--seed -1")
              for cmd, args in (("train", ()), ("campaign", ("--model", "{model}")), ("hessian", ("--model", "{model}")),
                                ("hls", ("--model", "{model}")), ("sim", ("--model", "{model}")))]

CASES = _out_cases() + SEED_CASES + [
    # -- sites
    Case("sites", "model-missing", ("--model", "{ws}/no_model", "--out", "{ws}/s.csv"), "{ws}/no_model"),
    Case("sites", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/s.csv"),
         "writes 4 latent values, the decoder (decoder_small.json) reads 5"),
    # -- train
    Case("train", "data-gzip", ("--data", "{gz}", "--out", "{ws}/new"), "{gz}: a binary (or compressed) file"),
    Case("train", "data-binary", ("--data", "{bin}", "--out", "{ws}/new"), "{bin}: a binary"),
    Case("train", "weight-bits-zero", ("--weight-bits", "0", "--out", "{ws}/new"), "--weight-bits 0"),
    Case("train", "epochs-malformed", ("--epochs", "x", "--out", "{ws}/new"), "--epochs"),
    # -- campaign: options
    *[Case("campaign", f"{opt[2:]}-{v}", ("--model", "{model}", opt, v, "--out", "{ws}/new"), f"{opt} {shown}")
      for opt, v, shown in (("--inputs", "0", "0"), ("--jobs", "0", "0"), ("--chunk", "0", "0"),
                            ("--stop-after", "0", "0"), ("--stop-sensitive", "0", "0"),
                            ("--sensitive-threshold", "-1", "-1"), ("--sensitive-threshold", "nan", "nan"),
                            ("--threshold", "inf", "inf"), ("--seed", "1e3", "'1e3'"), ("--inputs", "abc", "'abc'"))],
    Case("campaign", "inputs-beyond-data", ("--model", "{model}", "--inputs", "100000", "--out", "{ws}/new"),
         "--inputs 100000"),
    Case("campaign", "order-unknown", ("--model", "{model}", "--order", "best", "--out", "{ws}/new"), "--order 'best'"),
    Case("campaign", "order-scores-cover-part-of-sites",
         ("--model", "{model}", "--sites", "{sites_all}", "--order", "{part_scores}/scores.csv:s", "--out", "{ws}/new"),
         "--sites have no place in this order"),
    # -- campaign: inputs
    Case("campaign", "sites-id-beyond-int64", ("--model", "{model}", "--sites", "{huge_sites}", "--out", "{ws}/new"),
         "{huge_sites} row 2: 99999999999999999999999 is out of range"),
    Case("campaign", "sites-id-beyond-model", ("--model", "{model}", "--sites", "{far_sites}", "--out", "{ws}/new"),
         "{far_sites}"),
    Case("campaign", "sites-binary", ("--model", "{model}", "--sites", "{bin}", "--out", "{ws}/new"), "{bin}: a binary"),
    Case("campaign", "data-gzip", ("--model", "{model}", "--data", "{gz}", "--out", "{ws}/new"), "{gz}"),
    Case("campaign", "data-binary", ("--model", "{model}", "--data", "{bin}", "--out", "{ws}/new"), "{bin}"),
    Case("campaign", "data-charge-sum-overflows", ("--model", "{model}", "--data", "{overflow}", "--out", "{ws}/new"),
         "{overflow} row 2: the module's charges sum beyond the float64 range"),
    Case("campaign", "data-nan", ("--model", "{model}", "--data", "{nan_data}", "--out", "{ws}/new"),
         "{nan_data} row 2 column CALQ_0: 'nan' is not a finite number"),
    Case("campaign", "data-missing-columns", ("--model", "{model}", "--data", "{sites_all}", "--out", "{ws}/new"),
         "{sites_all}: missing column"),
    Case("campaign", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/new"),
         "the decoder (decoder_small.json) reads 5"),
    Case("campaign", "model-input-not-8x8", ("--model", "{shape_model}", "--out", "{ws}/new"),
         "reads inputs of shape (4, 4, 1)"),
    # -- campaign: metrics and array data (issue 17); {digits} the example classifier, {dx} its inputs
    Case("campaign", "labels-wrong-length", ("--model", "digits", "--data", "{dx}", "--labels", "{short_labels}",
                                             "--metric", "accuracy", "--out", "{ws}/new"),
         "{short_labels}: 10 labels for the"),
    Case("campaign", "metric-needs-labels", ("--model", "digits", "--data", "{dx}", "--metric", "accuracy", "--out",
                                             "{ws}/new"), "--metric accuracy needs --labels"),
    Case("campaign", "metric-unknown", ("--model", "digits", "--metric", "f1", "--out", "{ws}/new"),
         "--metric 'f1': unknown metric"),
    Case("campaign", "user-metric-raises", ("--model", "digits", "--data", "{dx}", "--metric", "bad_metrics:boom",
                                            "--out", "{ws}/new"), "--metric bad_metrics:boom raised RuntimeError",
         env={"PYTHONPATH": "."}),
    Case("campaign", "user-metric-nan", ("--model", "digits", "--data", "{dx}", "--metric", "bad_metrics:nan",
                                         "--out", "{ws}/new"), "--metric bad_metrics:nan returned nan",
         env={"PYTHONPATH": "."}),
    Case("campaign", "data-array-wrong-shape", ("--model", "digits", "--data", "{x7}", "--metric", "mse", "--out",
                                                "{ws}/new"), "{x7}: inputs of shape (7, 7, 1) per row"),
    Case("campaign", "labels-class-beyond-outputs", ("--model", "digits", "--data", "{dx}", "--labels", "{big_labels}",
                                                     "--metric", "accuracy", "--out", "{ws}/new"),
         "class 10 at row 0 is outside the model's 10 outputs"),
    Case("hessian", "user-metric-has-no-loss", ("--model", "digits", "--data", "{dx}", "--metric", "bad_metrics:boom",
                                                "--out", "{ws}/new"), "a user metric has none",
         env={"PYTHONPATH": "."}),
    Case("hessian", "labels-wrong-length", ("--model", "digits", "--data", "{dx}", "--labels", "{short_labels}",
                                            "--metric", "accuracy", "--out", "{ws}/new"), "{short_labels}: 10 labels"),
    Case("sim", "metric-needs-labels", ("--model", "digits", "--data", "{dx}", "--metric", "accuracy", "--out",
                                        "{ws}/new"), "--metric accuracy needs --labels"),
    # -- campaign: the folder
    Case("campaign", "finished-folder-other-arguments",
         ("--model", "{model}", "--inputs", INPUTS, "--seed", "1", "--out", "{camp}"),
         "--out {camp} holds a finished campaign with other arguments"),
    Case("campaign", "partial-manifest-damaged", ("--model", "{model}", "--inputs", INPUTS, "--out", "{bad_manifest}"),
         "{bad_manifest}/.partial/manifest.json: damaged"),
    Case("campaign", "folder-held-by-another-run", ("--model", "{model}", "--inputs", INPUTS, "--out", "{locked}"),
         "another campaign (pid {pid}) is running"),
    # -- campaign: the scheduler
    Case("campaign", "scheduler-without-port", ("--model", "{model}", "--scheduler", "tcp://127.0.0.1", "--out",
                                                "{ws}/new"), "--scheduler 'tcp://127.0.0.1'"),
    Case("campaign", "scheduler-http-url", ("--model", "{model}", "--scheduler", "http://127.0.0.1:8787/status",
                                            "--out", "{ws}/new"), "--scheduler 'http://127.0.0.1:8787/status'"),
    Case("campaign", "scheduler-port-closed", ("--model", "{model}", "--scheduler", "{closed_port}", "--out",
                                               "{ws}/new"), "--scheduler {closed_port}: no Dask scheduler answered"),
    # (a silent TCP service takes the same path as HTTP: test_a_silent_service_is_refused_when_the_probe_times_out)
    Case("campaign", "scheduler-http-service", ("--model", "{model}", "--scheduler", "{http_port}", "--out",
                                                "{ws}/new"), "--scheduler {http_port}: a service answers there"),
    Case("campaign", "scheduler-banner-service", ("--model", "{model}", "--scheduler", "{banner_port}", "--out",
                                                  "{ws}/new"), "--scheduler {banner_port}: the service there is not"),
    # -- campaign: fault kinds (issue 14)
    *[Case("campaign", f"faults-{bad}", ("--model", "{model}", *extra, "--out", "{ws}/new"), culprit)
      for bad, extra, culprit in (
          ("kind-unknown", ("--faults", "tmr9"), "--faults 'tmr9': unknown kind"),
          ("mbu-k-zero", ("--faults", "mbu:0"), "--faults mbu:0: K must be"),
          ("mbu-k-beyond-the-widest-word", ("--faults", "mbu:99"), "--faults mbu:99: K must be"),
          ("accumulate-k-one", ("--faults", "accumulate:1"), "--faults accumulate:1: K must be"),
          ("mbu-without-k", ("--faults", "mbu"), "--faults 'mbu': mbu needs a count K"),
          ("cycle-outside-the-frame", ("--faults", "pipeline", "--cycle", "10000"), "--cycle 10000"),
          ("cycle-with-seu", ("--cycle", "2"), "--cycle 2: --faults seu"),
          ("file-names-flip-flops-that-do-not-exist", ("--faults-file", "{ghost_faults}"),
           "--faults-file {ghost_faults}: flip-flop id(s)"),
          ("file-upset-after-the-frame", ("--faults-file", "{late_faults}"), "--faults-file {late_faults}: fault 7"),
          ("file-malformed-csv", ("--faults-file", "{malformed_faults}"), "{malformed_faults} row 2 column upsets: 'x@y'"),
          ("file-malformed-json", ("--faults-file", "{json_faults}"), "{json_faults}: not valid JSON"),
          ("file-missing", ("--faults-file", "{ws}/none.csv"), "{ws}/none.csv: no such faults file"),
          ("file-binary", ("--faults-file", "{bin}"), "{bin}: a binary file"),
          ("file-together-with-a-kind", ("--faults", "mbu:2", "--faults-file", "{ghost_faults}"),
           "--faults-file not allowed with argument --faults"),
          ("samples-zero", ("--faults", "accumulate:2", "--samples", "0"), "--samples 0"),
          ("samples-with-another-kind", ("--faults", "mbu:2", "--samples", "5"), "--samples 5: only"),
          ("order-with-another-kind", ("--faults", "pipeline", "--order", "random"), "--order chooses among"),
          ("sites-with-another-kind", ("--faults", "mbu:2", "--sites", "{sites_all}"), "--sites chooses among"),
          ("kind-the-level-cannot-run", ("--faults", "pipeline", "--level", "hls"),
           "--level hls holds the parameters only"),
          ("cycle-the-level-cannot-run", ("--faults", "mbu:2", "--cycle", "3", "--level", "hls"),
           "--level hls has no clock"),
          ("tmr-map-of-another-model", ("--faults", "replicas", "--tmr", "{foreign_map}"),
           "--tmr {foreign_map}/tmr_map.json: the map is for model other"),
          ("replicas-of-the-plain-design", ("--faults", "replica-pairs"), "the plain design has no replicas"),
          ("refresh-without-tmr", ("--refresh",), "--refresh is a variant of the hardened design"),
          ("protection-unknown", ("--protection", "hamming"), "--protection 'hamming': use secded, secded:N, secded:Ni"),
          ("protection-parity-word-zero", ("--protection", "parity:0i"), "--protection 'parity:0i': 0 data bits"),
          ("protection-word-zero", ("--protection", "secded:0"), "--protection 'secded:0': 0 data bits"),
          ("protection-word-not-a-number", ("--protection", "secded:1.5"), "--protection 'secded:1.5': N is a "
                                                                             "whole number"),
          ("protection-word-too-wide", ("--protection", "secded:65"), "--protection 'secded:65': 65 data bits"),
          ("protection-and-tmr", ("--protection", "secded", "--tmr", "{foreign_map}"),
           "--protection secded and --tmr DIR name two designs"),
          ("checkbits-of-the-plain-design", ("--faults", "checkbits"), "this design has no check bits"),
          ("protection-at-the-hls-level", ("--protection", "secded", "--level", "hls"),
           "--level hls has no replica or check flip-flops"))],
    # -- plot
    Case("plot", "campaign-missing", ("--campaign", "{ws}/none"), "--campaign {ws}/none"),
    Case("plot", "summary-garbage", ("--campaign", "{summary_garbage}"), "{summary_garbage}/summary.json: damaged"),
    Case("plot", "summary-cut", ("--campaign", "{summary_cut}"), "{summary_cut}/summary.json: damaged"),
    Case("plot", "csv-cut", ("--campaign", "{csv_cut}"), "{csv_cut}/campaign.csv"),
    Case("plot", "csv-nan", ("--campaign", "{csv_nan}"), "{csv_nan}/campaign.csv row 3 column emd_norm: 'nan' is not a finite number"),
    Case("plot", "csv-huge-site", ("--campaign", "{csv_huge}"), "{csv_huge}/campaign.csv row 3 column site"),
    Case("plot", "csv-binary", ("--campaign", "{csv_binary}"), "{csv_binary}/campaign.csv: damaged"),
    Case("plot", "model-other", ("--campaign", "{camp}", "--model", "econt-bol", "--out", "{ws}/f.png"),
         "is not the one the campaign ran on"),
    # -- hessian
    *[Case("hessian", f"{opt[2:]}-{v}", ("--model", "{model}", opt, v, "--out", "{ws}/new"), f"{opt} {v}")
      for opt, v in (("--top-k", "0"), ("--trace-tol", "0"), ("--inputs", "0"), ("--eigen-tol", "nan"),
                     ("--trace-max", "1"))],
    Case("hessian", "diagonal-unknown", ("--model", "{model}", "--diagonal", "full", "--out", "{ws}/new"),
         "--diagonal invalid choice: 'full'"),
    Case("hessian", "data-gzip", ("--model", "{model}", "--data", "{gz}", "--out", "{ws}/new"), "{gz}"),
    Case("hessian", "inputs-beyond-data", ("--model", "{model}", "--inputs", "100000", "--out", "{ws}/new"),
         "--inputs 100000"),
    Case("hessian", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/new"),
         "the decoder (decoder_small.json) reads 5"),
    Case("hessian", "model-input-not-8x8", ("--model", "{shape_model}", "--out", "{ws}/new"),
         "reads inputs of shape (4, 4, 1)"),
    # -- rank
    Case("rank", "summary-garbage", ("--campaign", "{summary_garbage}", "--scores", "{scores}", "--out", "{ws}/new"),
         "{summary_garbage}/summary.json: damaged"),
    Case("rank", "csv-cut", ("--campaign", "{csv_cut}", "--scores", "{scores}", "--out", "{ws}/new"),
         "{csv_cut}/campaign.csv"),
    Case("rank", "scores-missing", ("--campaign", "{camp}", "--scores", "{ws}/none", "--out", "{ws}/new"),
         "{ws}/none"),
    Case("rank", "scores-binary", ("--campaign", "{camp}", "--scores", "{bin}", "--out", "{ws}/new"), "{bin}"),
    Case("rank", "scores-of-another-model", ("--campaign", "{camp}", "--scores", "{other_scores}", "--out", "{ws}/new"),
         "different models"),
    Case("rank", "scores-other-site-space", ("--campaign", "{camp}", "--scores", "{part_scores}", "--out",
                                             "{ws}/new"), "--scores {part_scores} cover"),
    Case("rank", "campaign-of-another-kind", ("--campaign", "{faults_camp}", "--scores", "{scores}", "--out",
                                              "{ws}/new"), "--campaign {faults_camp} is a --faults pipeline campaign"),
    Case("rank", "threshold-negative", ("--campaign", "{camp}", "--scores", "{scores}", "--threshold", "-2", "--out",
                                        "{ws}/new"), "--threshold -2"),
    # -- hls
    Case("hls", "faults-negative", ("--model", "{model}", "--check", "--faults", "-1", "--out", "{ws}/new"),
         "--faults -1"),
    Case("hls", "faults-without-check", ("--model", "{model}", "--faults", "3", "--out", "{ws}/new"), "--faults"),
    Case("hls", "check-data-gzip", ("--model", "{model}", "--check", "--data", "{gz}", "--out", "{ws}/new"), "{gz}"),
    Case("hls", "out-not-a-project", ("--model", "{model}", "--out", "{foreign}"), "{foreign}: exists and is not"),
    Case("hls", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/new"), "reads 5"),
    Case("hls", "backend-unknown", ("--model", "{model}", "--backend", "Quartus9", "--out", "{ws}/new"), "--backend"),
    # -- rtl
    Case("rtl", "model-missing", ("--model", "{ws}/no_model", "--out", "{ws}/new"), "{ws}/no_model"),
    Case("rtl", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/new"), "reads 5"),
    # -- agree
    Case("agree", "a-missing", ("--a", "{ws}/none", "--b", "{camp}", "--out", "{ws}/a.json"), "--a {ws}/none"),
    Case("agree", "b-summary-cut", ("--a", "{camp}", "--b", "{summary_cut}", "--out", "{ws}/a.json"),
         "{summary_cut}/summary.json: damaged"),
    Case("agree", "outputs-cut", ("--a", "{camp}", "--b", "{npz_cut}", "--out", "{ws}/a.json"),
         "{npz_cut}/outputs.npz: damaged"),
    Case("agree", "outputs-garbage", ("--a", "{npz_garbage}", "--b", "{camp}", "--out", "{ws}/a.json"),
         "{npz_garbage}/outputs.npz: damaged"),
    Case("agree", "outputs-other-shape", ("--a", "{npz_short}", "--b", "{camp}", "--out", "{ws}/a.json"),
         "{npz_short}/outputs.npz: array shapes do not fit"),
    Case("agree", "campaigns-of-other-models", ("--a", "{camp}", "--b", "{other_model}", "--out", "{ws}/a.json"),
         "differ in model_digest"),
    Case("agree", "campaigns-of-other-kinds", ("--a", "{camp}", "--b", "{faults_camp}", "--out", "{ws}/a.json"),
         "ran --faults seu"),
    Case("agree", "fault-outputs-cut", ("--a", "{faults_camp}", "--b", "{faults_npz_cut}", "--out", "{ws}/a.json"),
         "{faults_npz_cut}/outputs.npz: damaged"),
    Case("plot", "fault-table-cut", ("--campaign", "{faults_csv_cut}", "--out", "{ws}/f.png"),
         "{faults_csv_cut}/campaign.csv"),
    Case("agree", "list-negative", ("--a", "{camp}", "--b", "{camp}", "--list", "-1", "--out", "{ws}/a.json"),
         "--list -1"),
    # -- tmr
    Case("tmr", "summary-garbage", ("--campaign", "{summary_garbage}", "--out", "{ws}/new"),
         "{summary_garbage}/summary.json: damaged"),
    Case("tmr", "csv-cut", ("--campaign", "{csv_cut}", "--out", "{ws}/new"), "{csv_cut}/campaign.csv"),
    Case("tmr", "csv-nan", ("--campaign", "{csv_nan}", "--out", "{ws}/new"), "column emd_norm: 'nan' is not a finite"),
    Case("tmr", "outputs-cut", ("--campaign", "{npz_cut}", "--out", "{ws}/new"), "{npz_cut}/outputs.npz: damaged"),
    # -- replay
    Case("replay", "site-not-in-campaign", ("--campaign", "{camp}", "--site", "99999999", "--out", "{ws}/new"),
         "--site 99999999: not a row of --campaign {camp}"),
    Case("replay", "fault-of-a-seu-campaign", ("--campaign", "{camp}", "--fault", "0", "--out", "{ws}/new"),
         "is a seu campaign: its rows are sites"),
    Case("replay", "site-of-a-fault-campaign", ("--campaign", "{faults_camp}", "--site", "0", "--out", "{ws}/new"),
         "is a --faults pipeline campaign: its rows are faults"),
    Case("replay", "module-out-of-range", ("--campaign", "{camp}", "--site", "0", "--module", "9999", "--out",
                                           "{ws}/new"), "--module 9999: the campaign ran"),
    Case("replay", "waves-unknown-format", ("--campaign", "{camp}", "--site", "0", "--level", "rtl", "--waves",
                                            "{ws}/w.ghw", "--out", "{ws}/new"), "unknown waveform format '.ghw'"),
    Case("replay", "waves-not-at-rtl", ("--campaign", "{camp}", "--site", "0", "--waves", "{ws}/w.vcd", "--out",
                                        "{ws}/new"), "waveforms come from the rtl level, not software"),
    Case("replay", "waves-into-a-read-only-folder", ("--campaign", "{camp}", "--site", "0", "--level", "rtl",
                                                     "--waves", f"{READ_ONLY}/w.vcd", "--out", "{ws}/new"),
         f"--waves {READ_ONLY}/w.vcd: cannot write there"),
    Case("replay", "site-negative", ("--campaign", "{camp}", "--site", "-1", "--out", "{ws}/new"), "--site -1"),
    Case("replay", "site-fraction", ("--campaign", "{camp}", "--site", "1.5", "--out", "{ws}/new"),
         "--site '1.5': not an integer"),
    # -- rate
    Case("rate", "flux-zero", ("--campaign", "{camp}", "--flux", "0", "--out", "{ws}/new"), "--flux 0"),
    Case("rate", "sigma-negative", ("--campaign", "{camp}", "--sigma=-1e-14", "--out", "{ws}/new"), "--sigma -1e-14"),
    Case("rate", "target-one", ("--campaign", "{camp}", "--target", "1", "--out", "{ws}/new"), "--target 1"),
    Case("rate", "scrub-zero", ("--campaign", "{camp}", "--scrub", "1s,0min", "--out", "{ws}/new"),
         "a scrub interval must be positive, got '0min'"),
    Case("rate", "campaign-of-another-kind", ("--campaign", "{faults_camp}", "--out", "{ws}/new"),
         "--campaign {faults_camp}: a pipeline campaign"),
    Case("rate", "tmr-of-another-model", ("--campaign", "{camp}", "--tmr", "{foreign_map}", "--out", "{ws}/new"),
         "the map is for model other"),
    Case("rate", "full-tmr-without-replay", ("--campaign", "{camp}", "--check-full-tmr", "--out", "{ws}/new"),
         "--check-full-tmr replays scenarios: give --check-rtl N"),
    Case("rate", "transients-not-pipeline", ("--campaign", "{camp}", "--transients", "{camp}", "--out", "{ws}/new"),
         "--transients {camp}: not a pipeline campaign"),
    Case("rate", "protection-unknown", ("--campaign", "{camp}", "--protection", "secded:x", "--out", "{ws}/new"),
         "--protection 'secded:x': N is a whole number"),
    # -- protect
    *[Case("protect", bad, ("--campaign", "{camp}", *extra, "--out", "{ws}/new"), culprit)
      for bad, extra, culprit in (
          ("protection-unknown", ("--scrub", "1h", "--target", "0.5", "--protection", "tmr"),
           "--protection 'tmr': use secded, secded:N, secded:Ni"),
          ("protection-twice", ("--scrub", "1h", "--target", "0.5", "--protection", "secded", "--protection",
                                "secded"), "--protection: a design given twice"),
          ("scrub-malformed", ("--scrub", "10parsecs", "--target", "0.5"), "--scrub 10parsecs"),
          ("target-zero", ("--scrub", "1h", "--target", "0"), "--target 0"),
          ("campaign-of-another-kind", ("--scrub", "1h", "--target", "0.5", "--campaign", "{faults_camp}"),
           "--campaign {faults_camp}: a pipeline campaign"),
          ("tmr-of-another-model", ("--scrub", "1h", "--target", "0.5", "--tmr", "{foreign_map}"),
           "the map is for model other"))],
    Case("tmr", "campaign-of-another-kind", ("--campaign", "{faults_camp}", "--out", "{ws}/new"),
         "--campaign {faults_camp} is a --faults pipeline campaign"),
    Case("tmr", "jobs-zero", ("--campaign", "{camp}", "--jobs", "0", "--out", "{ws}/new"), "--jobs 0"),
    Case("tmr", "scheduler-without-port", ("--campaign", "{camp}", "--scheduler", "tcp://127.0.0.1", "--out",
                                           "{ws}/new"), "--scheduler 'tcp://127.0.0.1'"),
    Case("tmr", "scheduler-port-closed", ("--campaign", "{camp}", "--scheduler", "{closed_port}", "--out",
                                          "{ws}/new"), "--scheduler {closed_port}: no Dask scheduler answered"),
    Case("tmr", "threshold-negative", ("--campaign", "{camp}", "--threshold", "-1", "--out", "{ws}/new"),
         "--threshold -1"),
    Case("tmr", "budget-malformed", ("--campaign", "{camp}", "--budget", "lots", "--out", "{ws}/new"),
         "--budget 'lots'"),
    Case("tmr", "budget-beyond-campaign", ("--campaign", "{camp}", "--budget", "999999", "--out", "{ws}/new"),
         "--budget 999999"),
    Case("tmr", "model-other", ("--campaign", "{camp}", "--model", "econt-bol", "--out", "{ws}/new"),
         "is not the one the campaign ran on"),
    Case("tmr", "pipeline-campaign-of-another-kind", ("--campaign", "{camp}", "--pipeline-campaign", "{camp}",
                                                     "--out", "{ws}/new"), "--pipeline-campaign {camp}: a seu campaign"),
    Case("tmr", "pipeline-threshold-outside-0-1", ("--campaign", "{camp}", "--pipeline-campaign", "{camp}",
                                                  "--pipeline-threshold", "1.5", "--out", "{ws}/new"),
         "--pipeline-threshold 1.5"),
    # -- sim
    Case("sim", "inputs-zero", ("--model", "{model}", "--inputs", "0", "--out", "{ws}/new"), "--inputs 0"),
    Case("sim", "jobs-zero", ("--model", "{model}", "--jobs", "0", "--out", "{ws}/new"), "--jobs 0"),
    Case("sim", "tmr-threshold-negative", ("--model", "{model}", "--tmr-threshold", "-1", "--out", "{ws}/new"),
         "--tmr-threshold -1"),
    Case("sim", "data-gzip", ("--model", "{model}", "--data", "{gz}", "--out", "{ws}/new"), "{gz}"),
    Case("sim", "model-input-not-8x8", ("--model", "{shape_model}", "--out", "{ws}/new"), "(4, 4, 1)"),
    Case("sim", "model-latent-mismatch", ("--model", "{latent_model}", "--out", "{ws}/new"), "reads 5"),
    Case("sim", "model-default-out-blocked", ("--model", "{model}"), "the default output folder out/"),
]


# -- the workspace: one good campaign, and damaged copies of each of its files -------------------

def run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(FKHW), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def run_main(args: list, cwd: Path, env: dict, monkeypatch, capfd) -> tuple:
    """(exit status, stdout, stderr) of ``fkhw.cli.main(args)`` run in
    ``cwd`` with ``env`` added (a relative PYTHONPATH entry, as a user's
    shell has it, on the import path), as the entry point runs it. An
    exception main lets escape fails the test with its traceback."""
    from fkhw.cli import main

    monkeypatch.chdir(cwd)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
        if key == "PYTHONPATH":
            monkeypatch.syspath_prepend(str((cwd / value).resolve()))
    capfd.readouterr()  # what the fixtures printed is not the command's
    code = main(args)
    out, err = capfd.readouterr()
    return code, out, err


def _legacy_save(d: Path, name: str, model) -> None:
    from fkhw.model.train import legacy_json

    (d / f"{name}.json").write_text(legacy_json(model))
    model.save_weights(str(d / f"{name}.hdf5"))


def _decoder(tf, n_latent: int):
    z = tf.keras.Input((n_latent,))
    y = tf.keras.layers.Dense(64, activation="sigmoid", name="dec_dense")(z)
    return tf.keras.Model(z, tf.keras.layers.Reshape((8, 8, 1), name="dec_reshape")(y), name="decoder")


def _mismatched_models(small_model_dir: Path, root: Path) -> dict:
    """A model whose decoder reads 5 latent values where the encoder writes
    4, and one whose encoder reads 4x4 images the HGCAL data cannot fill."""
    from fkhw.model.bundle import load_model
    from fkhw.model.files import ModelFileError
    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    latent = root / "latent_mismatch"
    latent.mkdir()
    for f in small_model_dir.glob("encoder_small.*"):
        shutil.copy(f, latent / f.name)
    tf.keras.utils.set_random_seed(4)
    _legacy_save(latent, "decoder_small", _decoder(tf, 5))

    shape = root / "input_4x4"
    shape.mkdir()
    inp = tf.keras.Input((4, 4, 1))
    x = QActivation(quantized_bits(8, 2, alpha=1), name="input_qa")(inp)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = QDense(4, kernel_quantizer=quantized_bits(4, 1, alpha=1), bias_quantizer=quantized_bits(4, 1, alpha=1),
               name="latent")(x)
    x = QActivation(quantized_relu(6, 1), name="latent_act")(x)
    _legacy_save(shape, "encoder_tiny", tf.keras.Model(inp, x, name="encoder"))
    _legacy_save(shape, "decoder_tiny", _decoder(tf, 4))
    # extracted (and cached) here, so that each case costs no TensorFlow start; the cases check the refusal
    load_model(str(shape))
    with contextlib.suppress(ModelFileError):
        load_model(str(latent))
    return {"latent_model": latent, "shape_model": shape}


def _copy_with(camp: Path, dest: Path, name: str, damage) -> Path:
    shutil.copytree(camp, dest)
    path = dest / name
    damage(path)
    return dest


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _csv_with(value_of_row2):
    def damage(path):
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[2].split(",")
        col, value = value_of_row2
        cells[header.index(col)] = value
        lines[2] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    return damage


def _npz_short(path: Path) -> None:
    with np.load(path) as z:
        arrays = dict(z)
    arrays["sites"] = arrays["sites"][:-1]
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)


def _other_model_summary(path: Path) -> None:
    s = json.loads(path.read_text())
    s["model_digest"] = "0" * 16
    path.write_text(json.dumps(s))


class _Silent(threading.Thread):
    """Accepts connections and never says anything."""

    def __init__(self, banner: bytes | None = None):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.banner, self.conns = banner, []
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.banner:
                conn.sendall(self.banner)
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_silent_service_is_refused_when_the_probe_times_out(servers):
    """A port that accepts and never speaks is named once the probe's
    timeout passes: the catalogue's HTTP case goes the same way through the
    CLI (waiting out the whole SCHEDULER_TIMEOUT_S), so here the probe runs
    with a short timeout of its own."""
    from fkhw.campaign.executors import ExecutorError, probe_scheduler

    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=rf"--scheduler {servers['silent_port']}: a service answers there but "
                                            r"sent no Dask handshake within 0.5 s"):
        probe_scheduler(servers["silent_port"], timeout=0.5)
    assert 0.5 <= time.monotonic() - t0 < 5


@pytest.fixture(scope="module")
def servers():
    """A silent TCP service, an SSH-like one that greets first, a real HTTP
    server, and a closed port, all on 127.0.0.1."""
    silent, banner = _Silent(), _Silent(b"SSH-2.0-OpenSSH_9.6\r\n")
    silent.start()
    banner.start()
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    with socket.create_server(("127.0.0.1", 0)) as s:
        closed = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    yield {"silent_port": silent.address, "banner_port": banner.address, "closed_port": closed,
           "http_port": f"tcp://127.0.0.1:{http_server.server_address[1]}"}
    silent.close()
    banner.close()
    http_server.shutdown()
    http_server.server_close()


@pytest.fixture(scope="module")
def ws(small_model_dir, tmp_path_factory, servers):
    """Every placeholder of the catalogue, in one workspace folder."""
    from fkhw.campaign.files import FolderLock
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.model.bundle import load_model
    from fkhw.faults.scores import write_scores_csv

    root = tmp_path_factory.mktemp("bad_input")
    n_sites = load_model(str(small_model_dir)).ir.n_param_bits()
    camp = root / "camp"
    r = run("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--out", camp)
    assert r.returncode == 0, r.stderr
    faults_camp = root / "faults_camp"
    r = run("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults", "pipeline", "--cycle", "2",
            "--out", faults_camp)
    assert r.returncode == 0, r.stderr
    p = {"ws": root, "model": small_model_dir, "camp": camp, "faults_camp": faults_camp, "pid": os.getpid(),
         **servers, **_mismatched_models(small_model_dir, root)}
    n_ff = FlipFlopSpace.of(load_model(str(small_model_dir)).ir).n_ff
    for name, text in (("ghost_faults", f"fault,upsets\n0,1@0\n1,{n_ff}@0;2@0\n"),
                       ("late_faults", "fault,upsets\n7,0@999\n"),
                       ("malformed_faults", "fault,upsets\n0,x@y\n")):
        p[name] = root / f"{name}.csv"
        p[name].write_text(text)
    p["json_faults"] = root / "faults.json"
    p["json_faults"].write_text('[{"fault": 0, "upsets": [[1, 0]]')
    p["foreign_map"] = root / "foreign_map"
    p["foreign_map"].mkdir()
    (p["foreign_map"] / "tmr_map.json").write_text(json.dumps({
        "model": "other", "model_digest": "0123456789abcdef", "rule": {"kind": "threshold", "value": 1.05},
        "campaign": "", "campaign_level": "software", "entries": [], "totals": {"all_bits": 1}}))
    p["file"] = root / "a_file.txt"
    p["file"].write_text("not a folder\n")
    p["under"] = p["file"] / "sub"
    p["dir"] = root / "a_folder"
    p["dir"].mkdir()
    p["foreign"] = root / "foreign"
    p["foreign"].mkdir()
    (p["foreign"] / "notes.txt").write_text("someone else's\n")
    p["gz"] = root / "data.csv.gz"
    p["gz"].write_bytes(gzip.compress((Path(__file__).parents[2] / "fkhw/assets/hgcal/ttbar_0PU_5k.csv")
                                      .read_bytes()[:20000]))
    p["bin"] = root / "random.bin"
    p["bin"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    header = ",".join(f"CALQ_{i}" for i in range(48))
    p["overflow"] = root / "overflow.csv"
    p["overflow"].write_text(header + "\n" + ",".join(["1e308"] * 48) + "\n" + ",".join(["1"] * 48) + "\n")
    p["nan_data"] = root / "nan.csv"
    p["nan_data"].write_text(header + "\n" + ",".join(["nan"] + ["1"] * 47) + "\n")
    p["sites_all"] = root / "sites_all.txt"
    p["sites_all"].write_text("\n".join(map(str, range(n_sites))) + "\n")
    p["huge_sites"] = root / "huge_sites.txt"
    p["huge_sites"].write_text("0\n99999999999999999999999\n")
    p["far_sites"] = root / "far_sites.txt"
    p["far_sites"].write_text(f"0\n{n_sites}\n")
    for name, n, digest in (("scores", n_sites, None), ("other_scores", n_sites, "0" * 16),
                            ("part_scores", n_sites // 2, None)):
        p[name] = root / name
        p[name].mkdir()
        write_scores_csv(p[name] / "scores.csv", {"s": np.arange(n, dtype=float)[::-1]})
        if digest:
            (p[name] / "hessian.json").write_text(json.dumps({"digest": digest}))
    variants = {
        "summary_garbage": ("summary.json", lambda f: f.write_bytes(b"\x00\xff garbage")),
        "summary_cut": ("summary.json", _cut),
        "csv_cut": ("campaign.csv", _cut),
        "csv_nan": ("campaign.csv", _csv_with(("emd_norm", "nan"))),
        "csv_huge": ("campaign.csv", _csv_with(("site", "99999999999999999999999"))),
        "csv_binary": ("campaign.csv", lambda f: f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)),
        "npz_cut": ("outputs.npz", _cut),
        "npz_garbage": ("outputs.npz", lambda f: f.write_bytes(b"PK\x03\x04 not really a zip")),
        "npz_short": ("outputs.npz", _npz_short),
        "other_model": ("summary.json", _other_model_summary),
    }
    for name, (file, damage) in variants.items():
        p[name] = _copy_with(camp, root / name, file, damage)
    for name, (file, damage) in {"faults_npz_cut": ("outputs.npz", _cut), "faults_csv_cut": ("campaign.csv", _cut)}.items():
        p[name] = _copy_with(faults_camp, root / name, file, damage)
    p["bad_manifest"] = root / "bad_manifest"
    (p["bad_manifest"] / ".partial").mkdir(parents=True)
    (p["bad_manifest"] / ".partial" / "manifest.json").write_text('{"identity": ')
    p["locked"] = root / "locked"
    p["locked"].mkdir()
    (root / "cwd").mkdir()
    _array_inputs(p, root)
    (root / "cwd" / "out").write_text("a file where `fkhw sim` puts its default output folder\n")
    with FolderLock(p["locked"]):
        yield p


def _array_inputs(p: dict, root: Path) -> None:
    """The digits example's inputs, labels of the wrong length or classes,
    inputs of the wrong shape, and user metrics that fail (importable from
    the commands' working folder with PYTHONPATH=.)."""
    from fkhw.model.files import MODELS_DIR

    with np.load(MODELS_DIR / "digits" / "data.npz") as z:
        x = z["x"]
    p["dx"] = root / "digits_x.npy"
    np.save(p["dx"], x)
    p["short_labels"] = root / "short_labels.npy"
    np.save(p["short_labels"], np.zeros(10, dtype=np.int64))
    p["big_labels"] = root / "big_labels.npy"
    np.save(p["big_labels"], np.full(x.shape[0], 10, dtype=np.int64))
    p["x7"] = root / "x7.npy"
    np.save(p["x7"], np.zeros((5, 7, 7, 1)))
    (root / "cwd" / "bad_metrics.py").write_text(
        "import numpy as np\n"
        "def boom(outputs, labels, baseline):\n    raise RuntimeError('the metric failed')\n"
        "def nan(outputs, labels, baseline):\n    return np.full(outputs.shape[0], np.nan)\n")


def snapshot(root: Path) -> dict:
    return {str(q.relative_to(root)): (q.stat().st_size, q.stat().st_mtime_ns) if q.is_file() else "dir"
            for q in root.rglob("*")}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_naming_the_culprit_and_writes_nothing(case, ws, monkeypatch, capfd):
    fill = {k: str(v) for k, v in ws.items()}
    args = [str(a).format(**fill) for a in case.args]
    culprit = case.culprit.format(**fill)
    before = snapshot(ws["ws"])
    code, out, err = run_main([case.command, *args], ws["ws"] / "cwd", case.env, monkeypatch, capfd)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}\n{out[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fkhw {case.command}: error: "), lines[0]
    assert culprit in lines[0], f"{culprit!r} not named in: {lines[0]}"
    assert snapshot(ws["ws"]) == before, "files were written, changed or removed"


def test_every_command_meets_every_class_of_bad_input():
    """The catalogue covers each command with an unwritable output and at
    least one bad input of its own; this fails when a command is added
    without rows here."""
    from fkhw.cli import COMMANDS

    by_command = {c: {case.bad for case in CASES if case.command == c} for c in COMMANDS}
    for command, bad in by_command.items():
        outs = {"out-below-a-file", "out-empty", "out-in-a-read-only-folder"}
        assert outs <= bad, command
        assert len(bad - outs - {"out-is-a-file", "out-is-a-folder"}) >= 1, command
