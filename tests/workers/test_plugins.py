"""Plugins: a user's module registers a kind; it is loaded at start, recorded in the trial spec,
and a broken one is named clearly at start."""
from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import srm_models
from workers.plugins import PluginError, load_plugins
from workers.spec import TrialSpec

PLUGIN = "tests.plugins.scalegate"
PLUGIN_FILE = Path(__file__).resolve().parent.parent / "plugins" / "scalegate.py"


def scalegate_spec(**change) -> TrialSpec:
    return TrialSpec(**{"dataset": "textures", "backbone": "cifar_resnet20", "variant": {"kind": "scalegate"},
                        "fold": 0, "n_folds": 2} | change)


def test_a_plugin_named_in_the_environment_registers_its_kind(isolated_kinds, monkeypatch):
    assert "scalegate" not in srm_models.variant_kinds()
    monkeypatch.setenv("SRM_BENCH_PLUGINS", f" {PLUGIN} ,")
    assert load_plugins() == [PLUGIN]
    assert srm_models.variant_kinds()[-1] == "scalegate"
    assert {"scalegate_cifar_resnet56", "scalegate_resnet50"} <= set(srm_models.list_models())
    model = srm_models.create_model("scalegate_cifar_resnet20", block="basic", init=1.5)
    gates = [m for m in model.modules() if type(m).__name__ == "ScaleGate"]
    assert len(gates) == 9 and float(gates[0].weight.detach().mean()) == 1.5

    spec = scalegate_spec()
    assert spec.plugin == {"module": PLUGIN, "version": "0.3.1",
                           "source_sha256": hashlib.sha256(PLUGIN_FILE.read_bytes()).hexdigest()}
    assert TrialSpec.from_dict(spec.to_dict()) == spec
    assert TrialSpec("textures", "cifar_resnet20", {"kind": "srm"}).plugin is None  # built-ins: the code version


def test_a_changed_plugin_is_another_trial_and_never_runs_as_the_old_one(isolated_kinds, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_PLUGINS", PLUGIN)
    load_plugins()
    planned = scalegate_spec().to_dict()
    changed = planned | {"plugin": planned["plugin"] | {"source_sha256": "0" * 64}}
    with pytest.raises(ValueError, match="is not the code this trial was planned with.*submit the job again"):
        TrialSpec.from_dict(changed)
    # the content hash covers the plugin record: same spec, other plugin code, other hash
    same = scalegate_spec()
    assert same.content_hash("fp") == scalegate_spec(job_id="other").content_hash("fp")
    other_code = copy.copy(same)
    object.__setattr__(other_code, "plugin", changed["plugin"])  # as planned by another process
    assert other_code.content_hash("fp") != same.content_hash("fp")


def test_a_worker_imports_the_plugin_its_trial_names(isolated_kinds, monkeypatch):
    """A Ray worker has no SRM_BENCH_PLUGINS: the spec's plugin record is enough to rebuild the kind."""
    monkeypatch.setenv("SRM_BENCH_PLUGINS", PLUGIN)
    load_plugins()
    planned = scalegate_spec().to_dict()
    srm_models.layers.kinds._KINDS.pop("scalegate")
    del sys.modules[PLUGIN]
    monkeypatch.delenv("SRM_BENCH_PLUGINS")
    assert TrialSpec.from_dict(planned).model_name() == "scalegate_cifar_resnet20"
    with pytest.raises(ValueError, match="comes from plugin 'no.such.plugin', which does not load here"):
        TrialSpec.from_dict(planned | {"variant": {"kind": "othergate"}, "plugin": {"module": "no.such.plugin"}})


def test_an_installed_package_declares_its_plugin_by_entry_point(isolated_kinds, monkeypatch, tmp_path):
    dist = tmp_path / "scalegate_plugin-0.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: scalegate-plugin\nVersion: 0.3.1\n")
    (dist / "entry_points.txt").write_text(f"[srm_bench.recalibrations]\nscalegate = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SRM_BENCH_PLUGINS", raising=False)
    assert load_plugins() == [PLUGIN]
    assert "scalegate" in srm_models.variant_kinds()


def test_broken_plugins_are_named_with_their_errors(isolated_kinds, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_PLUGINS", "tests.plugins.broken,no_such_plugin_module")
    with pytest.raises(PluginError) as caught:
        load_plugins()
    message = str(caught.value)
    assert "'tests.plugins.broken' (SRM_BENCH_PLUGINS): RuntimeError: scalegate2 needs a CUDA build" in message
    assert "'no_such_plugin_module' (SRM_BENCH_PLUGINS): ModuleNotFoundError" in message


def test_the_cli_the_service_and_the_worker_command_refuse_to_start_with_a_broken_plugin(
        isolated_kinds, monkeypatch, srm_home, capsys):
    from service.api import create_app
    from service.cli import app
    from workers.__main__ import main as worker_main

    monkeypatch.setenv("SRM_BENCH_PLUGINS", "tests.plugins.broken")
    result = CliRunner().invoke(app, ["presets"])
    assert result.exit_code == 1
    assert "could not load recalibration plugin 'tests.plugins.broken'" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(PluginError, match="tests.plugins.broken"):
        create_app(f"sqlite:///{srm_home / 'x.db'}")
    assert worker_main(["--variant", "srm"]) == 2
    assert "tests.plugins.broken" in capsys.readouterr().err


def test_registration_rules(isolated_kinds):
    from srm_models import InvalidArgumentError, Recalibration, register_recalibration

    class Gate(Recalibration):
        def __init__(self, channels: int) -> None:
            super().__init__()

        def forward(self, x):
            return x

    for bad in ("my_gate", "Gate", "baseline", "2gate", ""):
        with pytest.raises(InvalidArgumentError, match="lower-case letters and digits"):
            register_recalibration(bad, Gate, description="a gate")
    with pytest.raises(InvalidArgumentError, match="not a subclass of srm_models.Recalibration"):
        register_recalibration("gate", object, description="a gate")
    with pytest.raises(InvalidArgumentError, match="already registered by srm_models.layers.srm.SRM"):
        register_recalibration("srm", Gate, description="a gate")
    register_recalibration("gate2", Gate, description="a gate")
    register_recalibration("gate2", Gate, description="a gate")  # the same class again: a no-op
    assert srm_models.model_name("gate2", "resnet18") == "gate2_resnet18"
    assert srm_models.model_name("baseline", "resnet18") == "resnet18"
