"""launch_testing for sim.launch.py: the nodes come up in the `sim` namespace, images, joint states,
commands and arm_node's heartbeat flow, and one training iteration completes. Needs ROS 2 and the
package built in an overlay:

    source /opt/ros/<distro>/setup.bash && source install/setup.bash   # the colcon overlay
    launch_test tests/launch/test_sim_launch.py

(`python -m pytest tests/launch` needs launch_testing's pytest plugin, which on this Jazzy build
does not load with pytest 8: its hook still takes the removed `path` argument.)

Without ROS (CI) the whole module is skipped at import.
"""

import json
import tempfile
import time
import unittest
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")
pytest.importorskip("interbotix_xs_msgs")
pytest.importorskip("meld_core.envs.widowx_insertion")

import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from interbotix_xs_msgs.msg import JointGroupCommand  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

import launch  # noqa: E402
from meld_core.testing.widowx_smoke import smoke_run_config, write_smoke_config  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "sim.launch.py"
ITERATION_TIMEOUT_S = 420.0


@pytest.mark.launch_test
def generate_test_description():
    workdir = Path(tempfile.mkdtemp(prefix="meld_sim_launch_test_"))
    config_path = write_smoke_config(workdir / "smoke.yaml", iterations=1)
    env_config = json.dumps(smoke_run_config().env_config)
    sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={
            "mode": "train",
            "run_dir": str(workdir / "run"),
            "run_config": str(config_path),
            "iterations": "1",
            "device": "cpu",
            "env_config": env_config,
            "shutdown_when_done": "false",  # keep the graph up until the tests are done
        }.items(),
    )
    return launch.LaunchDescription([sim, launch_testing.actions.ReadyToTest()]), {"workdir": workdir}


class TestSimGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("meld_sim_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.try_shutdown()

    def _collect(self, topics, timeout_s):
        """Spin until every topic delivered a message; return {topic: [messages]}."""
        received = {name: [] for name, _, _ in topics}
        subs = [
            self.node.create_subscription(kind, name, lambda msg, name=name: received[name].append(msg), qos)
            for name, kind, qos in topics
        ]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(received.values()):
            rclpy.spin_once(self.node, timeout_sec=0.1)
        for sub in subs:
            self.node.destroy_subscription(sub)
        return received

    def test_1_images_and_joint_states_flow(self):
        # Images are best-effort (sensor-data QoS): a default (reliable) subscriber would never match.
        got = self._collect(
            [
                ("/sim/meld/scene/image_raw", Image, qos_profile_sensor_data),
                ("/sim/meld/wrist/image_raw", Image, qos_profile_sensor_data),
                ("/sim/wx200/joint_states", JointState, 10),
            ],
            timeout_s=90.0,
        )
        for topic, messages in got.items():
            self.assertTrue(messages, f"nothing received on {topic}")
        image = got["/sim/meld/scene/image_raw"][-1]
        self.assertEqual(image.encoding, "rgb8")
        self.assertEqual(image.header.frame_id, "scene_camera_optical_frame")
        self.assertGreater(image.header.stamp.sec, 0)
        self.assertEqual(len(image.data), image.height * image.step)
        joints = got["/sim/wx200/joint_states"][-1]
        self.assertEqual(list(joints.name)[:5], ["waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate"])

    def test_2_commands_flow_through_the_arm_node(self):
        got = self._collect(
            [
                ("/sim/meld/arm/velocity_command", JointState, 10),
                ("/sim/wx200/commands/joint_group", JointGroupCommand, 10),
                ("/sim/meld/arm/heartbeat", JointState, 10),
            ],
            timeout_s=180.0,
        )
        for topic, messages in got.items():
            self.assertTrue(messages, f"nothing received on {topic}")
        self.assertEqual(got["/sim/wx200/commands/joint_group"][-1].name, "arm")
        self.assertEqual(len(got["/sim/wx200/commands/joint_group"][-1].cmd), 5)
        # arm_node accepted the agent's commands (its bridge counts them on diagnostics)
        accepted = 0
        deadline = time.monotonic() + 120.0
        while accepted == 0 and time.monotonic() < deadline:
            got = self._collect([("/sim/diagnostics", DiagnosticArray, 10)], timeout_s=5.0)
            for msg in got["/sim/diagnostics"]:
                for status in msg.status:
                    if status.name.endswith("arm bridge"):
                        accepted = max(accepted, int({v.key: v.value for v in status.values}["commands"]))
        self.assertGreater(accepted, 0, "arm_node accepted no command from the agent")

    def test_3_one_training_iteration_completes(self):
        # The agent publishes its trainer's counters on meld/agent/progress (JSON) every second.
        progress = {}

        def on_progress(msg):
            progress.update(json.loads(msg.data))

        sub = self.node.create_subscription(String, "/sim/meld/agent/progress", on_progress, 10)
        deadline = time.monotonic() + ITERATION_TIMEOUT_S
        while time.monotonic() < deadline and progress.get("result") not in ("done", "failed"):
            rclpy.spin_once(self.node, timeout_sec=0.2)
        self.node.destroy_subscription(sub)
        self.assertEqual(progress.get("result"), "done", f"agent progress: {progress}")
        self.assertGreaterEqual(progress.get("iteration", 0), 1)
        self.assertGreater(progress.get("env_steps", 0), 0)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info,
            allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT],
        )

    def test_a_checkpoint_was_written(self, workdir):
        self.assertTrue(
            list((workdir / "run").rglob("*.pt")) or list((workdir / "run" / "checkpoints").iterdir())
        )
