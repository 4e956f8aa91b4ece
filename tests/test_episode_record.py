"""Episode records: joint states, commands and stamps from every env, the file format old and new."""

from pathlib import Path

import numpy as np
import pytest

from meld_core.algo.replay import FRAME_ARRAYS, Episode
from meld_core.envs.point_nav import PointNavConfig, PointNavEnv
from meld_core.train.rollout import frame_records, run_trial

OLD_FORMAT = Path(__file__).parent / "data" / "episode_format0.npz"


def test_an_episode_file_of_the_format_before_joint_states_still_loads():
    """tests/data/episode_format0.npz was written by Episode.save() at 9b8db3e."""
    with np.load(OLD_FORMAT) as z:
        assert not set(FRAME_ARRAYS) & set(z.files)  # really the old format
    ep = Episode.load(OLD_FORMAT)
    assert ep.num_frames == 5 and ep.images.shape == (5, 16, 8, 3) and ep.episode_id == 17
    assert all(getattr(ep, name) is None for name in FRAME_ARRAYS)
    assert ep.meta["trial"] == 16 and ep.meta["task"]["port"] == 1
    assert ep.cameras == ("scene", "wrist")  # twice as high as wide: the TaskEnv convention
    views = ep.camera_images()
    assert np.array_equal(views["scene"], ep.images[:, :8])
    assert np.array_equal(views["wrist"], ep.images[:, 8:])
    assert ep.joint_names == ()
    assert ep.cut(3).num_frames == 3 and ep.cut(3).stamps is None


def test_the_per_frame_records_round_trip_compactly(tmp_path):
    rng = np.random.default_rng(0)
    n, j = 6, 5
    ep = Episode.load(OLD_FORMAT)
    ep = Episode(ep.images[:1].repeat(n, 0), rng.uniform(-1, 1, (n, 5)).astype(np.float32),
                 np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool), 0, 3,
                 meta={"cameras": ["scene", "wrist"], "joint_names": list("abcde")},
                 stamps=1.7e9 + np.arange(n) / 3.3,
                 joint_positions=rng.normal(size=(n, j)).astype(np.float32),
                 joint_velocities=rng.normal(size=(n, j)).astype(np.float32),
                 commanded_velocities=rng.normal(size=(n, j)).astype(np.float32),
                 applied_velocities=rng.normal(size=(n, j)).astype(np.float32))
    ep.save(tmp_path / "ep.npz")
    back = Episode.load(tmp_path / "ep.npz")
    for name, (dtype, _) in FRAME_ARRAYS.items():
        assert getattr(back, name).dtype == dtype and np.array_equal(getattr(back, name), getattr(ep, name))
    assert back.stamps[1] - back.stamps[0] == pytest.approx(1 / 3.3, abs=1e-6)  # float64 keeps ROS time
    assert back.joint_names == tuple("abcde")
    assert np.array_equal(back.cut(4).joint_positions, ep.joint_positions[:4])


@pytest.mark.parametrize("name, value, problem", [
    ("joint_positions", np.zeros((6, 5)), "joint_positions must be float32"),
    ("stamps", np.zeros(5), "stamps must be float64"),
    ("applied_velocities", np.full((6, 5), np.nan, np.float32), "applied_velocities must be finite"),
])
def test_invalid_records_are_rejected(name, value, problem):
    ep = Episode.load(OLD_FORMAT)
    ep = Episode(ep.images.repeat(2, 0)[:6], np.zeros((6, 5), np.float32), np.zeros(6, np.float32),
                 np.zeros(6, np.float32), np.zeros(6, bool), 0, **{name: value})
    with pytest.raises(ValueError, match=problem):
        ep.validate()


def test_frame_records_align_commands_with_the_frame_that_issued_them():
    infos = [{"stamp": 0.0, "joint_positions": [0.0]},
             {"stamp": 0.5, "joint_positions": [1.0], "commanded_velocity": [2.0], "applied_velocity": [1.5]},
             {"stamp": 1.0, "joint_positions": [2.0], "commanded_velocity": [3.0]}]
    rec = frame_records(infos)
    assert rec["stamps"].tolist() == [0.0, 0.5, 1.0]
    assert rec["joint_positions"].tolist() == [[0.0], [1.0], [2.0]]
    assert rec["commanded_velocities"].tolist() == [[2.0], [3.0], [0.0]]  # issued at frames 0 and 1
    assert rec["applied_velocities"] is None  # reported by one step only: no record
    assert rec["joint_velocities"] is None


def test_point_nav_trials_record_position_velocity_commands_and_time():
    env = PointNavEnv(PointNavConfig(episode_length=6, max_step=0.25, control_hz=2.0))
    trial = run_trial(env, env.train_tasks[3], 2, rng=np.random.default_rng(1))
    first, second = (e.episode for e in trial.episodes)
    hz = 2.0
    assert np.allclose(np.diff(first.stamps), 1 / hz) and second.stamps[0] == first.stamps[-1]
    assert first.joint_positions[0].tolist() == [0.0, 0.0] and first.joint_names == ("x", "y")
    moved = np.diff(first.joint_positions, axis=0) * hz
    assert np.allclose(first.applied_velocities[:-1], moved, atol=1e-5)
    assert np.allclose(first.joint_velocities[1:], first.applied_velocities[:-1], atol=1e-6)
    assert np.allclose(first.commanded_velocities[:-1], first.actions[:-1] * 0.25 * hz, atol=1e-6)
    assert not first.applied_velocities[-1].any() and not first.commanded_velocities[-1].any()
    assert first.meta["cameras"] == ["scene"] and first.meta["control_hz"] == hz
    assert first.meta["env"] == "point_nav" and first.meta["split"] == "train"
    assert first.meta["policy"] == {"kind": "random"}


@pytest.mark.render
def test_widowx_trials_record_simulated_time_joint_state_and_the_filtered_command():
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    cfg = WidowXInsertionConfig(episode_length=4, image_size=32, num_train_tasks=2, num_eval_tasks=1)
    env = WidowXInsertionEnv(cfg)
    try:
        trial = run_trial(env, env.train_tasks[1], 2, rng=np.random.default_rng(0))
        q_end, qdot_end = env.joint_state()
    finally:
        env.close()
    first, second = (e.episode for e in trial.episodes)
    assert first.cameras == ("scene", "wrist") and first.joint_names == env.joint_names
    assert np.allclose(np.diff(first.stamps), 1 / 3.3) and second.stamps[0] == pytest.approx(first.stamps[-1])
    assert np.allclose(second.joint_positions[-1], q_end)
    assert np.allclose(second.joint_velocities[-1], qdot_end)
    assert np.allclose(first.commanded_velocities[:-1], first.actions[:-1] * cfg.action_scale, atol=1e-6)
    applied = first.applied_velocities[:-1].astype(np.float64)
    assert np.allclose(applied / cfg.velocity_quantum, np.round(applied / cfg.velocity_quantum), atol=1e-3)
    assert np.all(np.abs(applied) <= np.abs(first.commanded_velocities[:-1]) + 1e-6)  # filter and quantum
