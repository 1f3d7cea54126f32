"""Shared fixtures.

``trained_model_dir``: a model trained from scratch by ``fkhw.model.train``
with bit widths *other* than the reference (6-bit weights and biases, 8-bit
latent), so tests can check that nothing is hard-wired to the ECON-T 5-bit
model. Trained once per session (2 epochs on 2000 vendored rows, seed 1,
a few seconds) into a temporary directory; pass ``str(trained_model_dir)``
to ``fkhw.model.bundle.load_model`` or to ``--model``. Treat it as read-only.

``vendored_inputs``: ``(charges, image)`` of the vendored HGCAL sample:
(N, 48) float64 charges and the (N, 8, 8, 1) float32 normalised image the
encoder reads.

``tf``: TensorFlow, imported the way fkhw imports it (quiet logs).

``uncached``: the model cache switched off, for tests whose point is
loading files (``pytestmark = pytest.mark.usefixtures("uncached")``).

``small_model_dir``: a small untrained model that is not ECON-T (2-filter
strided conv, 4-unit latent, 4-bit weights, its own decoder): the CLI tests
run every command on it. Made once for the whole run (tests/shared_runs.py)
and shared by both workers: treat it as read-only.

``small_sim``: one ``fkhw sim`` on the small model in a new user's cache,
shared the same way by the tests that read a whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from shared_runs import shared_folder

ROOT = Path(__file__).resolve().parents[1]

# The test files that take longest, slowest first.
# Worker-seconds in the clean-clone `make test` of e428fc1 on 2 cores (2026-12-07; other tests shared the
# machine for about 15 of its 57 minutes): 1095, 900, 824, 403, 354, 326, 313, 303, 252, 222, 213, 198, 190.
# `make test` and `make test-fast` run with --no-loadscope-reorder, so pytest-xdist hands out files
# (--dist loadfile) in this collection order: starting the long ones first keeps one worker from running
# a long file alone at the end while the other waits. tests/test_static.py checks
# that every entry names a file of the suite.
SLOWEST_FIRST = ("tests/commands/test_cli.py", "tests/rtlgen/test_rtl_makefile.py", "tests/levels/test_rtl_faults.py",
                 "tests/tmr/test_tmr_hardware.py", "tests/rtlgen/test_rtl_ecc.py", "tests/rtlgen/test_rtl_layers.py",
                 "tests/test_docs.py", "tests/review/test_digits_example.py", "tests/campaign/test_executors.py",
                 "tests/model/test_trained_layers.py", "tests/test_artifacts_agree.py",
                 "tests/rtlgen/test_netlist.py", "tests/commands/test_interrupts.py",
                 # the longest files of the fast tier (worker-seconds 136, 45, 32, 27, 21, 21 in the same run)
                 "tests/commands/test_bad_input.py", "tests/model/test_untrusted_files.py",
                 "tests/campaign/test_campaign_folder.py", "tests/analysis/test_hessian.py",
                 "tests/commands/test_resources.py", "tests/faults/test_faults_software.py")


def _rank(item) -> int:
    for i, prefix in enumerate(SLOWEST_FIRST):
        if item.nodeid == prefix or item.nodeid.startswith(prefix + "::"):
            return i
    return len(SLOWEST_FIRST)


def pytest_configure(config):
    # one compiler cache for the whole suite: a test that acts as a new user (empty FKHW_CACHE or build
    # folders) still compiles its Verilator C++ through the suite's ccache. That changes no result (ccache
    # serves a file only for the same preprocessed input), only how long a design the suite built before takes.
    from fkhw.host.cachedirs import cache_dir

    os.environ.setdefault("FKHW_CCACHE", str(cache_dir("ccache")))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the order within a file and among the rest stays as collected


TRAINED_CONFIG = dict(weight_bits=6, latent_bits=8, epochs=2, max_rows=2000, seed=1)


@pytest.fixture(scope="session")
def vendored_inputs():
    from fkhw.model.data import load_charges
    from fkhw.model.train import images

    charges = load_charges()
    return charges, images(charges)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, vendored_inputs):
    from fkhw.model.data import DEFAULT_DATA
    from fkhw.model.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained_model")
    train(TrainConfig(**TRAINED_CONFIG), vendored_inputs[0], out, data_file=DEFAULT_DATA)
    return out


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    return shared_folder(tmp_path_factory, "small_model", _write_small_model)


def _write_small_model(d):
    from fkhw.model.keras_io import import_tf
    from fkhw.model.train import legacy_json

    tf = import_tf()
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((8, 8, 1))
    x = QActivation(quantized_bits(8, 2, alpha=1), name="input_qa")(inp)
    x = QConv2D(2, 3, strides=2, padding="same", kernel_quantizer=quantized_bits(4, 1, alpha=1),
                bias_quantizer=quantized_bits(4, 1, alpha=1), name="conv")(x)
    x = QActivation(quantized_relu(8, 2), name="conv_act")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = QDense(4, kernel_quantizer=quantized_bits(4, 1, alpha=1), bias_quantizer=quantized_bits(4, 1, alpha=1),
               name="latent")(x)
    out = QActivation(quantized_relu(6, 1), name="latent_act")(x)
    encoder = tf.keras.Model(inp, out, name="encoder")
    z = tf.keras.Input((4,))
    y = tf.keras.layers.Dense(64, activation="sigmoid", name="dec_dense")(z)
    decoder = tf.keras.Model(z, tf.keras.layers.Reshape((8, 8, 1), name="dec_reshape")(y), name="decoder")
    for name, model in (("encoder_small", encoder), ("decoder_small", decoder)):
        (d / f"{name}.json").write_text(legacy_json(model))
        model.save_weights(str(d / f"{name}.hdf5"))


# One `fkhw sim` on the small model, as `make sim` runs it (hls4ml, RTL, Verilator, both campaigns, TMR with
# --protect-control, the area table, proofs, rates, replay), in a fresh declared cache (FKHW_CACHE) like a
# new user's: the CLI tests (tests/commands/test_cli.py) and the artifact checks (tests/test_artifacts_agree.py)
# read the same run, made once for the whole suite (about 100 s of a core).
SMALL_SIM_THRESHOLD = 1.002  # on the small model's campaign: a few bits by the interval's upper end, fewer by the mean
SMALL_SIM_INPUTS = 8
SMALL_SIM_VALIDATE = 256
SMALL_SIM_ARGS = ("--inputs", SMALL_SIM_INPUTS, "--max-inputs", 64, "--validate-inputs", SMALL_SIM_VALIDATE,
                  "--tmr-threshold", SMALL_SIM_THRESHOLD, "--jobs", 1)
# the caches a new user's FKHW_CACHE replaces (each has its own variable too)
CACHE_VARS = ("FKHW_RTL_BUILD", "FKHW_SYNTH_CACHE", "FKHW_NETLIST_CACHE")


def new_user_env(root) -> dict:
    """The environment of a new user: only FKHW_CACHE names where caches go (XDG_CACHE_HOME is left alone:
    Yosys' WebAssembly is compiled into it, minutes when it is empty)."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env["FKHW_CACHE"] = str(root / "cache")
    return env


@pytest.fixture(scope="session")
def small_sim(small_model_dir, tmp_path_factory):
    """The shared `fkhw sim` run: root (with cache/), out, env, returncode,
    stdout, stderr, and the files it left in the clone's build/ folder."""
    def run(root):
        before = _files(ROOT / "build")
        r = subprocess.run([str(Path(sys.executable).parent / "fkhw"), "sim", "--model", str(small_model_dir),
                            "--out", str(root / "sim"), *map(str, SMALL_SIM_ARGS)],
                           capture_output=True, text=True, timeout=2400, env=new_user_env(root))
        (root / "run.json").write_text(json.dumps({
            "returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
            "new_in_repo_build": sorted(map(str, _files(ROOT / "build") - before))}))

    root = shared_folder(tmp_path_factory, "small_sim", run)
    done = json.loads((root / "run.json").read_text())
    return SimpleNamespace(root=root, out=root / "sim", env=new_user_env(root), **done)


def _files(path) -> set:
    return set(path.rglob("*")) if path.exists() else set()


@pytest.fixture(scope="session")
def tf():
    from fkhw.model.keras_io import import_tf

    return import_tf()


@pytest.fixture
def uncached(monkeypatch):
    monkeypatch.setenv("FKHW_CACHE", "off")


# --- econt-bol, the reference model: sizes come from it, never from constants ---

@pytest.fixture(scope="session")
def bol():
    """The econt-bol bundle (read-only)."""
    from fkhw.model.bundle import load_model

    return load_model("econt-bol")


@pytest.fixture(scope="session")
def bol_ir(bol):
    """econt-bol's integer IR."""
    return bol.ir


@pytest.fixture(scope="session")
def bol_sites(bol_ir):
    """How many single-bit sites econt-bol has (every parameter bit)."""
    from fkhw.faults.sites import SiteSpace

    return SiteSpace.of(bol_ir).n_sites
