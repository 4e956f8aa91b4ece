"""Does a simulated graph reach a real reset-rig node on the same machine? (It must not.)

    source <ros>/setup.bash && source <overlay>/install/setup.bash
    MUJOCO_GL=egl python3 bench/sim_real_isolation.py > isolation.json

Starts the real `reset_rig_node` as on the robot (root namespace, its config YAML; `driver:=fake`
so no Arduino is needed: the node and its interfaces are the real ones), then `sim.launch.py` with
a tiny config on the same ROS domain and machine. While the simulated agent sends rig goals for
its tasks, a monitor counts goals on the robot's `/meld/rig/goal_pose` and on the simulation's
`/sim/meld/rig/goal_pose`, and reads the real rig's diagnostics (moves, goal_seq). Prints one
JSON object; `real_rig_moves` must stay 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import rclpy
import yaml
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor

from meld_core.testing.widowx_smoke import smoke_run_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=3, help="simulated rig goals to wait for")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meld_isolation_"))
    cfg = smoke_run_config(iterations=1)
    (work / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))

    rclpy.init()
    node = rclpy.create_node("bench_isolation_monitor")
    counts = {"/meld/rig/goal_pose": 0, "/sim/meld/rig/goal_pose": 0}
    rig_status: dict[str, str] = {}
    lock = threading.Lock()

    def count(topic):
        def callback(msg):
            with lock:
                counts[topic] += 1
        return callback

    def diagnostics(msg):
        for status in msg.status:
            if status.name.endswith("reset rig"):
                with lock:
                    rig_status.update({v.key: v.value for v in status.values})

    for topic in counts:
        node.create_subscription(PoseStamped, topic, count(topic), 10)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin)
    spinner.start()

    executable = os.path.join(get_package_prefix("meld_ros"), "lib", "meld_ros", "reset_rig_node")
    config = os.path.join(get_package_share_directory("meld_ros"), "config", "reset_rig_node.yaml")
    rig_cmd = [executable, "--ros-args", "--params-file", config, "-p", "driver:=fake"]
    rig = subprocess.Popen(rig_cmd, stdout=(work / "rig.log").open("w"), stderr=subprocess.STDOUT)
    sim_cmd = ["ros2", "launch", "meld_ros", "sim.launch.py", f"run_dir:={work / 'run'}",
               f"run_config:={work / 'config.yaml'}", f"env_config:={json.dumps(cfg.env_config)}",
               "device:=cpu"]
    sim = subprocess.Popen(sim_cmd, stdout=(work / "sim.log").open("w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with lock:
                if counts["/sim/meld/rig/goal_pose"] >= args.goals and rig_status:
                    break
            time.sleep(0.2)
        time.sleep(2.0)  # let a stray goal arrive, if any would
        publishers = node.get_publishers_info_by_topic("/meld/rig/goal_pose")
        sim_subscribers = node.get_subscriptions_info_by_topic("/sim/meld/rig/goal_pose")
    finally:
        os.killpg(sim.pid, signal.SIGINT)
        rig.send_signal(signal.SIGINT)
        sim.wait(timeout=60)
        rig.wait(timeout=30)
        spinning.clear()
        spinner.join()
        executor.shutdown()
        rclpy.try_shutdown()
    rig_log = (work / "rig.log").read_text()
    names = lambda infos: [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos]  # noqa: E731
    with lock:
        print(json.dumps({
            "goals_seen": counts,
            "real_rig_state": rig_status.get("state"),
            "real_rig_moves": int(rig_status.get("moves", -1)),
            "real_rig_goal_seq": int(rig_status.get("goal_seq", -1)),
            "real_rig_log_goal_lines": sum(1 for line in rig_log.splitlines() if "goal" in line),
            "publishers_on_/meld/rig/goal_pose": names(publishers),
            "subscribers_on_/sim/meld/rig/goal_pose": names(sim_subscribers),
            "workdir": str(work),
        }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
