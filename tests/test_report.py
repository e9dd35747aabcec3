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


def test_report_leads_with_the_deployed_decision_and_labels_the_papers_threshold(tmp_path):
    import torch

    def point(method, setting, gflops, top1):
        return {"method": method, "setting": setting, "gflops_per_view": gflops, "video_top1": top1,
                "clip_top1": top1, "kept_share": 0.5, "clips_per_second": 100.0}

    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"points": [
        point("dense", "-", 0.08, 90.0), point("iared-threshold", "t=0.5", 0.04, 61.5),
        point("iared-calibrated", "fitted", 0.04, 89.5)]}))
    (tmp_path / "runs" / "finetune").mkdir(parents=True)
    torch.save({"calibration": {"thresholds": [0.9, 0.02], "budget": [0.45, 0.2], "videos": 256,
                                "floor_share": 0.9, "min_kept": [10, 4]}},
               tmp_path / "runs" / "finetune" / "calibrated.pth")
    text = write_report(tmp_path, [("train backbone", 10.0, False)], 10.0).read_text()
    assert text.index("## The deployed decision") < text.index("## Stages")
    deployed = text[text.index("## The deployed decision"):text.index("## Stages")]
    assert "(0.9 / 0.02)" in deployed and "budget 0.45 / 0.2" in deployed
    rows = [line for line in deployed.splitlines() if line.startswith("| IA-RED²")]
    assert rows[0] == "| IA-RED², calibrated thresholds (deployed) | 0.0400 | 2.00× | 89.50 | -0.50 |"
    assert rows[1].startswith("| IA-RED², the paper's threshold 0.5 (reference) |") and "-28.50" in rows[1]
