"""The quality gate behind `champion`, branch by branch (pure: no MLflow)."""

import math

from unsupervised_mnist.tracking.gate import GateRule, decide

PSNR = GateRule(metric="test/psnr_db", goal="max", min_improvement=0.1, floor=12.0)
FID = GateRule(metric="test/fid", goal="min", min_improvement=1.0, floor=300.0)


def test_first_model_passing_the_floor_becomes_champion():
    assert decide(PSNR, 14.0, None, None, "1").promote
    assert not decide(PSNR, 11.9, None, None, "1").promote
    assert "fails the floor: must be at least 12" in decide(PSNR, 11.9, None, None, "1").reason
    assert "must be at most 300" in decide(FID, 301.0, None, None, "1").reason


def test_improvement_must_reach_the_margin_in_the_goal_direction():
    assert decide(PSNR, 14.2, 14.0, "1", "2").promote  # +0.2 dB >= 0.1
    assert not decide(PSNR, 14.05, 14.0, "1", "2").promote  # +0.05 dB < 0.1
    assert not decide(PSNR, 13.0, 14.0, "1", "2").promote
    assert decide(FID, 40.0, 42.0, "3", "4").promote  # lower is better
    assert not decide(FID, 44.0, 42.0, "3", "4").promote
    reason = decide(PSNR, 13.0, 14.0, "1", "2").reason
    assert reason == "test/psnr_db 13.0000 does not beat champion v1 (14.0000) by 0.1 (gain -1.0000)"


def test_the_champion_itself_stays_champion_and_nan_never_passes():
    assert decide(PSNR, 14.0, 14.0, "2", "2").promote
    assert "already the champion" in decide(PSNR, 14.0, 14.0, "2", "2").reason
    assert not decide(FID, math.nan, None, None, "1").promote
