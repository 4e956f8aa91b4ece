"""Time from killing a process to zero velocity on xs_sdk's joint_group, on the simulated ROS graph.

    source <ros>/setup.bash && source <overlay>/install/setup.bash
    MUJOCO_GL=egl python3 bench/arm_stop_latency.py --trials 5 > stop_latency.json

Starts sim_node, arm_node and arm_guard_node (in the `sim` namespace, with their config YAMLs) and
a commander process that stands in for the agent: 0.3 rad/s on the waist at 3.3 Hz on
meld/arm/velocity_command (the direction flips every 2 s). Then, per trial, with the waist turning:

- `kill -9` of arm_node: the time until a zero command is seen on <robot>/commands/joint_group
  (sent by arm_guard_node), and the waist velocity 1.5 s later; arm_node is then restarted;
- `kill -9` of the commander (the agent dying): the time until zeros from arm_node's deadman.

Times are taken in this process at message receipt (monotonic clock), so they include DDS
delivery. Prints one JSON object. Needs ROS 2 and the package built in a colcon overlay.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import rclpy
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from interbotix_xs_msgs.msg import JointGroupCommand
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

COMMANDER = """
import sys, time, rclpy
from sensor_msgs.msg import JointState
rclpy.init()
node = rclpy.create_node("bench_commander", namespace=sys.argv[1])
pub = node.create_publisher(JointState, "meld/arm/velocity_command", 10)
speed = float(sys.argv[2])
while True:  # back and forth every 2 s, so the plug stays inside the workspace box
    sign = 1.0 if int(time.monotonic() / 2.0) % 2 == 0 else -1.0
    pub.publish(JointState(name=["waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate"],
                           velocity=[sign * speed, 0.0, 0.0, 0.0, 0.0]))
    time.sleep(1 / 3.3)
"""


class Watch:
    """Receipt times of joint_group commands and the newest waist velocity."""

    def __init__(self, node, ns: str, robot: str) -> None:
        self.lock = threading.Lock()
        self.commands: list[tuple[float, list[float]]] = []
        self.heartbeats: list[float] = []
        self.waist = (0.0, 0.0)
        node.create_subscription(JointGroupCommand, f"/{ns}/{robot}/commands/joint_group", self._command, 100)
        node.create_subscription(JointState, f"/{ns}/{robot}/joint_states", self._joints, 10)
        node.create_subscription(JointState, f"/{ns}/meld/arm/heartbeat", self._beat, 10)

    def _command(self, msg) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), list(msg.cmd)))

    def _joints(self, msg) -> None:
        if msg.velocity:
            with self.lock:
                self.waist = (time.monotonic(), float(msg.velocity[list(msg.name).index("waist")]))

    def _beat(self, msg) -> None:
        with self.lock:
            self.heartbeats.append(time.monotonic())

    def first_zero_after(self, t: float) -> float | None:
        with self.lock:
            return next((at for at, cmd in self.commands if at > t and not any(cmd)), None)


def outcome(watch: Watch, killed: float) -> dict:
    zero = watch.first_zero_after(killed)
    with watch.lock:
        waist_after = watch.waist[1]
    return {"zeros_after_s": None if zero is None else round(zero - killed, 4),
            "waist_rad_s_after_1_5_s": round(waist_after, 4)}


def start(executable: str, ns: str, args: list[str]) -> subprocess.Popen:
    prefix = get_package_prefix("meld_ros")
    config = os.path.join(get_package_share_directory("meld_ros"), "config", f"{executable}.yaml")
    cmd = [os.path.join(prefix, "lib", "meld_ros", executable), "--ros-args", "-r", f"__ns:=/{ns}",
           "--params-file", config, *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f} s")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--namespace", default="sim_bench")
    parser.add_argument("--speed", type=float, default=0.3, help="waist speed commanded, rad/s")
    args = parser.parse_args()
    ns, robot = args.namespace, "wx200"
    rclpy.init()
    node = rclpy.create_node("bench_arm_stop", namespace=f"/{ns}")
    watch = Watch(node, ns, robot)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin)
    spinner.start()
    procs = {"sim": start("sim_node", ns, []), "guard": start("arm_guard_node", ns, []),
             "arm": start("arm_node", ns, [])}
    commander = None

    def new_commander() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", COMMANDER, f"/{ns}", str(args.speed)])

    def turning() -> bool:
        with watch.lock:
            at, v = watch.waist
        return time.monotonic() - at < 0.5 and abs(abs(v) - args.speed) < 0.05

    results = {"arm_node_killed": [], "agent_killed": []}
    try:
        wait_for(lambda: watch.heartbeats, 120.0, "arm_node in velocity mode (heartbeat)")
        commander = new_commander()
        for _ in range(args.trials):
            wait_for(turning, 60.0, "the waist turning")
            time.sleep(0.5)
            killed = time.monotonic()
            procs["arm"].send_signal(signal.SIGKILL)
            time.sleep(1.5)
            results["arm_node_killed"].append(outcome(watch, killed))
            procs["arm"].wait()
            procs["arm"] = start("arm_node", ns, [])
            beats = len(watch.heartbeats)
            wait_for(lambda b=beats: len(watch.heartbeats) > b + 5, 120.0, "the restarted arm_node")
        for _ in range(args.trials):
            wait_for(turning, 60.0, "the waist turning")
            time.sleep(0.5)
            killed = time.monotonic()
            commander.send_signal(signal.SIGKILL)
            commander.wait()
            time.sleep(1.5)
            results["agent_killed"].append(outcome(watch, killed))
            commander = new_commander()
    finally:
        for proc in [*procs.values(), commander]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in [*procs.values(), commander]:
            if proc is not None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        spinning.clear()
        spinner.join()
        executor.shutdown()
        rclpy.try_shutdown()
    summary = {}
    for case, rows in results.items():
        latencies = [r["zeros_after_s"] for r in rows if r["zeros_after_s"] is not None]
        summary[case] = {"trials": rows, "missed": len(rows) - len(latencies),
                         "median_s": round(statistics.median(latencies), 4) if latencies else None,
                         "max_s": max(latencies) if latencies else None}
    summary["load_average"] = os.getloadavg()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
