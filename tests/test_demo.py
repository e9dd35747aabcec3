"""make demo: its steps form a chain that a fresh folder can run (the run itself is measured, not
tested: docs/results.md)."""
from pathlib import Path

from video_iared.demo import build_steps


def _paths(argv: list[str], root: Path) -> list[Path]:
    """The files under ``root`` that a command names (``--x PATH`` or ``key=PATH``)."""
    words = [word.split("=", 1)[-1] for word in argv]
    return [Path(word) for word in words if word.startswith(str(root)) and Path(word).suffix]


def test_every_file_a_step_reads_is_written_by_an_earlier_step(tmp_path: Path):
    steps = build_steps(tmp_path, num_train=30, num_val=9)
    written: set[Path] = set()
    for step in steps:
        # checkpoints and lists are what steps hand on; the generated data set is the first step's
        reads = [path for path in _paths(step.argv, tmp_path)
                 if path != step.done_when and path.suffix in (".pth", ".csv")]
        produced = written | {p.parent / "checkpoint.pth" for p in written if p.name == "final_metrics.json"}
        missing = [path for path in reads if path not in produced and tmp_path / "data" not in path.parents]
        assert not missing, f"{step.name} reads {missing}, which no earlier step writes"
        written.add(step.done_when)
    assert steps[0].done_when == tmp_path / "data" / "classes.json"           # the data comes first


def test_the_deployed_model_is_the_calibrated_one(tmp_path: Path):
    steps = {step.name: step for step in build_steps(tmp_path, num_train=30, num_val=9)}
    calibrate = next(step for name, step in steps.items() if step.argv[3:4] == ["calibrate"])
    deployed = calibrate.done_when
    names = list(steps)
    for name, step in steps.items():
        if step.argv[3:4] in (["sweep"], ["interpret"], ["predict"]):
            assert str(deployed) in step.argv, f"{name} does not run the calibrated checkpoint"
            assert names.index(name) > names.index(calibrate.name)
        if step.argv[3:4] == ["interpret"]:                  # its maps show the deployed decision
            assert "iared.decision=calibrated" in step.argv


def test_later_words_win_so_each_run_writes_its_own_folder(tmp_path: Path):
    for step in build_steps(tmp_path, num_train=30, num_val=9):
        if step.argv[3:4] == ["train"]:
            assert step.argv[-1] == f"run.output_dir={step.done_when.parent}"
