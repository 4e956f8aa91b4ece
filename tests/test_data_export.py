"""`meld export`: MCAP read back with the mcap reader, the LeRobot dataset checked against the v3.0
format (as lerobot 0.4's LeRobotDataset reads it), episode selection, the CLI and the preview."""

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from meld_core.algo.replay import FRAME_ARRAYS, Episode, ReplayStore
from meld_core.cli import main
from meld_core.config import ReplayConfig
from meld_core.config.presets import preset_config
from meld_core.data.run_episodes import ExportError, RunEpisodes, parse_selection
from meld_core.envs.point_nav import PointNavEnv
from meld_core.train.rollout import run_trial
from meld_core.train.rundir import RunDir
from meld_core.train.setup import prepare_run_dir, task_lists

E, T = 2, 6  # episodes per trial, steps per episode
ARM = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
OLD_FORMAT = Path(__file__).parent / "data" / "episode_format0.npz"


def make_run(root: Path, env_name: str, trials: int, **env_overrides) -> Path:
    """A run directory with `trials` random-policy trials, stored as the trainer stores them."""
    from meld_core.envs.registry import make_env

    cfg = preset_config(env_name, "smoke")
    cfg = dataclasses.replace(cfg, env_config={**cfg.env_config, "episode_length": T, **env_overrides})
    rd = RunDir(root)
    env = make_env(env_name, cfg.build_env_config(), seed=0)
    prepare_run_dir(rd, cfg, task_lists(env))
    store = ReplayStore(ReplayConfig(fsync=False), len(env.train_tasks), rd.episodes_dir)
    rng = np.random.default_rng(0)
    try:
        for k in range(trials):
            trial = store.next_episode_id()

            def keep(rollout, trial=trial):
                rollout.episode.meta.update(trial=trial, run=root.name, phase="warmup")
                store.add(rollout.episode)

            run_trial(env, env.train_tasks[k % len(env.train_tasks)], E, rng=rng, on_episode=keep)
    finally:
        env.close()
    return root


@pytest.fixture(scope="module")
def wx_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("wx") / "wx_run", "widowx_insertion", 3)


def read_mcap(path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        counts = {summary.channels[c].topic: n for c, n in summary.statistics.channel_message_counts.items()}
        messages = [(channel.topic, schema.name, message.log_time, decoded)
                    for schema, channel, message, decoded in reader.iter_decoded_messages()]
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    return counts, messages, metadata


# --------------------------------------------------------------------------------------- MCAP
@pytest.mark.render
def test_mcap_per_trial_reads_back_with_the_mcap_reader(wx_run, tmp_path):
    from meld_core.data.mcap_export import export_mcap

    files = export_mcap(wx_run, tmp_path)
    assert [f.name for f in files] == ["trial_00000000_task_000.mcap", "trial_00000002_task_001.mcap",
                                       "trial_00000004_task_002.mcap"]
    counts, messages, metadata = read_mcap(files[1])
    n = E * (T + 1)
    assert counts == {"/meld/scene/image_raw": n, "/meld/wrist/image_raw": n, "/wx200/joint_states": n,
                      "/meld/agent/action": n, "/meld/success": n, "/meld/arm/velocity_command": E * T,
                      "/meld/arm/applied_velocity": E * T, "/meld/reward/dense": E * T,
                      "/meld/reward/sparse": E * T, "/meld/episode": E}
    episode = Episode.load(wx_run / "episodes" / "task_001" / "ep_00000003.npz")
    frame = 4  # of the trial's second episode

    def nth(topic, k):
        return [m for m in messages if m[0] == topic][k]

    _, schema, log_time, joints = nth("/wx200/joint_states", (T + 1) + frame)
    assert schema == "sensor_msgs/msg/JointState"
    assert joints.name == list(episode.joint_names) == list(ARM)
    assert np.array_equal(np.array(joints.position, np.float32), episode.joint_positions[frame])
    assert np.array_equal(np.array(joints.velocity, np.float32), episode.joint_velocities[frame])
    stamp = joints.header.stamp.sec + joints.header.stamp.nanosec * 1e-9
    assert stamp == pytest.approx(episode.stamps[frame], abs=1e-9)
    assert log_time == round(episode.stamps[frame] * 1e9)  # the simulator's clock runs across resets
    for camera in ("scene", "wrist"):
        _, schema, _, image = nth(f"/meld/{camera}/image_raw", (T + 1) + frame)
        assert schema == "sensor_msgs/msg/Image" and image.encoding == "rgb8"
        assert image.step == 3 * image.width
        assert image.header.frame_id == f"{camera}_camera_optical_frame"
        pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
        assert np.array_equal(pixels, episode.camera_images()[camera][frame])
    _, _, _, command = nth("/meld/arm/applied_velocity", T + frame)
    assert np.array_equal(np.array(command.velocity, np.float32), episode.applied_velocities[frame])
    _, _, _, reward = nth("/meld/reward/dense", T + frame - 1)  # rewards from frame 1 on
    assert reward.data == pytest.approx(float(episode.dense_rewards[frame]))
    times = [m[2] for m in messages]
    assert times == sorted(times)
    run = json.loads(json.dumps(metadata["meld.run"]))
    assert run["env"] == "widowx_insertion" and run["control_hz"] == "3.3"
    assert metadata["meld.episode.3"]["task_name"] == "train[1](" + ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in episode.meta["task"].items()) + ")"
    assert json.loads(metadata["meld.episode.3"]["position_in_trial"]) == 1


@pytest.mark.render
def test_mcap_per_run_with_png_images_keeps_the_pixels(wx_run, tmp_path):
    from meld_core.data.mcap_export import McapExportConfig, export_mcap

    (path,) = export_mcap(wx_run, tmp_path, McapExportConfig(per="run", image_format="png"), select="1-4")
    assert path.name == "wx_run.mcap"
    counts, messages, metadata = read_mcap(path)
    assert counts["/meld/scene/image_raw/compressed"] == 4 * (T + 1) and counts["/meld/episode"] == 4
    episodes = sorted(k for k in metadata if k.startswith("meld.episode."))
    assert episodes == [f"meld.episode.{i}" for i in (1, 2, 3, 4)]
    import cv2

    first = next(m for m in messages if m[0] == "/meld/wrist/image_raw/compressed")[3]
    assert first.format == "png"
    pixels = cv2.imdecode(np.frombuffer(first.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    episode = Episode.load(wx_run / "episodes" / "task_000" / "ep_00000001.npz")
    assert np.array_equal(pixels, episode.camera_images()["wrist"][0])
    times = [m[2] for m in messages]
    assert times == sorted(times)


def test_old_episode_files_export_with_times_at_the_control_rate(tmp_path):
    root = tmp_path / "old_run"
    cfg = preset_config("point_nav", "smoke")
    prepare_run_dir(RunDir(root), cfg, task_lists(PointNavEnv(cfg.build_env_config())))
    (root / "episodes" / "task_002").mkdir(parents=True)
    shutil.copy(OLD_FORMAT, root / "episodes" / "task_002" / "ep_00000017.npz")
    from meld_core.data.mcap_export import export_mcap

    (path,) = export_mcap(root, tmp_path / "out")
    assert path.name == "trial_00000016_task_002.mcap"
    counts, messages, _ = read_mcap(path)
    assert counts == {"/meld/scene/image_raw": 5, "/meld/wrist/image_raw": 5, "/meld/agent/action": 5,
                      "/meld/success": 5, "/meld/reward/dense": 4, "/meld/reward/sparse": 4,
                      "/meld/episode": 1}
    scene = [m[2] for m in messages if m[0] == "/meld/scene/image_raw"]
    assert np.allclose(np.diff(scene), 1e9 / 3.3, atol=1)


def test_episode_selection():
    chosen = parse_selection("0-2, 7,10-")
    assert [i for i in range(14) if i in chosen] == [0, 1, 2, 7, 10, 11, 12, 13]
    assert parse_selection(None) is None and parse_selection(" ") is None
    for bad in ("3-1", "a", "1-2-3"):
        with pytest.raises(ExportError):
            parse_selection(bad)


def test_missing_run_or_episodes_are_export_errors(tmp_path):
    with pytest.raises(ExportError, match="no episodes/ folder"):
        RunEpisodes(tmp_path)
    (tmp_path / "episodes" / "task_000").mkdir(parents=True)
    shutil.copy(OLD_FORMAT, tmp_path / "episodes" / "task_000" / "ep_00000017.npz")
    with pytest.raises(ExportError, match="none of the selected"):
        RunEpisodes(tmp_path, "0-16")
    assert RunEpisodes(tmp_path, "17-").ids == [17]


# --------------------------------------------------------------------------------------- LeRobot
def lerobot_check(root: Path) -> dict:
    """Check a dataset against LeRobot v3.0 (lerobot 0.4: LeRobotDatasetMetadata.load_metadata,
    load_nested_dataset, get_hf_features_from_features, _query_videos): returns info.json."""
    import av
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    for key in ("robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
                "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "features"):
        assert key in info
    assert info["splits"] == {"train": f"0:{info['total_episodes']}"}
    features, fps = info["features"], info["fps"]
    for key, spec in {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                      "index": "int64", "task_index": "int64"}.items():
        assert features[key] == {"dtype": spec, "shape": [1], "names": None}
    assert all("/" not in key for key in features)
    video_keys = [k for k, ft in features.items() if ft["dtype"] == "video"]

    # data: one column per non-video feature, of the type HF datasets gives the feature
    data = pa.concat_tables([pq.read_table(p) for p in sorted((root / "data").glob("*/*.parquet"))])
    assert set(data.column_names) == set(features) - set(video_keys)
    arrow = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}
    for key in data.column_names:
        ft, column_type = features[key], data.schema.field(key).type
        if ft["shape"] == [1]:
            assert column_type == arrow[ft["dtype"]], key
        else:
            assert len(ft["shape"]) == 1 and len(ft["names"]) == ft["shape"][0]
            assert pa.types.is_fixed_size_list(column_type) and column_type.list_size == ft["shape"][0], key
            assert column_type.value_type == arrow[ft["dtype"]], key
    assert data.num_rows == info["total_frames"]
    index = data["index"].to_numpy()
    assert np.array_equal(index, np.arange(data.num_rows))

    # meta/episodes and tasks, as load_episodes / load_tasks read them
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == list(range(info["total_episodes"]))
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert len(tasks) == info["total_tasks"] and list(tasks["task_index"]) == list(range(len(tasks)))
    ep_index, frame_index = data["episode_index"].to_numpy(), data["frame_index"].to_numpy()
    timestamps, task_index = data["timestamp"].to_numpy(), data["task_index"].to_numpy()
    for e in episodes:
        rows = slice(e["dataset_from_index"], e["dataset_to_index"])
        assert e["dataset_to_index"] - e["dataset_from_index"] == e["length"]
        assert (ep_index[rows] == e["episode_index"]).all()
        assert np.array_equal(frame_index[rows], np.arange(e["length"]))
        assert np.allclose(timestamps[rows], np.arange(e["length"]) / fps, atol=1e-4)  # LeRobot's tolerance
        assert len(e["tasks"]) == 1 and tasks.loc[e["tasks"][0]].task_index == task_index[rows][0]
        assert tasks.iloc[task_index[rows][0]].name == e["tasks"][0]
        assert data["next.done"].to_numpy()[rows].tolist() == [False] * (e["length"] - 1) + [True]
        for key in data.column_names:
            for stat in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
                assert f"stats/{key}/{stat}" in e

    # videos: every frame a row asks for decodes at from_timestamp + timestamp
    for key in video_keys:
        ft = features[key]
        assert ft["names"] == ["height", "width", "channels"] and ft["shape"][2] == 3
        first_file = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
        with av.open(str(first_file)) as container:
            stream = container.streams.video[0]
            assert ft["info"]["video.codec"] == stream.codec_context.name == "h264"
            assert ft["info"]["video.pix_fmt"] == stream.pix_fmt == "yuv420p"
            assert [ft["info"]["video.height"], ft["info"]["video.width"]] == ft["shape"][:2]
            assert float(stream.average_rate) == pytest.approx(fps) == ft["info"]["video.fps"]
            frame_times = np.array([frame.time for frame in container.decode(video=0)])
        file_episodes = [e for e in episodes if e[f"videos/{key}/file_index"] == 0]
        assert len(frame_times) == sum(e["length"] for e in file_episodes)
        for e in file_episodes:
            rows = slice(e["dataset_from_index"], e["dataset_to_index"])
            wanted = e[f"videos/{key}/from_timestamp"] + timestamps[rows]
            assert np.abs(frame_times[:, None] - wanted[None]).min(axis=0).max() < 1e-4
            assert e[f"videos/{key}/to_timestamp"] - e[f"videos/{key}/from_timestamp"] == pytest.approx(
                e["length"] / fps)

    # stats: LeRobot's keys and shapes (images per channel (3, 1, 1), count (1,))
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert set(stats) == set(features)
    for key, feature_stats in stats.items():
        assert set(feature_stats) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
        shape = (3, 1, 1) if key in video_keys else tuple(features[key]["shape"])
        for stat, value in feature_stats.items():
            assert np.array(value).shape == ((1,) if stat == "count" else shape), (key, stat)
        if key not in video_keys:
            assert feature_stats["count"] == [info["total_frames"]]
    return info


def test_image_stats_from_histograms_equal_the_stats_over_the_pixels():
    from meld_core.data.lerobot_export import QUANTILES, feature_stats

    rng = np.random.default_rng(0)
    for frames in (rng.integers(0, 256, (7, 9, 5, 3), dtype=np.uint8), np.full((2, 3, 3, 3), 7, np.uint8),
                   rng.integers(40, 60, (3, 4, 4, 3), dtype=np.uint8)):
        stats = feature_stats(frames, image=True)
        pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
        expected = {"min": pixels.min(0), "max": pixels.max(0), "mean": pixels.mean(0), "std": pixels.std(0),
                    **{key: np.quantile(pixels, q, axis=0) for key, q in QUANTILES.items()}}
        for key, value in expected.items():
            assert stats[key].shape == (3, 1, 1) and np.allclose(stats[key].ravel(), value, atol=1e-12), key
        assert stats["count"].tolist() == [len(frames)]


@pytest.mark.render
def test_lerobot_dataset_follows_the_v3_format_and_holds_the_episodes(wx_run, tmp_path):
    import av
    import pyarrow.parquet as pq

    from meld_core.data.lerobot_export import export_lerobot

    out = export_lerobot(wx_run, tmp_path / "dataset")
    info = lerobot_check(out)
    assert info["total_episodes"] == 3 * E and info["total_frames"] == 3 * E * (T + 1)
    assert info["total_tasks"] == 3
    assert info["fps"] == 3.3 and info["robot_type"] == "widowx_insertion"
    features = info["features"]
    assert features["observation.images.scene"]["shape"] == [32, 32, 3]
    assert features["observation.state"]["names"] == list(ARM)
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    episode = Episode.load(wx_run / "episodes" / "task_001" / "ep_00000003.npz")
    rows = slice(3 * (T + 1), 4 * (T + 1))
    assert np.array_equal(np.stack(data["observation.state"].to_numpy(zero_copy_only=False)[rows]),
                          episode.joint_positions)
    assert np.array_equal(np.stack(data["action"].to_numpy(zero_copy_only=False)[rows]), episode.actions)
    assert np.array_equal(data["next.reward"].to_numpy()[rows], [*episode.dense_rewards[1:], 0.0])
    successes = [*episode.successes[1:], episode.successes[-1]]
    assert np.array_equal(data["next.success"].to_numpy()[rows], successes)
    stats = json.loads((out / "meta" / "stats.json").read_text())
    all_states = np.stack(data["observation.state"].to_numpy(zero_copy_only=False))
    assert np.allclose(stats["observation.state"]["mean"], all_states.mean(axis=0), atol=1e-6)
    # the decoded wrist video is the episode's wrist view up to H.264's loss
    with av.open(str(out / "videos/observation.images.wrist/chunk-000/file-000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][rows]
    error = np.abs(np.stack(frames).astype(int) - episode.camera_images()["wrist"].astype(int)).mean()
    assert error < 8, error


def test_lerobot_leaves_out_records_some_episodes_lack_and_refuses_a_used_folder(tmp_path, caplog):
    from meld_core.data.lerobot_export import export_lerobot

    root = make_run(tmp_path / "pn_run", "point_nav", 1)
    shutil.copy(OLD_FORMAT, root / "episodes" / "task_000" / "ep_00000017.npz")  # an older file, other shapes
    with pytest.raises(ExportError, match="different image or action shapes"):
        export_lerobot(root, tmp_path / "mixed")
    old = Episode.load(root / "episodes" / "task_000" / "ep_00000000.npz")
    for name in FRAME_ARRAYS:
        setattr(old, name, None)  # as a file written before the records existed
    old.episode_id = 17
    old.save(root / "episodes" / "task_000" / "ep_00000017.npz")
    with caplog.at_level(logging.WARNING):
        out = export_lerobot(root, tmp_path / "dataset")
    assert "observation.state" in caplog.text
    info = lerobot_check(out)
    assert "observation.state" not in info["features"] and "observation.images.scene" in info["features"]
    assert "observation.images.wrist" not in info["features"] and info["total_episodes"] == 3
    with pytest.raises(ExportError, match="not empty"):
        export_lerobot(root, out)


# --------------------------------------------------------------------------------------- CLI
def test_cli_exports_a_trained_run_in_both_formats_with_a_preview(tmp_path, capsys):
    from meld_core.train.trainer import run_training

    cfg = preset_config("point_nav", "smoke")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_iterations=1))
    run = tmp_path / "trained"
    trainer = run_training(cfg, run, progress_bars=False)
    last = Episode.load(max((run / "episodes").glob("task_*/ep_*.npz"), key=lambda p: p.name))
    assert last.meta["run"] == "trained" and last.meta["policy"]["kind"] == "agent"
    assert last.meta["policy"]["model_steps"] == trainer.counters.pretrain_steps  # trained after collection
    first = Episode.load(run / "episodes" / "task_000" / "ep_00000000.npz")
    assert first.meta["policy"] == {"kind": "random", "model_steps": 0, "ac_steps": 0}

    png = tmp_path / "preview.png"
    assert main(["export", "--run-dir", str(run), "--format", "mcap", "--out", str(tmp_path / "m"),
                 "--episodes", "0-3", "--preview", str(png)]) == 0
    assert "wrote 2 MCAP file(s)" in capsys.readouterr().out
    counts, _, _ = read_mcap(tmp_path / "m" / "trial_00000000_task_000.mcap")
    assert counts["/meld/joint_states"] == 2 * (first.num_frames) and "/meld/wrist/image_raw" not in counts
    assert png.stat().st_size > 20_000
    assert main(["export", "--run-dir", str(run), "--format", "lerobot", "--out", str(tmp_path / "l")]) == 0
    info = lerobot_check(tmp_path / "l")
    assert info["total_episodes"] == trainer.counters.episodes
    assert main(["export", "--run-dir", str(run), "--format", "mcap", "--out", str(tmp_path / "m"),
                 "--per", "day"]) == 2
    assert "per must be one of trial, episode, run" in capsys.readouterr().err
