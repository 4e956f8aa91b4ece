"""Meta-test a trained run on its held-out tasks, on the robot or in simulation.

    ros2 launch meld_ros eval.launch.py run_dir:=runs/widowx eval_rounds:=3
    ros2 launch meld_ros eval.launch.py run_dir:=runs/widowx use_sim:=true episodes_per_trial:=2

The held-out tasks are the run's eval tasks (its config.yaml fixes them); each round visits every
one with a fresh belief and records success per episode position (run_dir/eval/summary.json,
videos, reward-prediction plots), exactly like `meld eval`. On the robot it starts the same
hardware graph as train_widowx.launch.py (arm_node with arm_guard_node; record:=true writes an MCAP
bag into <run_dir>/bags/); with use_sim:=true it uses sim_node instead, and the simulated graph runs
in the `sim` namespace (sim_namespace), so it never answers on the robot's names.
"""

from launch.actions import GroupAction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from meld_ros.launch_helpers import (
    agent_node,
    bag_recorder,
    config_file,
    declare,
    guarded_arm,
    meld_node,
    namespaced,
    robot_peripherals,
    shutdown_when_done,
    typed,
    xs_sdk,
)

ARGUMENTS = [
    ("run_dir", "runs/widowx", "the trained run to meta-test (its eval tasks are the held-out tasks)"),
    ("eval_rounds", "3", "rounds over the held-out tasks (trials per task)"),
    ("episodes_per_trial", "0", "episodes per trial (0 = the run's)"),
    ("checkpoint", "", "checkpoint file, or 'best' (best on train-task validation); empty = the newest"),
    ("videos", "2", "trials recorded as MP4 with reward-prediction plots"),
    ("device", "auto", "torch device: auto | cpu | cuda"),
    ("use_sim", "false", "meta-test in the MuJoCo simulation (sim_node) instead of on the robot"),
    (
        "sim_namespace",
        "sim",
        "use_sim: ROS namespace of the simulated graph (not empty: it must not answer on the robot's names)",
    ),
    ("robot_model", "wx200", "Interbotix arm model (xsarm_control's robot_model)"),
    ("robot_name", "wx200", "xs_sdk namespace (normally = robot_model)"),
    (
        "mode_configs",
        config_file("interbotix_modes.yaml"),
        "xs_sdk mode config YAML (arm group in velocity mode, U2D2 port); default: ours",
    ),
    ("scene_camera", "/dev/video0", "scene webcam: device index, /dev path or video file"),
    ("wrist_camera", "/dev/video2", "wrist webcam: device index, /dev path or video file"),
    ("rig_port", "/dev/ttyACM0", "serial port of the reset-rig Arduino"),
    ("use_success", "false", "start success_node and take success from the Ethernet link state"),
    ("success_interface", "eth1", "network interface the router port's cable connects to"),
    ("record", "false", "record the run's topics with ros2 bag (MCAP) into <run_dir>/bags/<timestamp>"),
]


def generate_launch_description() -> LaunchDescription:
    robot = LaunchConfiguration("robot_name")
    hardware = GroupAction(
        condition=UnlessCondition(LaunchConfiguration("use_sim")),
        actions=[xs_sdk(robot, "false"), *robot_peripherals()],
    )
    # the simulated world of the run itself (its config.yaml's env_config)
    sim = meld_node(
        "sim_node",
        "sim",
        {"robot_name": robot, "run_dir": LaunchConfiguration("run_dir")},
        condition=IfCondition(LaunchConfiguration("use_sim")),
    )
    # the arm, the agent (and the simulation) in the `sim` namespace when simulated, else in the root one
    namespace = PythonExpression(
        ["'", LaunchConfiguration("sim_namespace"), "' if '", LaunchConfiguration("use_sim"),
         "'.lower() in ('true', '1') else ''"]
    )
    use_success_topic = PythonExpression(
        [
            "'",
            LaunchConfiguration("use_success"),
            "'.lower() in ('true', '1') and '",
            LaunchConfiguration("use_sim"),
            "'.lower() not in ('true', '1')",
        ]
    )
    agent = agent_node(
        {
            "mode": "eval",
            "robot_name": robot,
            "run_dir": LaunchConfiguration("run_dir"),
            "eval_rounds": typed("eval_rounds", int),
            "eval_episodes_per_trial": typed("episodes_per_trial", int),
            "eval_checkpoint": typed("checkpoint", str),
            "eval_videos": typed("videos", int),
            "device": LaunchConfiguration("device"),
            "io.use_success_topic": ParameterValue(use_success_topic, value_type=bool),
        }
    )
    return LaunchDescription(
        [
            *declare(ARGUMENTS),
            hardware,
            namespaced(namespace, [sim, *guarded_arm(robot), agent]),
            shutdown_when_done(agent, "meta-test finished"),
            shutdown_when_done(sim, "sim_node exited"),
            bag_recorder(robot, namespace),
        ]
    )
