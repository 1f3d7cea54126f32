"""Untrusted files are data, never code (issue 23).

Each malicious file is built here with a payload that creates a marker
file when it runs: a Keras ``Lambda`` whose body writes it, a ``module``
that Keras would import (``fkhw_payload.py`` in the working folder, which
``python -m fkhw`` puts on ``sys.path``), a pickled object whose
``__reduce__`` writes it. Every command given such a file must end with
exit status 2 and one line naming the file and the offending layer or
class, and the marker must not exist afterwards. The legitimate shipped
models and full-model files still load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_MODULE = "fkhw_payload"


class Payload:
    """Pickled, runs ``open(marker, 'w')``: what an object array in an
    ``.npy`` or ``.npz`` file can carry."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def run(ws: Path, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m fkhw`` from the workspace, as a user runs it in the folder
    holding downloaded files (the folder is then on ``sys.path``)."""
    # the workspace's own model cache: a test never reads or fills the user's
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FKHW_CACHE": str(ws / "model_cache")}
    return subprocess.run([sys.executable, "-m", "fkhw", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ws, env=env)


def refused(ws: Path, command: str, *args, names: tuple) -> None:
    """The command refuses in one line naming ``names``, and no payload ran."""
    marker = ws / "PAYLOAD_RAN"
    marker.unlink(missing_ok=True)
    r = run(ws, command, *args)
    assert not marker.exists(), f"the payload ran: {r.stderr[-2000:]}"
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith(f"fkhw {command}: error: "), r.stderr[-3000:]
    missing = [n for n in names if str(n) not in lines[0]]
    assert not missing, f"{missing} not named in: {lines[0]}"


def _classifier(tf, head=None):
    """A small QKeras classifier on 8x8x1 inputs; ``head`` (a layer or
    model) is applied to the input first."""
    from qkeras import QActivation, QDense, quantized_bits

    inp = tf.keras.Input((8, 8, 1), name="pixels")
    x = head(inp) if head is not None else inp
    x = QActivation(quantized_bits(6, 1, alpha=1), name="in_q")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(10, kernel_quantizer=quantized_bits(4, 1, alpha=1), bias_quantizer=quantized_bits(4, 1, alpha=1),
               name="logits")(x)
    return tf.keras.Model(inp, x, name="clf")


def _lambda(tf, marker: Path, name: str = "evil"):
    """A Lambda whose body creates ``marker``: it runs whenever Keras builds
    the layer into a model (marshalled into the file by ``model.save``)."""
    body = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # a literal path: no closure to pickle
    return tf.keras.layers.Lambda(body, name=name)


def _module_pointing(config: dict) -> dict:
    """The QDense layer's class looked up in PAYLOAD_MODULE: Keras imports
    a module a layer names when its registered name is not one it knows."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "QDense":
            layer["module"], layer["registered_name"] = PAYLOAD_MODULE, "PayloadDense"
    return config


def _unregistered(config: dict) -> dict:
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "QDense":
            layer["class_name"] = layer["registered_name"] = "PayloadDense"
            layer["module"] = PAYLOAD_MODULE
    return config


def _rewrite_h5(src: Path, dst: Path, change) -> Path:
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = json.dumps(change(json.loads(f.attrs["model_config"])))
    return dst


def _rewrite_keras(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            data = z.read(name)
            out.writestr(name, json.dumps(change(json.loads(data))) if name == "config.json" else data)
    return dst


@pytest.fixture(scope="module")
def ws(tf, tmp_path_factory):
    """The workspace (the commands' working folder) and its files."""
    from fkhw.model.train import legacy_json

    ws = tmp_path_factory.mktemp("untrusted")
    marker = ws / "PAYLOAD_RAN"
    (ws / f"{PAYLOAD_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').close()\nPayloadDense = None\n")
    p = {}
    lam = _classifier(tf, _lambda(tf, marker))
    for suffix in ("h5", "keras"):
        p[f"lambda_{suffix}"] = ws / f"lambda.{suffix}"
        lam.save(str(p[f"lambda_{suffix}"]))
    good = _classifier(tf)
    for suffix in ("h5", "keras"):
        p[f"good_{suffix}"] = ws / "good" / f"good.{suffix}"
        p[f"good_{suffix}"].parent.mkdir(exist_ok=True)
        good.save(str(p[f"good_{suffix}"]))
    p["module_h5"] = _rewrite_h5(p["good_h5"], ws / "module.h5", _module_pointing)
    p["module_keras"] = _rewrite_keras(p["good_keras"], ws / "module.keras", _module_pointing)
    p["unregistered_h5"] = _rewrite_h5(p["good_h5"], ws / "unregistered.h5", _unregistered)
    # a model folder whose encoder nests a sub-model that holds the Lambda
    inner = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), _lambda(tf, marker, "deep_evil")], name="prep")
    nested = _classifier(tf, inner)
    p["nested_dir"] = ws / "nested_lambda"
    p["nested_dir"].mkdir()
    (p["nested_dir"] / "encoder_clf.json").write_text(legacy_json(nested))
    nested.save_weights(str(p["nested_dir"] / "encoder_clf.hdf5"))
    # the same nesting, the sub-model's layer naming a module to import
    p["nested_module_dir"] = ws / "nested_module"
    p["nested_module_dir"].mkdir()
    config = json.loads(legacy_json(_classifier(tf, tf.keras.Sequential(
        [tf.keras.Input((8, 8, 1)), tf.keras.layers.Reshape((8, 8, 1), name="deep_reshape")], name="prep"))))
    prep = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Sequential")
    prep["config"]["layers"][-1].update(module=PAYLOAD_MODULE, registered_name="PayloadReshape")
    (p["nested_module_dir"] / "encoder_clf.json").write_text(json.dumps(config))
    good.save_weights(str(p["nested_module_dir"] / "encoder_clf.hdf5"))
    # arrays holding pickled objects
    objects = np.array([Payload(marker)] * 4, dtype=object)
    p["npy"] = ws / "objects.npy"
    np.save(p["npy"], objects, allow_pickle=True)
    p["npz"] = ws / "objects.npz"
    np.savez(p["npz"], x=objects, y=objects)
    marker.unlink(missing_ok=True)  # building the Lambda models ran their bodies here, on purpose
    return {"ws": ws, **p}


@pytest.mark.parametrize("model, names", [
    ("lambda_h5", ("lambda.h5", "'evil'", "Lambda")),
    ("lambda_keras", ("lambda.keras", "'evil'", "Lambda")),
    ("module_h5", ("module.h5", "'logits'", PAYLOAD_MODULE)),
    ("module_keras", ("module.keras", "'logits'", PAYLOAD_MODULE)),
    ("unregistered_h5", ("unregistered.h5", "'logits'", "PayloadDense")),
    ("nested_dir", ("encoder_clf.json", "'deep_evil'", "Lambda")),
    ("nested_module_dir", ("encoder_clf.json", "'deep_reshape'", PAYLOAD_MODULE)),
])
def test_a_model_file_that_would_run_code_is_refused_before_loading(ws, model, names):
    refused(ws["ws"], "sites", "--model", ws[model], "--out", ws["ws"] / "sites.csv", names=names)
    assert not (ws["ws"] / "sites.csv").exists()


@pytest.mark.parametrize("option, other", [
    ("--data", ("--metric", "mse")),
    ("--labels", ("--metric", "accuracy", "--data", "{digits_data}")),
])
@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_arrays_of_pickled_objects_are_refused_unread(ws, option, other, kind):
    from fkhw.model.files import MODELS_DIR

    other = [a.format(digits_data=MODELS_DIR / "digits" / "data.npz") for a in other]
    refused(ws["ws"], "campaign", "--model", "digits", *other, option, ws[kind], "--inputs", "4",
            "--out", ws["ws"] / "camp_out", names=(ws[kind], "Object arrays"))


def test_hessian_refuses_an_array_of_pickled_objects(ws):
    refused(ws["ws"], "hessian", "--model", "digits", "--data", ws["npz"], "--metric", "mse", "--inputs", "4",
            "--out", ws["ws"] / "hessian_out", names=(ws["npz"], "Object arrays"))


@pytest.fixture(scope="module")
def campaign(ws):
    """A finished campaign of a full-model .h5 classifier (a copy of the
    digits example) that sits inside the campaign's own folder."""
    from fkhw.model.files import MODELS_DIR

    camp, src = ws["ws"] / "campaign", ws["ws"] / "campaign_model"
    src.mkdir()
    shutil.copy(MODELS_DIR / "digits" / "model.h5", src / "model.h5")
    # fkhw refuses an --out that holds its own model: the file goes in once the campaign has run
    r = run(ws["ws"], "campaign", "--model", src / "model.h5", "--data", MODELS_DIR / "digits" / "data.npz",
            "--labels", MODELS_DIR / "digits" / "data.npz", "--metric", "accuracy", "--inputs", "8", "--out", camp)
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.copy(src / "model.h5", camp / "model.h5")
    summary = json.loads((camp / "summary.json").read_text())
    summary["spec"]["model"] = str(camp / "model.h5")
    (camp / "summary.json").write_text(json.dumps(summary))
    return camp


def _handed_over(ws, campaign: Path, name: str, digest_of_payload: bool) -> Path:
    """The campaign folder with its model.h5 replaced by the Lambda model;
    its summary names that file, with the payload's own digest (a careful
    attacker) or the original one."""
    from fkhw.model.files import resolve

    dest = ws["ws"] / name
    shutil.copytree(campaign, dest)
    shutil.copy(ws["lambda_h5"], dest / "model.h5")
    summary = json.loads((dest / "summary.json").read_text())
    summary["spec"]["model"] = str(dest / "model.h5")
    if digest_of_payload:
        summary["model_digest"] = resolve(str(dest / "model.h5")).digest()
    (dest / "summary.json").write_text(json.dumps(summary))
    return dest


@pytest.mark.parametrize("command, extra", [("tmr", ("--no-synth", "--no-prove")), ("rate", ())])
def test_a_campaign_folder_naming_a_model_file_inside_it_runs_no_code(ws, campaign, command, extra):
    dest = _handed_over(ws, campaign, f"handed_{command}", digest_of_payload=True)
    refused(ws["ws"], command, "--campaign", dest, *extra, "--out", ws["ws"] / f"{command}_out",
            names=(dest / "model.h5", "'evil'", "Lambda"))


@pytest.mark.parametrize("command, extra", [("tmr", ("--no-synth", "--no-prove")), ("rate", ())])
def test_a_campaign_model_is_checked_against_its_digest_before_it_loads(ws, campaign, command, extra):
    dest = _handed_over(ws, campaign, f"swapped_{command}", digest_of_payload=False)
    refused(ws["ws"], command, "--campaign", dest, *extra, "--out", ws["ws"] / f"{command}_swapped_out",
            names=(dest / "model.h5", "is not the one the campaign ran on"))


@pytest.mark.parametrize("key, value", [
    ("model_digest", 12345),
    ("model_digest", "../../etc/passwd"),
    ("model", ["model.h5"]),
    ("spec", "model.h5"),
    ("spec.model", {"class_name": "Lambda"}),
])
def test_a_campaign_summary_names_its_model_with_text_only(ws, campaign, key, value):
    dest = ws["ws"] / f"summary_{key}_{type(value).__name__}"
    shutil.copytree(campaign, dest)
    summary = json.loads((dest / "summary.json").read_text())
    if key == "spec.model":
        summary["spec"]["model"] = value
    else:
        summary[key] = value
    (dest / "summary.json").write_text(json.dumps(summary))
    refused(ws["ws"], "rate", "--campaign", dest, "--out", ws["ws"] / "rate_summary_out",
            names=(dest / "summary.json", key))


def test_the_campaign_itself_still_reads_its_model(ws, campaign):
    r = run(ws["ws"], "rate", "--campaign", campaign, "--samples", "10", "--out", ws["ws"] / "rate_ok")
    assert r.returncode == 0, r.stderr[-3000:]


# -- the check itself, on configs (no TensorFlow)

def _config(*layers) -> dict:
    return {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in"}, "name": "in", "inbound_nodes": []}, *layers]}}


def _qdense(**changes) -> dict:
    cfg = {"name": "d", "units": 2, "kernel_quantizer": {"class_name": "quantized_bits", "config": {"bits": 4}},
           "kernel_initializer": {"class_name": "QInitializer", "config": {
               "initializer": {"class_name": "HeNormal", "config": {}},
               "quantizer": {"class_name": "quantized_bits", "config": {}}}}}
    cfg.update(changes)
    return {"class_name": "QDense", "config": cfg, "name": "d", "inbound_nodes": []}


@pytest.mark.parametrize("config, words", [
    (_config({"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
        "class_name": "Lambda", "config": {"name": "inner", "function": ["YWJj", None, None]}}}}),
     ("'td' (TimeDistributed)",)),
    (_config({"class_name": "Sequential", "config": {"name": "sub", "layers": [{
        "class_name": "Functional", "config": {"name": "subsub", "layers": [
            {"class_name": "Lambda", "config": {"name": "deep", "function": "x"}}]}}]}}),
     ("'deep' (Lambda)",)),
    (_config(_qdense(kernel_initializer={"class_name": "function", "module": "os", "config": "system"})),
     ("'d' (QDense) kernel_initializer", "function")),
    (_config(_qdense(kernel_initializer={"class_name": "QInitializer", "config": {
        "initializer": {"class_name": "HeNormal", "module": "payload.init", "config": {}}}})),
     ("'d' (QDense) kernel_initializer (QInitializer) initializer (HeNormal)", "'payload.init'")),
    (_config(_qdense(kernel_quantizer={"class_name": "quantized_bits", "registered_name": "Custom>bits",
                                       "config": {}})), ("'d' (QDense) kernel_quantizer", "'Custom>bits'")),
    (_config(_qdense(kernel_quantizer="set_internal_sigmoid('hard')")), ("'d' (QDense) kernel_quantizer",)),
    (_config(_qdense(activation="get_quantizer('quantized_bits(4)')")), ("'d' (QDense) activation",)),
    (_config(_qdense(function_type="lambda")), ("'d' (QDense)", "function_type")),
    ({"class_name": "Lambda", "config": {}}, ("'Lambda'",)),
    ([1, 2], ("not a Keras model config",)),
])
def test_the_config_check_refuses_code_at_any_depth(config, words):
    from fkhw.model.files import ModelFileError
    from fkhw.model.safe_config import checked_config

    with pytest.raises(ModelFileError) as info:
        checked_config(config, Path("m.json"))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("m.json: ") and all(w in msg for w in words), msg


def test_the_config_check_keeps_supported_models_and_drops_compile_settings():
    from fkhw.model.safe_config import checked_config

    config = _config(_qdense(activation="quantized_relu(6, 2)"))
    config["compile_config"] = {"loss": {"class_name": "function", "module": "payload", "config": "loss"}}
    config["config"]["layers"].append({"class_name": "Sequential", "module": "keras", "config": {
        "name": "sub", "layers": []}, "compile_config": {"optimizer": {"class_name": "Adam"}}})
    out = checked_config(config, Path("m.json"))
    assert "compile_config" not in out and "compile_config" not in out["config"]["layers"][-1]
    assert out["config"]["layers"][1] == config["config"]["layers"][1]


# -- what is legitimate still loads

@pytest.mark.parametrize("name", ["econt-bol", "digits", "fkeras-eol"])
def test_the_shipped_models_still_load(name, monkeypatch):
    from fkhw.model.bundle import load_model

    monkeypatch.setenv("FKHW_CACHE", "off")
    assert load_model(name).ir.n_param_bits() > 0


@pytest.mark.parametrize("suffix", ["h5", "keras"])
def test_a_legitimate_full_model_file_still_loads(ws, suffix):
    r = run(ws["ws"], "sites", "--model", ws[f"good_{suffix}"], "--out", ws["ws"] / f"good_{suffix}.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (ws["ws"] / f"good_{suffix}.csv").is_file()
