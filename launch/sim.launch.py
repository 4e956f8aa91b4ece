"""The whole meld graph against the MuJoCo simulation: sim_node + arm_node + agent_node.

    ros2 launch meld_ros sim.launch.py                                   # train, preset small
    ros2 launch meld_ros sim.launch.py mode:=train preset:=smoke iterations:=1 run_dir:=/tmp/meld_sim
    ros2 launch meld_ros sim.launch.py mode:=eval run_dir:=runs/widowx eval_rounds:=3

sim_node stands in for xs_sdk, both cameras and the reset rig behind the same topics and
services, so arm_node (velocity mode, safety filter, deadman) and agent_node (the meld trainer
over a ROS TaskEnv at 3.3 Hz) run exactly as on the robot. The launch ends when the agent ends.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

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
    ("env_config", "{}", "YAML overrides of the simulated environment (WidowXInsertionConfig); keep them "
     "equal to the run's env_config"),
    ("shutdown_when_done", "true", "end the launch when the agent has finished training or evaluating"),
    ("seed", "0", "seed of the simulation"),
]


def generate_launch_description() -> LaunchDescription:
    config = PathJoinSubstitution([FindPackageShare("meld_ros"), "config"])
    robot = LaunchConfiguration("robot_model")
    sim = Node(
        package="meld_ros",
        executable="sim_node",
        name="sim",
        output="screen",
        parameters=[
            PathJoinSubstitution([config, "sim_node.yaml"]),
            {
                "robot_name": robot,
                "env_config": ParameterValue(LaunchConfiguration("env_config"), value_type=str),
                "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
            },
        ],
    )
    arm = Node(
        package="meld_ros",
        executable="arm_node",
        name="arm",
        output="screen",
        parameters=[PathJoinSubstitution([config, "arm_node.yaml"]), {"robot_name": robot}],
    )
    agent = Node(
        package="meld_ros",
        executable="agent_node",
        name="agent",
        output="screen",
        # stopping finishes the running episode and writes a checkpoint: give it time before SIGKILL
        sigterm_timeout="30",
        sigkill_timeout="30",
        parameters=[
            PathJoinSubstitution([config, "agent_node.yaml"]),
            {
                "robot_name": robot,
                "mode": LaunchConfiguration("mode"),
                "run_dir": LaunchConfiguration("run_dir"),
                "resume": ParameterValue(LaunchConfiguration("resume"), value_type=bool),
                "preset": LaunchConfiguration("preset"),
                "run_config": ParameterValue(LaunchConfiguration("run_config"), value_type=str),
                "shutdown_when_done": ParameterValue(LaunchConfiguration("shutdown_when_done"),
                                                     value_type=bool),
                "stage": LaunchConfiguration("stage"),
                "iterations": ParameterValue(LaunchConfiguration("iterations"), value_type=int),
                "device": LaunchConfiguration("device"),
                "eval_rounds": ParameterValue(LaunchConfiguration("eval_rounds"), value_type=int),
            },
        ],
    )
    return LaunchDescription(
        [
            *[
                DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS
            ],
            sim,
            arm,
            agent,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=agent, on_exit=[EmitEvent(event=Shutdown(reason="agent_node finished"))]
                )
            ),
        ]
    )
