"""The FKeras paper's own model (fkeras-eol): FKeras layer files read as they are."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fkhw.campaign.run import make_workload
from fkhw.levels.qkeras import QKerasLevel
from fkhw.levels.software import SoftwareLevel
from fkhw.model.bundle import load_model
from fkhw.model.files import ModelFileError, resolve
from fkhw.faults.sites import SiteSpace


@pytest.fixture(scope="module")
def fkeras():
    return load_model("fkeras-eol")


def test_the_vendored_files_are_fkeras_layer_files(fkeras):
    layers = json.loads(resolve("fkeras-eol").encoder_json.read_text())["config"]["layers"]
    classes = [layer["class_name"] for layer in layers]
    assert "FQConv2D" in classes and "FQDense" in classes
    assert [layer.kind for layer in fkeras.ir.layers if layer.kind in ("conv2d", "dense")] == ["conv2d", "dense"]


def test_engine_and_faults_equal_qkeras_on_the_fkeras_model(fkeras):
    work = make_workload(fkeras, None, 64, 5)
    keras = QKerasLevel(fkeras)
    software = SoftwareLevel(fkeras.ir)
    np.testing.assert_array_equal(software.golden(work.inputs), keras.golden(work.inputs))
    space = SiteSpace.of(fkeras.ir)
    tn, _, bit = space.locate(np.arange(space.n_sites))
    sample = np.array(sorted({int(np.flatnonzero((tn == k) & (bit == b))[3])
                              for k in range(len(space.tensors)) for b in (0, 1)}))
    got, want = software.run(sample, work.inputs), keras.run(sample, work.inputs)
    assert int((got != want).sum()) == 0
    assert np.any(want != software.golden(work.inputs)[None]), "sign-bit upsets must change some output"


def test_an_fkeras_layer_that_injects_faults_itself_is_refused(tmp_path):
    src = resolve("fkeras-eol")
    for p in src.directory.iterdir():
        shutil.copy(p, tmp_path / p.name)
    enc = tmp_path / src.encoder_json.name
    d = json.loads(enc.read_text())
    fq = next(layer for layer in d["config"]["layers"] if layer["class_name"] == "FQDense")
    fq["config"]["ber"] = 0.01
    enc.write_text(json.dumps(d))
    from fkhw.model.keras_io import load_encoder

    with pytest.raises(ModelFileError, match="encoded_vector.*FQDense.*ber = 0.01"):
        load_encoder(resolve(str(tmp_path)))
