"""The demo report reads its figures from the stages' output files."""
import json

from video_iared.report import write_report


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_report_states_the_single_frame_control_next_to_the_video_model(tmp_path):
    _write(tmp_path / "runs" / "backbone" / "final_metrics.json", {"top1": 97.71})
    _write(tmp_path / "runs" / "single_frame" / "final_metrics.json", {"top1": 34.58})
    _write(tmp_path / "data" / "classes.json", {"classes": ["still", "moving", "changing size"]})
    text = write_report(tmp_path, [("train backbone", 189.0, False), ("generate", 0.0, True)], 189.0).read_text()
    assert "8 frames: **97.7 %**" in text and "single frame per clip: **34.6 %** (chance: 33.3 %)" in text
    assert "| train backbone | 189 |" in text and "| generate | skipped (done earlier) |" in text
    assert "## Accuracy and cost" not in text  # no evaluation outputs, no table


def test_report_without_the_control_has_no_motion_section(tmp_path):
    _write(tmp_path / "runs" / "backbone" / "final_metrics.json", {"top1": 97.71})
    assert "Does the task need motion" not in write_report(tmp_path, [], 0.0).read_text()
