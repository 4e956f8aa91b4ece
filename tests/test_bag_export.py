"""An exported MCAP file read by rosbag2 itself, every message deserialised with the real ROS 2 types
(rclpy's CDR typesupport, not mcap-ros2-support's). Needs ROS 2 with rosbag2 and its mcap storage:

    . /opt/ros_jazzy/env.sh && python -m pytest tests/test_bag_export.py

Without ROS (CI) the module is skipped at import.
"""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("rclpy")
rosbag2_py = pytest.importorskip("rosbag2_py")

from rclpy.serialization import deserialize_message  # noqa: E402
from rosidl_runtime_py.utilities import get_message  # noqa: E402

from meld_core.algo.replay import Episode, ReplayStore  # noqa: E402
from meld_core.config import ReplayConfig  # noqa: E402
from meld_core.config.presets import preset_config  # noqa: E402
from meld_core.data.mcap_export import McapExportConfig, export_mcap  # noqa: E402
from meld_core.envs.point_nav import PointNavEnv  # noqa: E402
from meld_core.train.rollout import run_trial  # noqa: E402
from meld_core.train.rundir import RunDir  # noqa: E402
from meld_core.train.setup import prepare_run_dir, task_lists  # noqa: E402


@pytest.mark.parametrize("image_format", ["raw", "png"])
def test_rosbag2_reads_an_exported_trial_with_the_real_message_types(tmp_path, image_format):
    cfg = preset_config("point_nav", "smoke")
    cfg = dataclasses.replace(cfg, env_config={**cfg.env_config, "episode_length": 5})
    rd = RunDir(tmp_path / "run")
    env = PointNavEnv(cfg.build_env_config())
    prepare_run_dir(rd, cfg, task_lists(env))
    store = ReplayStore(ReplayConfig(fsync=False), len(env.train_tasks), rd.episodes_dir)
    run_trial(env, env.train_tasks[1], 2, rng=np.random.default_rng(0),
              on_episode=lambda r: (r.episode.meta.update(trial=0), store.add(r.episode)))
    (path,) = export_mcap(rd.root, tmp_path / "out", McapExportConfig(image_format=image_format))

    reader = rosbag2_py.SequentialReader()
    reader.open(rosbag2_py.StorageOptions(uri=str(path), storage_id="mcap"),
                rosbag2_py.ConverterOptions("cdr", "cdr"))
    types = {t.name: t.type for t in reader.get_all_topics_and_types()}
    image_topic = "/meld/scene/image_raw" + ("" if image_format == "raw" else "/compressed")
    assert types[image_topic] == ("sensor_msgs/msg/Image" if image_format == "raw"
                                  else "sensor_msgs/msg/CompressedImage")
    assert types["/meld/joint_states"] == "sensor_msgs/msg/JointState"
    messages: dict[str, list] = {}
    while reader.has_next():
        topic, data, _ = reader.read_next()
        messages.setdefault(topic, []).append(deserialize_message(data, get_message(types[topic])))
    assert {t: len(m) for t, m in messages.items()} == {
        image_topic: 12, "/meld/joint_states": 12, "/meld/agent/action": 12, "/meld/success": 12,
        "/meld/arm/velocity_command": 10, "/meld/arm/applied_velocity": 10, "/meld/reward/dense": 10,
        "/meld/reward/sparse": 10, "/meld/episode": 2}
    second = Episode.load(rd.episodes_dir / "task_001" / "ep_00000001.npz")
    joints = messages["/meld/joint_states"][6 + 3]
    assert list(joints.name) == ["x", "y"]
    assert np.array_equal(np.array(joints.position, np.float32), second.joint_positions[3])
    assert joints.header.stamp.sec + joints.header.stamp.nanosec * 1e-9 == pytest.approx(second.stamps[3])
    image = messages[image_topic][6 + 3]
    if image_format == "raw":
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
    else:
        import cv2

        pixels = cv2.imdecode(np.frombuffer(bytes(image.data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(pixels, second.images[3])
    command = messages["/meld/arm/applied_velocity"][5 + 3]
    assert np.array_equal(np.array(command.velocity, np.float32), second.applied_velocities[3])
