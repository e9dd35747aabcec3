"""``--config`` by name: a packaged config is found from any folder, as ``tiny/backbone``, with or without
``.yaml`` or the checkout's ``configs/`` prefix; a path still wins; a near miss names the config meant."""
import pytest
from train_helpers import REPO

from video_iared.config import CONFIG_DIR, ConfigError, config_names, config_path, load_config


def test_a_packaged_name_resolves_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = CONFIG_DIR / "tiny" / "backbone.yaml"
    for name in ("tiny/backbone", "tiny/backbone.yaml", "configs/tiny/backbone.yaml"):
        assert config_path(name) == expected
    finetune = config_path("k400/iared/timesformer_base_8x224_finetune")
    assert finetune == CONFIG_DIR / "k400" / "iared" / "timesformer_base_8x224_finetune.yaml"
    by_name = load_config("clutter/finetune")
    assert by_name == load_config(REPO / "configs" / "clutter" / "finetune.yaml")
    assert by_name.model.group_starts == [0, 2, 4]  # its _base_ files resolved inside the package too


def test_a_path_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "backbone.yaml").write_text("model: {num_classes: 7}\n")
    assert load_config("tiny/backbone.yaml").model.num_classes == 7
    assert load_config("tiny/backbone").model.num_classes != 7  # no file of that name: the packaged one


def test_names_list_every_packaged_file_and_a_near_miss_names_one():
    names = config_names()
    assert {"tiny/backbone", "clutter/interpreters", "k400/timesformer_base_8x224"} <= set(names)
    assert len(names) == len(list((REPO / "configs").rglob("*.yaml")))
    with pytest.raises(ConfigError, match=r"not found: tiny/backbon;.*did you mean 'tiny/backbone'"):
        config_path("tiny/backbon")
    with pytest.raises(ConfigError, match="config file not found: /no/such.yaml"):
        load_config("/no/such.yaml")
