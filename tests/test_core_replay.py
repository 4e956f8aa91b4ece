"""ReplayStore: disk round trip, crash leftovers, capacity, and trial batches as the reference forms them."""

import logging

import numpy as np
import pytest

from meld_core.algo.replay import Episode, ReplayStore
from meld_core.config import ReplayConfig
from meld_core.testing.core_fakes import random_episode

SHAPE = (16, 16, 3)


def _fill(store, rng, tasks, per_task, steps=5, action_dim=2):
    for task in tasks:
        for _ in range(per_task):
            store.add(random_episode(rng, task, steps, SHAPE, action_dim))


def _same(a: Episode, b: Episode) -> bool:
    return (a.episode_id == b.episode_id and a.task_index == b.task_index and a.meta == b.meta
            and all(np.array_equal(getattr(a, k), getattr(b, k))
                    for k in ("images", "actions", "dense_rewards", "sparse_rewards", "successes")))


@pytest.mark.parametrize("compress", [True, False])
def test_disk_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    cfg = ReplayConfig(compress_on_disk=compress)
    store = ReplayStore(cfg, num_tasks=3, root=tmp_path)
    _fill(store, rng, [0, 2], 3)
    assert sorted(p.name for p in (tmp_path / "task_002").iterdir()) == [
        "ep_00000003.npz", "ep_00000004.npz", "ep_00000005.npz"]
    back = ReplayStore.load(cfg, 3, tmp_path)
    assert back.total_episodes == 6 and back.total_steps == 30 and back.next_episode_id() == 6
    assert [back.num_episodes(t) for t in range(3)] == [3, 0, 3]
    for t in (0, 2):
        assert all(_same(a, b) for a, b in zip(store.episodes(t), back.episodes(t)))
    assert back.episodes(0)[0].images.dtype == np.uint8


def test_truncated_file_is_skipped_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(1)
    cfg = ReplayConfig()
    store = ReplayStore(cfg, num_tasks=1, root=tmp_path)
    _fill(store, rng, [0], 3)
    victim = tmp_path / "task_000" / "ep_00000001.npz"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a crash mid-write
    (tmp_path / "task_000" / "ep_00000009.npz").write_bytes(b"")  # an empty file
    (tmp_path / "task_000" / ".ep_00000010.npz.tmp").write_bytes(b"partial")  # an interrupted write
    with caplog.at_level(logging.WARNING, logger="meld_core.algo.replay"):
        back = ReplayStore.load(cfg, 1, tmp_path)
    assert back.total_episodes == 2
    assert [e.episode_id for e in back.episodes(0)] == [0, 2]
    assert back.next_episode_id() == 10  # never reuse an id seen on disk
    text = caplog.text
    assert "ep_00000001.npz" in text and "ep_00000009.npz" in text and ".tmp" in text
    assert not (tmp_path / "task_000" / ".ep_00000010.npz.tmp").exists()


def test_capacity_keeps_the_newest_episodes(tmp_path):
    rng = np.random.default_rng(2)
    cfg = ReplayConfig(capacity_episodes_per_task=2)
    store = ReplayStore(cfg, num_tasks=1, root=tmp_path)
    _fill(store, rng, [0], 4)
    assert [e.episode_id for e in store.episodes(0)] == [2, 3]
    assert [e.episode_id for e in ReplayStore.load(cfg, 1, tmp_path).episodes(0)] == [2, 3]


def test_invalid_episodes_are_rejected():
    rng = np.random.default_rng(3)
    store = ReplayStore(ReplayConfig(), num_tasks=2)
    ep = random_episode(rng, 0, 5, SHAPE, 2)
    ep.images = ep.images.astype(np.float32)
    with pytest.raises(ValueError, match="uint8"):
        store.add(ep)
    with pytest.raises(ValueError, match="task_index"):
        store.add(random_episode(rng, 5, 5, SHAPE, 2))
    store.add(random_episode(rng, 0, 5, SHAPE, 2))
    with pytest.raises(ValueError, match="frames"):
        store.add(random_episode(rng, 1, 7, SHAPE, 2))
    with pytest.raises(ValueError, match="empty"):
        ReplayStore(ReplayConfig(), num_tasks=1).sample_trials(rng, 1)


def test_trials_concatenate_random_episodes_of_one_task():
    rng = np.random.default_rng(4)
    cfg = ReplayConfig(num_tasks_per_train=5, model_batch_frames=36)
    store = ReplayStore(cfg, num_tasks=4)
    _fill(store, rng, [0, 1, 3], 4)
    by_id = {e.episode_id: e for t in range(4) for e in store.episodes(t)}
    pool = store.sample_trials(rng, episodes_per_trial=2)
    assert pool.images.shape == (5, 12, *SHAPE) and pool.images.dtype == np.uint8
    assert pool.actions.shape == (5, 12, 2) and pool.dense.shape == (5, 12)
    assert pool.episode_start.tolist() == [[True] + [False] * 5 + [True] + [False] * 5] * 5
    assert set(pool.task_index.tolist()) <= {0, 1, 3}
    for i in range(5):
        for half in (slice(0, 6), slice(6, 12)):
            matches = [e for e in by_id.values() if np.array_equal(e.images, pool.images[i, half])]
            assert matches and matches[0].task_index == pool.task_index[i]
    model = store.model_batch_from(pool, rng)
    assert model.batch_size == 36 // 12 and set(model.task_index.tolist()) <= set(pool.task_index.tolist())
    direct = store.sample_model_batch(rng, episodes_per_trial=2)
    assert direct.images.shape == (3, 12, *SHAPE) and direct.episode_start[:, 6].all()
    assert store.sample_ac_batch(rng, episodes_per_trial=1).images.shape == (5, 6, *SHAPE)


def test_offline_episodes_replace_whole_slots_cut_to_the_online_length():
    rng = np.random.default_rng(5)
    offline = ReplayStore(ReplayConfig(), num_tasks=2)
    _fill(offline, rng, [0, 1], 2, steps=9)
    cfg = ReplayConfig(num_tasks_per_train=4, offline_ratio=1.0)
    store = ReplayStore(cfg, num_tasks=2, offline=offline)
    _fill(store, rng, [0, 1], 2, steps=5)
    pool = store.sample_trials(rng, episodes_per_trial=2)
    assert pool.images.shape[1] == 12
    off_prefixes = [e.images[:6] for t in (0, 1) for e in offline.episodes(t)]
    for i in range(pool.batch_size):
        for half in (slice(0, 6), slice(6, 12)):
            assert any(np.array_equal(p, pool.images[i, half]) for p in off_prefixes)
    none = ReplayStore(ReplayConfig(num_tasks_per_train=4, offline_ratio=0.0), num_tasks=2, offline=offline)
    _fill(none, rng, [0, 1], 1, steps=5)
    assert not any(np.array_equal(p, none.sample_trials(rng, 1).images[0]) for p in off_prefixes)


def test_a_reader_picks_up_new_episode_files_and_leaves_a_writers_temp_files(tmp_path):
    rng = np.random.default_rng(3)
    cfg = ReplayConfig()
    writer = ReplayStore(cfg, num_tasks=2, root=tmp_path, keep_frames=False)
    reader = ReplayStore(cfg, num_tasks=2, root=tmp_path)
    _fill(writer, rng, [0, 1], 2)
    assert reader.load_new() == 4 and reader.load_new() == 0
    (tmp_path / "task_000" / ".ep_00000009.npz.x1.tmp").write_bytes(b"half")  # a write in progress
    _fill(writer, rng, [1], 1)
    assert reader.load_new() == 1 and reader.num_episodes(1) == 3 and reader.total_episodes == 5
    assert (tmp_path / "task_000" / ".ep_00000009.npz.x1.tmp").exists()
    assert reader.episodes(1)[-1].images.shape[1:] == SHAPE
    # The writer kept no frames, only what collection needs to know.
    assert writer.total_steps == reader.total_steps and writer.episodes(0)[0].images.size == 0
    with pytest.raises(RuntimeError, match="keep_frames"):
        writer.sample_ac_batch(rng, 1)
