"""IA-RED2's reward, cost proxy, baselines, REINFORCE loss and curriculum."""
import pytest
import torch

from video_iared.engine.policy import (RunningMean, active_groups, check_curriculum, group_spans,
                                       kept_share, leave_one_out_baseline, reinforce_loss, reward)
from video_iared.engine.stages import StageInfo, interpreter_loss, set_trainable
from video_iared.models import TimeSformer
from video_iared.models.iared import IARed


def test_group_spans_follow_interpreter_positions():
    assert group_spans([0, 4, 8], 12) == [4, 4, 4]
    assert group_spans([2, 5], 8) == [3, 3]
    for bad in ([], [4, 2], [0, 12], [3, 3]):
        with pytest.raises(ValueError):
            group_spans(bad, 12)


def test_keep_share_is_block_weighted():
    spans = group_spans([0, 4, 8], 12)
    kept = torch.tensor([[100, 100, 100], [50, 50, 50], [100, 50, 25], [0, 0, 0]])
    share = kept_share(kept, 100, spans, 12)
    torch.testing.assert_close(share, torch.tensor([1.0, 0.5, (1 + 0.5 + 0.25) / 3, 0.0]))
    # blocks before the first interpreter always run every token: 4 dense blocks + 8 at half
    share = kept_share(torch.tensor([[50, 50]]), 100, group_spans([4, 8], 12), 12)
    torch.testing.assert_close(share, torch.tensor([1 - 0.5 * 8 / 12]))


def test_reward_is_one_minus_cost_squared_or_minus_tau():
    correct = torch.tensor([True, True, False])
    share = torch.tensor([1.0, 0.5, 0.2])
    torch.testing.assert_close(reward(correct, share, 1.0), torch.tensor([0.0, 0.75, -1.0]))
    torch.testing.assert_close(reward(correct, share, 0.5)[2], torch.tensor(-0.5))


def test_running_mean_baseline_lags_the_batch():
    baseline = RunningMean(momentum=0.9)
    assert baseline.value(0.4) == 0.4  # the first batch is centred on itself
    baseline.update(0.4)
    assert baseline.value(1.0) == pytest.approx(0.4)  # never uses the batch it centres
    baseline.update(1.0)
    assert baseline.mean == pytest.approx(0.9 * 0.4 + 0.1 * 1.0)
    restored = RunningMean(0.9)
    restored.load_state_dict(baseline.state_dict())
    assert restored.mean == baseline.mean
    with pytest.raises(ValueError):
        RunningMean(1.0)


def test_leave_one_out_baseline_is_the_mean_of_the_other_rollouts():
    rewards = torch.tensor([[1.0, -1.0], [0.5, -1.0], [0.0, 0.2]])          # (K=3 rollouts, B=2 clips)
    base = leave_one_out_baseline(rewards)
    torch.testing.assert_close(base, torch.tensor([[0.25, -0.4], [0.5, -0.4], [0.75, -1.0]]))
    # identical rollouts carry no signal
    assert leave_one_out_baseline(torch.ones(4, 3)).sub(1).abs().max() == 0
    with pytest.raises(ValueError, match="at least 2 rollouts"):
        leave_one_out_baseline(rewards[:1])


def test_reinforce_loss_and_its_gradient():
    logits = torch.zeros(3, requires_grad=True)
    log_prob = torch.nn.functional.logsigmoid(logits)  # log p of three "keep" decisions
    rewards = torch.tensor([1.0, 0.0, -1.0])
    loss = reinforce_loss(rewards, 0.0, log_prob)
    assert loss.item() == pytest.approx(-(1.0 * log_prob[0] - 1.0 * log_prob[2]).item() / 3)
    loss.backward()
    # d/dlogit logsigmoid = 1 - sigmoid = 0.5: better-than-baseline decisions are made likelier
    torch.testing.assert_close(logits.grad, torch.tensor([-0.5, 0.0, 0.5]) / 3)
    # a self-critical baseline per sample (greedy rollout's reward) centres each sample
    assert reinforce_loss(rewards, rewards.clone(), log_prob).item() == 0.0
    # rewards never carry gradient
    assert reinforce_loss(rewards.requires_grad_(), 0.0, log_prob.detach()).grad_fn is None


def test_curriculum_switches_groups_on_one_at_a_time():
    assert [active_groups(e, [0, 2, 4], 3) for e in range(6)] == [1, 1, 2, 2, 3, 3]
    assert active_groups(0, [], 3) == 3
    assert [active_groups(e, [0, 0, 1], 3) for e in range(2)] == [2, 3]


@pytest.mark.parametrize("bad, match", [([0, 2], "one start epoch per group"),
                                        ([1, 2, 3], "start at 0"), ([0, 3, 2], "never decrease")])
def test_bad_curricula_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        check_curriculum(bad, 3)


@pytest.mark.parametrize("baseline, rollouts", [("leave_one_out", 3), ("greedy", 2), ("running_mean", 1)])
def test_interpreter_loss_trains_only_the_active_interpreters(baseline, rollouts):
    torch.manual_seed(0)
    backbone = TimeSformer(img_size=16, patch_size=8, num_frames=2, embed_dim=32, depth=3, num_heads=4,
                           num_classes=3)
    model = IARed(backbone, group_starts=[1, 2], interpreter_heads=4)
    set_trainable(model, "interpreters")
    info = StageInfo(spans=(1, 1), depth=3, num_tokens=2 * 4)
    loss, stats = interpreter_loss(model, torch.randn(4, 3, 2, 16, 16), torch.tensor([0, 1, 2, 0]), active=1,
                                   info=info, wrong_penalty=1.0, baseline_kind=baseline,
                                   running=RunningMean(0.9), rollouts=rollouts)
    loss.backward()
    assert torch.isfinite(loss)
    assert {"reward", "acc", "kept_share", "kept_share_g0", "kept_share_g1"} <= stats.keys()
    assert model.interpreters[0].qk.weight.grad.abs().sum() > 0          # the active group learns
    assert model.interpreters[1].qk.weight.grad is None                   # the inactive one does not
    assert all(p.grad is None for p in backbone.parameters())
