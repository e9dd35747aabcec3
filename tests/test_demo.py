"""make demo: the stages it runs (the run itself is measured, not tested: docs/results.md)."""
from pathlib import Path

from video_iared.demo import build_stages


def test_demo_generates_model_sized_frames_and_trains_the_short_chain(tmp_path: Path):
    stages = build_stages(tmp_path, num_train=30, num_val=9)
    generate = stages[0].argv
    assert generate[generate.index("--size") + 1] == "32" and generate[generate.index("--num-val") + 1] == "9"
    train = {s.name: s.argv for s in stages if s.argv[3:4] == ["train"]}
    assert list(train) == ["train backbone", "train interpreters", "fine-tune"]
    assert "optim.epochs=3" in train["train backbone"] and "optim.epochs=1" in train["fine-tune"]
    interpreters = train["train interpreters"]
    assert f"model.weights={tmp_path / 'runs' / 'backbone' / 'checkpoint.pth'}" in interpreters
    # later words win: the run's own output folder and weights come after the recipe's overrides
    assert interpreters[-1] == f"run.output_dir={tmp_path / 'runs' / 'interpreters'}"
