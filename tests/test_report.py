"""The demo report reads its figures from the stages' output files."""
import json

from video_iared.report import write_report


def test_report_lists_stage_times_and_only_the_tables_whose_outputs_exist(tmp_path):
    steps = [("train backbone", 189.0, False), ("generate", 0.0, True)]
    text = write_report(tmp_path, steps, 189.0).read_text()
    assert "| train backbone | 189 |" in text and "| generate | skipped (done earlier) |" in text
    assert "| **total** | **189** |" in text
    assert "## Accuracy and cost" not in text and "## Interpretability" not in text


def test_report_reads_the_evaluations(tmp_path):
    metrics = {"video_top1": 95.0, "clip_top1": 95.0, "gflops_per_view": 0.0866, "kept_share": 1.0,
               "clips_per_second": 270.0, "num_videos": 480, "num_views": 1440}
    for name, gflops in (("eval_dense", 0.0866), ("eval_iared", 0.0433)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**metrics, "gflops_per_view": gflops}))
    text = write_report(tmp_path, [], 0.0).read_text()
    assert "GFLOPs ratio dense / IA-RED²: **2.00×**" in text and "+0.00 points" in text
