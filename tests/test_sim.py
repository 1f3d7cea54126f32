"""`fkhw sim` end to end on a small model that is not ECON-T (the flow is
general): 2-filter conv, 4-unit latent, its own decoder. Every stage runs
for real: hls4ml, RTL + lint, Verilator, both campaigns, agreement, TMR with
hardened RTL and proof, and at gate level the Yosys netlists of the plain and
hardened designs with the proof after synthesis (area synthesis is covered
by test_tmr_hardware)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
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
    d = tmp_path_factory.mktemp("small_model")
    for name, model in (("encoder_small", encoder), ("decoder_small", decoder)):
        (d / f"{name}.json").write_text(legacy_json(model))
        model.save_weights(str(d / f"{name}.hdf5"))
    return d


def test_sim_runs_the_whole_flow_on_a_small_model(small_model_dir, tmp_path):
    out = tmp_path / "sim"
    r = subprocess.run([sys.executable, "-m", "fkhw", "sim", "--model", str(small_model_dir), "--out", str(out),
                        "--inputs", "8", "--jobs", "1", "--no-synth", "--tmr-threshold", "1.0", "--gate-level"],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for k in range(1, 11):
        assert f"[{k}/10]" in r.stdout
    s = json.loads((out / "sim_summary.json").read_text())
    assert s["hls"]["mismatching_rows"] == 0 and s["functional"]["mismatching_rows"] == 0
    assert s["rtl"]["lint"] == "clean"
    n_sites = (2 * 9 + 2) * 4 + (32 * 4 + 4) * 4
    assert s["agreement"] == {"common_sites": n_sites, "disagreeing_sites": 0}
    # gate level: the Yosys netlist, every flip-flop named, == engine on every row
    assert s["netlist"]["mismatching_rows"] == 0 and s["netlist"]["unmapped_flip_flops"] == 0
    assert s["netlist"]["parameter_bits_found"] == n_sites
    report = json.loads((out / "tmr" / "tmr_report.json").read_text())
    assert report["proof"]["ok"] and report["proof"]["protected_output_changes"] == 0
    # the proof after synthesis: three flip-flops per protected bit in the hardened netlist
    pn = report["proof_netlist"]
    assert pn["ok"] and pn["protected_output_changes"] == 0 and pn["protected_tmr_err_misses"] == 0
    assert pn["netlist"]["replica_flip_flops_found"] == 2 * report["protected_bits"]
    assert report["hardened_campaign"]["within_threshold"]
    assert 0 < report["protected_bits"] < n_sites
    for artifact in ("hls/fkhw_project.json", "rtl/fkhw_encoder.v", "rtl/regmap.csv", "campaign_rtl/campaign.csv",
                     "campaign_rtl/agreement.json", "campaign_software/figure1.png", "tmr/tmr_map.json",
                     "tmr/hardened_rtl/regmap.csv", "tmr/annotations/README.md", "tmr/proof.json",
                     "netlist/fkhw_encoder_netlist.v", "netlist/netlist_regmap.csv", "tmr/proof_netlist.json"):
        assert (out / artifact).is_file(), artifact
    rtl = np.load(out / "campaign_rtl" / "outputs.npz")
    assert rtl["latent"].shape == (n_sites, 8, 4)
