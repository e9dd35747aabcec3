"""Every known user error ends any subcommand with one line on stderr and exit status 2; a bug keeps
its traceback (issue: no silent wrong results, every user error one clear line)."""
from __future__ import annotations

import pytest
from error_fixtures import save_checkpoint, write_three_class_set
from user_error_helpers import one_line_error

from video_iared import cli
from video_iared.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_three_class_set(tmp_path_factory.mktemp("user_errors"))
    return {"root": root, "ckpt": save_checkpoint(root / "tiny.pth", [f"data.root={root}"])}


def evaluate(data, *overrides: str, checkpoint=None) -> list[str]:
    return ["evaluate", "--checkpoint", str(checkpoint or data["ckpt"]), "--warmup", "0", *overrides]


@pytest.mark.parametrize("content, message", [
    ("", "no items"),
    ("videos/0.mp4 zero\n", "test.csv:1: expected 'path label'"),
    ("elsewhere/0.mp4 0\nelsewhere/1.mp4 1\n", "none of the 2 videos checked"),
])
def test_bad_lists(data, tmp_path, capsys, content, message):
    (tmp_path / "test.csv").write_text(content)
    err = one_line_error(evaluate(data, f"data.root={tmp_path}"), capsys)
    assert "data.test_list" in err and message in err


def test_a_test_list_of_unreadable_videos(data, tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    for i in range(2):
        (tmp_path / "videos" / f"{i}.mp4").write_bytes(b"\x00\x01not a video" * 100)
    (tmp_path / "test.csv").write_text("videos/0.mp4 0\nvideos/1.mp4 1\n")
    err = one_line_error(evaluate(data, f"data.root={tmp_path}", "data.num_workers=0",
                                  f"run.output_dir={tmp_path / 'out'}"), capsys)
    assert "no readable video was evaluated" in err


def test_missing_list_and_missing_test_csv(data, tmp_path, capsys):
    err = one_line_error(evaluate(data, f"data.root={tmp_path}"), capsys)  # a dataset without test.csv
    assert f"no list at {tmp_path / 'test.csv'}" in err
    err = one_line_error(evaluate(data, f"data.root={data['root']}", "data.test_list=nope.csv"), capsys)
    assert "nope.csv" in err


def test_missing_html_and_damaged_checkpoints(data, tmp_path, capsys):
    err = one_line_error(evaluate(data, checkpoint=tmp_path / "nope.pth"), capsys)
    assert "no checkpoint at" in err and "nope.pth" in err
    page = tmp_path / "model.pth"
    page.write_text("<!DOCTYPE html>\n<html><body>Sign in to download</body></html>\n")
    err = one_line_error(evaluate(data, checkpoint=page), capsys)
    assert "is a web page, not a checkpoint" in err and "beyond tensors" not in err
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data["ckpt"].read_bytes()[:5000])
    assert "damaged or cut short" in one_line_error(evaluate(data, checkpoint=cut), capsys)


def test_wrong_model_checkpoint_in_evaluate(data, tmp_path, capsys):
    config = tmp_path / "wide.yaml"
    config.write_text("model:\n  name: timesformer_tiny6_patch8_32\n  num_classes: 3\n"
                      "data:\n  num_workers: 0\n")
    err = one_line_error([*evaluate(data, f"data.root={data['root']}"), "--config", str(config)], capsys)
    assert "does not fit" in err and "problems" in err


@pytest.mark.parametrize("budget, message", [
    ("0.5", "has 1 keep ratios for 4 interpreter groups"),
    ("[1.5,0.3,0.2,0.1]", "non-increasing keep ratios in (0, 1]"),
    ("[0.1,0.2,0.3,0.4]", "non-increasing keep ratios in (0, 1]"),
])
def test_flops_checks_budgets_as_train_does(capsys, budget, message):
    argv = ["flops", "--config", "configs/tiny/finetune.yaml", f"iared.budget={budget}"]
    err = one_line_error(argv, capsys)
    assert "iared.budget" in err and message in err


def test_flops_keep_ratio_is_checked(capsys):
    err = one_line_error(["flops", "--config", "configs/tiny/finetune.yaml", "--keep-ratio", "1.5"], capsys)
    assert "--keep-ratio 1.5" in err and "(0, 1]" in err
    err = one_line_error(["flops", "--config", "configs/tiny/backbone.yaml", "--keep-ratio", "0.5"], capsys)
    assert "dense" in err


@pytest.mark.parametrize("flag, value", [("--final-keeps", "0.5,1.5"), ("--keep-ratios", "0"),
                                         ("--threshold-points", "-0.2")])
def test_sweep_points_are_checked(data, capsys, flag, value):
    err = one_line_error(["sweep", "--checkpoint", str(data["ckpt"]), flag, value], capsys)
    assert flag in err and ("(0, 1]" in err or "[0, 1]" in err)


def test_unknown_model_name_and_yaml_syntax(tmp_path, capsys):
    err = one_line_error(["flops", "model.name=timesformer_tiny6_patch8_23"], capsys)
    assert "did you mean timesformer_tiny6_patch8_32" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [timesformer_tiny_patch8_32\n")
    err = one_line_error(["flops", "--config", str(bad)], capsys)
    assert "not valid YAML" in err and "line" in err


def test_epoch_without_a_step_names_the_numbers(data, tmp_path, capsys):
    err = one_line_error(["train", "--config", "configs/tiny/backbone.yaml", f"data.root={data['root']}",
                          "data.batch_size=16", "data.num_workers=0", f"run.output_dir={tmp_path}"], capsys)
    assert "3 training videos" in err and "data.batch_size=16" in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("a programming error")

    monkeypatch.setattr(cli, "_cmd_flops", broken)
    monkeypatch.setattr(cli, "_REGISTRARS", [cli._register_flops])
    with pytest.raises(ValueError, match="a programming error"):
        main(["flops"])


def test_data_prep_scripts_report_bad_inputs_in_one_line(data, tmp_path, capsys):
    from data_prep import build_lists, check_videos

    (tmp_path / "empty.csv").write_text("")
    assert check_videos.main([str(tmp_path / "empty.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"check_videos.py: {tmp_path / 'empty.csv'}: no items"
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(header + "walk,abc,zero,10,train\n")
    assert build_lists.main([str(data["root"] / "videos"), "--out", str(tmp_path / "lists"),
                             "--annotations", str(tmp_path / "train.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("build_lists.py: ") and "train.csv:2" in err and "\n" not in err


def test_a_failed_local_slurm_job_is_reported_in_one_line():
    import importlib.util

    from train_helpers import REPO

    spec = importlib.util.spec_from_file_location("slurm_submit", REPO / "slurm" / "submit.py")
    submit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(submit)
    error = "video_iared.errors.UserError: data.train_list: no list at /d/train.csv"
    message = ("Job (task=0) failed during processing with trace:\n----------------------\n"
               "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
               f"    raise UserError(x)\n{error}\n\n"
               "----------------------\nYou can check full logs with 'job.stderr(0)'\n  - /logs/0.err\n")
    assert submit.job_error(message) == error
