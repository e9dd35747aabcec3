"""Evaluation: view aggregation across ranks (with sampler duplicates), metrics and output files."""
import csv
import json
import math

import pytest
import torch

from video_iared.engine.aggregate import (ViewRecords, centre_view, dedupe_views, per_class_accuracy,
                                          topk_correct, video_scores)
from video_iared.engine.harness import Batch, MaskPredictor, Prediction, ViewPass, gather_views, run_views
from video_iared.engine.metrics import compute_metrics
from video_iared.engine.results import format_table, write_metrics, write_predictions
from torch.utils.data import DistributedSampler

NUM_VIDEOS, NUM_VIEWS, NUM_CLASSES = 5, 3, 4


def logits_for(video: int, view: int) -> torch.Tensor:
    """Views 0 and 2 of every video vote for class (video % 4); view 1 votes for class 3, strongly."""
    out = torch.zeros(NUM_CLASSES)
    out[3 if view == 1 else video % NUM_CLASSES] = 8.0 if view == 1 else 2.0
    return out


def records_for(items: list[int]) -> ViewRecords:
    video = torch.tensor([i // NUM_VIEWS for i in items])
    view = torch.tensor([i % NUM_VIEWS for i in items])
    return ViewRecords(video=video, view=view, label=video % NUM_CLASSES,
                       logits=torch.stack([logits_for(int(v), int(w)) for v, w in zip(video, view)]),
                       macs=torch.full((len(items),), 2e9, dtype=torch.float64),
                       kept_per_group=torch.full((len(items), 2), 0.5))


@pytest.mark.parametrize("world", [1, 2, 4])
def test_ranks_with_sampler_padding_give_the_single_process_result(world):
    items = NUM_VIDEOS * NUM_VIEWS  # 15: padded to 16 on 2 and 4 ranks
    per_rank = [records_for(list(DistributedSampler(range(items), num_replicas=world, rank=r, shuffle=False)))
                for r in range(world)]
    gathered = gather_views(ViewPass(per_rank[0], 1.0, 4),
                            lambda local: [ViewPass(r, 1.0, 4) for r in per_rank])
    assert len(ViewRecords.cat(per_rank)) == (15 if world == 1 else 16)
    assert len(gathered.records) == 15
    single = records_for(list(range(items)))
    for got, ref in zip(video_scores(gathered.records, NUM_VIDEOS), video_scores(single, NUM_VIDEOS)):
        assert torch.equal(got, ref)
    assert gathered.timed_views == 4 * world and gathered.model_seconds == 1.0


def test_softmax_sum_aggregation_and_clip_view():
    records = records_for(list(range(NUM_VIDEOS * NUM_VIEWS)))
    scores, labels, views = video_scores(records, NUM_VIDEOS)
    assert views.tolist() == [3] * NUM_VIDEOS
    assert torch.allclose(scores.sum(1), torch.full((NUM_VIDEOS,), 3.0))
    # summed logits would pick class 3 (8 > 2 + 2); summed probabilities pick the two agreeing views
    assert torch.equal(scores.argmax(1), labels)
    assert centre_view(1, 3) == 1 and centre_view(3, 3) == 4 and centre_view(2, 1) == 1


def test_dedupe_keeps_first_occurrence_of_each_key():
    records = records_for([0, 1, 0, 5, 1])
    records.logits[2] += 100  # the duplicate must not win
    out = dedupe_views(records)
    assert list(zip(out.video.tolist(), out.view.tolist())) == [(0, 0), (0, 1), (1, 2)]
    assert out.logits.max() < 100


def test_topk_and_per_class():
    """Six classes, so top-5 can miss: the third clip's label is ranked last."""
    scores = torch.tensor([[0.1, 0.9, 0.0, 0.0, 0.0, 0.0], [0.8, 0.15, 0.05, 0.0, 0.0, 0.0],
                           [0.3, 0.25, 0.2, 0.15, 0.1, 0.0]])
    labels = torch.tensor([1, 1, 5])
    hits = topk_correct(scores, labels, ks=(1, 2, 5))
    assert hits[1].tolist() == [True, False, False]
    assert hits[2].tolist() == [True, True, False]
    assert hits[5].tolist() == [True, True, False]
    three = topk_correct(scores[:, :3], torch.tensor([1, 1, 2]), ks=(5,))  # k clipped to the classes
    assert three[5].all()
    acc = per_class_accuracy(hits[1], labels, 6)
    assert acc[1] == 0.5 and acc[5] == 0.0 and math.isnan(acc[0])


def test_metrics_exclude_failed_videos_and_files_open(tmp_path):
    records = records_for(list(range(NUM_VIDEOS * NUM_VIEWS)))
    records.label[records.video == 4] = -1  # video 4 could not be read
    views = ViewPass(records, model_seconds=2.0, timed_views=10)
    metrics = compute_metrics(views, num_videos=NUM_VIDEOS + 1, num_classes=NUM_CLASSES, clip_view=1,
                              group_spans=[2, 2], depth=4)
    assert metrics["num_videos"] == 4 and metrics["failed_videos"] == 1 and metrics["unevaluated_videos"] == 1
    assert metrics["failed_video_indices"] == [4]
    assert metrics["clip_top1"] == 25.0  # the centre view votes class 3: right for video 3 only
    assert metrics["gflops_per_view"] == pytest.approx(2.0)
    assert metrics["kept_share"] == pytest.approx(0.5) and metrics["kept_share_per_group"] == [0.5, 0.5]
    assert metrics["clips_per_second"] == 5.0
    table = format_table(metrics).splitlines()
    assert "failed videos" in table[-1] and table[-1].endswith(" 1")
    assert any(line.startswith("clip top-1 / top-5") and "25.00 /" in line for line in table)
    write_metrics(metrics, tmp_path / "metrics.json")
    assert json.loads((tmp_path / "metrics.json").read_text())["video_top1"] == metrics["video_top1"]
    paths = [f"v{i}.mp4" for i in range(NUM_VIDEOS + 1)]
    write_predictions(records, paths, NUM_VIDEOS + 1, tmp_path / "predictions.csv")
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert [r["path"] for r in rows] == paths[:NUM_VIDEOS]  # the unevaluated video has no row
    assert rows[4]["label"] == "-1" and len(rows[0]) == 3 + 2 * NUM_CLASSES


def test_run_views_times_after_warmup():
    calls = []

    def predict(clip):
        calls.append(clip.dtype)
        return Prediction(torch.zeros(clip.shape[0], 2), torch.ones(clip.shape[0], dtype=torch.float64),
                          torch.ones(clip.shape[0], 0))

    batches = [Batch(torch.zeros(2, 3, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), torch.tensor([i, i]),
                     torch.tensor([0, 1])) for i in range(3)]
    out = run_views(predict, batches, prepare=lambda x: x.float(), warmup=1)
    assert calls == [torch.float32] * 3 and len(out.records) == 6 and out.timed_views == 4
    assert out.records.kept_per_group.shape == (6, 0)


def test_run_views_gives_mask_predictors_the_batch_masks():
    seen = []

    def predict(clip, masks):
        seen.append(masks.sum().item())
        return Prediction(torch.zeros(clip.shape[0], 2), torch.ones(clip.shape[0], dtype=torch.float64),
                          torch.ones(clip.shape[0], 0))

    clip = torch.zeros(2, 3, 1, 4, 4, dtype=torch.uint8)
    batches = [Batch(clip, torch.zeros(2), torch.tensor([i, i]), torch.tensor([0, 1]),
                     torch.full((2, 1, 4, 4), i, dtype=torch.uint8)) for i in range(3)]
    out = run_views(MaskPredictor(predict), batches, prepare=lambda x: x.float())
    assert seen == [0, 32, 64] and len(out.records) == 6
    plain = [Batch(*batch[:4]) for batch in batches]  # a loader without masks
    assert plain[0].masks is None
    with pytest.raises(ValueError, match="with_masks=True"):
        run_views(MaskPredictor(predict), plain, prepare=lambda x: x.float())


def test_iared_predictor_budget_and_threshold_costs():
    from video_iared.engine.harness import model_predictor
    from video_iared.flops import model_macs, shape_of
    from video_iared.models import TimeSformer
    from video_iared.models.iared import IARed

    torch.manual_seed(0)
    backbone = TimeSformer(img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=4, num_frames=4,
                           num_classes=NUM_CLASSES)
    model = IARed(backbone, group_starts=[0, 2], interpreter_heads=2).eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        budget = model_predictor(model, decision="budget", budget=[0.5, 0.25], interpreter_heads=2)(clip)
        threshold = model_predictor(model, threshold=0.0, interpreter_heads=2)(clip)  # scores > 0: keep all
        dense = model_predictor(model, decision="none")(clip)
    assert budget.kept_per_group.tolist() == [[0.5, 0.25]] * 2
    assert threshold.kept_per_group.tolist() == [[1.0, 1.0]] * 2
    shape = shape_of(backbone)
    assert torch.equal(dense.macs, model_macs(shape, batch=2))
    interpreters = threshold.macs - dense.macs  # both interpreters: CLS query, fold, key bias; 64 tokens
    assert torch.all(interpreters == 2 * (2 * 32 * 32 + 32 + 64 * 2 * 32))
    assert torch.all(budget.macs < dense.macs)
