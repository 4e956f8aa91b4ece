"""The whole meld graph against the MuJoCo simulation: sim_node + arm_node (+ its guard) + agent_node.

    ros2 launch meld_ros sim.launch.py                                   # train, preset small
    ros2 launch meld_ros sim.launch.py mode:=train preset:=smoke iterations:=1 run_dir:=/tmp/meld_sim
    ros2 launch meld_ros sim.launch.py mode:=eval run_dir:=runs/widowx eval_rounds:=3

sim_node stands in for xs_sdk, both cameras and the reset rig behind the same topics and
services, so arm_node (velocity mode, safety filter, deadman), arm_guard_node and agent_node (the
meld trainer over a ROS TaskEnv at 3.3 Hz) run exactly as on the robot. The whole graph runs in the
`sim` namespace (/sim/meld/..., /sim/wx200/...) and, by default, discovers only this machine, so a
simulation on the robot PC never reaches the real arm or rig. The launch ends when the agent ends
(or when arm_node or sim_node exits). Ctrl-C: the agent checkpoints and exits; resume:=true continues.
"""

from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription
from meld_ros.launch_helpers import (
    agent_node,
    declare,
    discovery_range,
    guarded_arm,
    meld_node,
    namespaced,
    shutdown_when_done,
    typed,
)

ARGUMENTS = [
    ("mode", "train", "train: meta-train (Algorithm 1); eval: meta-test a trained run (Algorithm 2)"),
    ("run_dir", "runs/widowx_sim", "run directory (config.yaml, episodes/, checkpoints/, tb/, eval/)"),
    ("resume", "false", "train: continue the run in run_dir"),
    ("preset", "small", "train: run preset (smoke | small | paper)"),
    ("run_config", "", "train: a RunConfig YAML used instead of the preset (e.g. another run's config.yaml)"),
    ("stage", "dense", "train: dense (stage 1) or sparse (stage 2 of the two-stage recipe)"),
    ("iterations", "-1", "train: number of training iterations (-1 = the preset's)"),
    ("device", "auto", "torch device of the learner: auto | cpu | cuda"),
    ("eval_rounds", "3", "eval: rounds over the held-out tasks"),
    ("robot_model", "wx200", "robot name/namespace the simulation answers under (as xs_sdk's robot_name)"),
    (
        "env_config",
        "{}",
        "YAML overrides of the simulated environment (WidowXInsertionConfig); keep them "
        "equal to the run's env_config",
    ),
    ("shutdown_when_done", "true", "end the launch when the agent has finished training or evaluating"),
    ("seed", "0", "seed of the simulation"),
    (
        "namespace",
        "sim",
        "ROS namespace of the whole simulated graph (not empty: the simulation must not answer on "
        "the real robot's topics and services)",
    ),
    (
        "discovery_range",
        "LOCALHOST",
        "ROS_AUTOMATIC_DISCOVERY_RANGE of the graph (LOCALHOST | SUBNET | SYSTEM_DEFAULT | OFF; "
        "empty = the environment's); Humble: ROS_LOCALHOST_ONLY",
    ),
]


def generate_launch_description() -> LaunchDescription:
    robot = LaunchConfiguration("robot_model")
    sim = meld_node(
        "sim_node",
        "sim",
        {"robot_name": robot, "env_config": typed("env_config", str), "seed": typed("seed", int)},
    )
    agent = agent_node(
        {
            "robot_name": robot,
            "mode": LaunchConfiguration("mode"),
            "run_dir": LaunchConfiguration("run_dir"),
            "resume": typed("resume", bool),
            "preset": LaunchConfiguration("preset"),
            "run_config": typed("run_config", str),
            "shutdown_when_done": typed("shutdown_when_done", bool),
            "stage": LaunchConfiguration("stage"),
            "iterations": typed("iterations", int),
            "device": LaunchConfiguration("device"),
            "eval_rounds": typed("eval_rounds", int),
        }
    )
    return LaunchDescription(
        [
            *declare(ARGUMENTS),
            discovery_range(),
            namespaced(LaunchConfiguration("namespace"), [sim, *guarded_arm(robot), agent]),
            shutdown_when_done(agent, "agent_node finished"),
            shutdown_when_done(sim, "sim_node exited"),  # no robot to talk to: do not wait for timeouts
        ]
    )
