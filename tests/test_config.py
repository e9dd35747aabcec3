"""The typed, layered config: defaults -> YAML (with _base_) -> key=value overrides."""
import os

import pytest
import yaml
from train_helpers import REPO

from video_iared.cli import report_model_cost
from video_iared.config import Config, ConfigError, config_from_dict, load_config, parse_override
from video_iared.models.build import check_decision

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def test_defaults_are_the_official_recipe():
    cfg = load_config()
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.global_batch) == ("sgd", 0.005, 64)
    assert cfg.optim.lr_steps == [11, 14] and cfg.optim.epochs == 15 and cfg.optim.nesterov


def test_layers_apply_in_order(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {num_classes: 10, drop_path_rate: 0.2}\noptim: {lr: 0.1}\n")
    (tmp_path / "exp.yaml").write_text("_base_: base.yaml\noptim: {lr: 0.01}\n")
    cfg = load_config(tmp_path / "exp.yaml", ["optim.lr=0.5", "model.group_starts=[0,4,8]"])
    assert cfg.model.num_classes == 10 and cfg.model.drop_path_rate == 0.2
    assert cfg.optim.lr == 0.5
    assert cfg.model.group_starts == [0, 4, 8]


def test_misspelled_key_names_the_nearest(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*did you mean 'lr'"):
        load_config(None, ["optim.lrr=0.1"])
    (tmp_path / "bad.yaml").write_text("modle: {num_classes: 3}\n")
    with pytest.raises(ConfigError, match=r"'modle'.*did you mean 'model'"):
        load_config(tmp_path / "bad.yaml")


def test_types_and_choices_are_checked():
    with pytest.raises(ConfigError, match="expects int"):
        load_config(None, ["model.num_classes=ten"])
    with pytest.raises(ConfigError, match="must be one of divided_space_time"):
        load_config(None, ["model.attention_type=divided"])
    with pytest.raises(ConfigError, match="is a section"):
        load_config(None, ["optim=3"])
    assert load_config(None, ["optim.lr=1"]).optim.lr == 1.0  # int widened to float
    assert load_config(None, ["model.num_frames=null"]).model.num_frames is None


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="not found"):
        load_config("does/not/exist.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("optim.lr")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["run.seed=7", "data.train_jitter_scales=[40,48]"])
    cfg.save(tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again == cfg and isinstance(again, Config)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["run"]["seed"] == 7


def test_a_partial_is_merged_as_a_base_and_refused_alone(tmp_path):
    (tmp_path / "model.yaml").write_text("model: {num_classes: 10}\n")
    (tmp_path / "stage.yaml").write_text("_layer_on_: model.yaml\noptim: {lr: 0.1}\n")
    (tmp_path / "run.yaml").write_text("_base_: [model.yaml, stage.yaml]\n")
    cfg = load_config(tmp_path / "run.yaml")
    assert cfg.model.num_classes == 10 and cfg.optim.lr == 0.1
    with pytest.raises(ConfigError, match=r"stage.yaml is a partial config.*such as .*model.yaml"):
        load_config(tmp_path / "stage.yaml")


BIG = ("hr_16x448", "l_96x224")  # TimeSformer-HR and -L take most of a minute to build on a CPU


@pytest.mark.parametrize("path", [pytest.param(path, marks=pytest.mark.slow)
                                  if any(big in path.name for big in BIG) else path for path in CONFIGS],
                         ids=lambda path: str(path.relative_to(REPO / "configs")))
def test_every_config_builds_or_names_its_base(path, tmp_path):
    """``video-iared flops`` (its config checks, the model built, no weights) works on every file under
    configs/, or the file is a partial whose ConfigError names the model config to layer it on — and
    layered, it works."""
    def flops(config_path) -> str:
        cfg = load_config(config_path)
        check_decision(cfg.iared, len(cfg.model.group_starts))  # what every command checks
        return report_model_cost(cfg)

    try:
        report = flops(path)
    except ConfigError as err:
        base = os.path.normpath(path.parent / yaml.safe_load(path.read_text())["_layer_on_"])
        assert f"layered on a model config such as {base}" in str(err)
        (tmp_path / "layered.yaml").write_text(yaml.safe_dump({"_base_": [base, str(path)]}))
        report = flops(tmp_path / "layered.yaml")
    assert "GFLOPs per view" in report


def test_a_renamed_key_is_read_under_its_new_name():
    """Configs and checkpoints written before the rename say model.interpreter_blocks."""
    cfg = config_from_dict({"model": {"interpreter_blocks": [0, 2]}}, ["model.interpreter_blocks=[1,3]"])
    assert cfg.model.group_starts == [1, 3] and "interpreter_blocks" not in cfg.to_dict()["model"]
