"""Meta-test a trained run on its held-out tasks, on the robot or in simulation.

    ros2 launch meld_ros eval.launch.py run_dir:=runs/widowx eval_rounds:=3
    ros2 launch meld_ros eval.launch.py run_dir:=runs/widowx use_sim:=true episodes_per_trial:=2

The held-out tasks are the run's eval tasks (its config.yaml fixes them); each round visits every
one with a fresh belief and records success per episode position (run_dir/eval/summary.json,
videos, reward-prediction plots), exactly like `meld eval`. On the robot it starts the same
hardware graph as train_widowx.launch.py; with use_sim:=true it uses sim_node instead.
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    IncludeLaunchDescription,
    RegisterEventHandler,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = [
    ("run_dir", "runs/widowx", "the trained run to meta-test (its eval tasks are the held-out tasks)"),
    ("eval_rounds", "3", "rounds over the held-out tasks (trials per task)"),
    ("episodes_per_trial", "0", "episodes per trial (0 = the run's)"),
    ("checkpoint", "", "checkpoint file to load (empty = the run's newest)"),
    ("videos", "2", "trials recorded as MP4 with reward-prediction plots"),
    ("device", "auto", "torch device: auto | cpu | cuda"),
    ("use_sim", "false", "meta-test in the MuJoCo simulation (sim_node) instead of on the robot"),
    ("robot_model", "wx200", "Interbotix arm model (xsarm_control's robot_model)"),
    ("robot_name", "wx200", "xs_sdk namespace (normally = robot_model)"),
    (
        "mode_configs",
        PathJoinSubstitution([FindPackageShare("meld_ros"), "config", "interbotix_modes.yaml"]),
        "xs_sdk mode config YAML (arm group in velocity mode, U2D2 port); default: ours",
    ),
    ("scene_camera", "/dev/video0", "scene webcam: device index, /dev path or video file"),
    ("wrist_camera", "/dev/video2", "wrist webcam: device index, /dev path or video file"),
    ("rig_port", "/dev/ttyACM0", "serial port of the reset-rig Arduino"),
    ("use_success", "false", "start success_node and take success from the Ethernet link state"),
    ("success_interface", "eth1", "network interface the router port's cable connects to"),
]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("meld_ros")
    config = PathJoinSubstitution([share, "config"])
    robot = LaunchConfiguration("robot_name")
    on_robot = UnlessCondition(LaunchConfiguration("use_sim"))
    hardware = GroupAction(
        condition=on_robot,
        actions=[
            IncludeLaunchDescription(
                PathJoinSubstitution(
                    [FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"]
                ),
                launch_arguments={
                    "robot_model": LaunchConfiguration("robot_model"),
                    "robot_name": robot,
                    "use_rviz": "false",
                    "mode_configs": LaunchConfiguration("mode_configs"),
                }.items(),
            ),
            *[
                Node(
                    package="meld_ros",
                    executable="camera_node",
                    name=f"{role}_camera",
                    output="screen",
                    parameters=[
                        PathJoinSubstitution([config, "camera_node.yaml"]),
                        {"source": LaunchConfiguration(f"{role}_camera")},
                    ],
                )
                for role in ("scene", "wrist")
            ],
            Node(
                package="meld_ros",
                executable="reset_rig_node",
                name="reset_rig",
                output="screen",
                parameters=[
                    PathJoinSubstitution([config, "reset_rig_node.yaml"]),
                    {"port": LaunchConfiguration("rig_port")},
                ],
            ),
            Node(
                package="meld_ros",
                executable="success_node",
                name="success",
                output="screen",
                condition=IfCondition(LaunchConfiguration("use_success")),
                parameters=[
                    PathJoinSubstitution([config, "success_node.yaml"]),
                    {"interface": LaunchConfiguration("success_interface")},
                ],
            ),
        ],
    )
    sim = Node(
        package="meld_ros",
        executable="sim_node",
        name="sim",
        output="screen",
        condition=IfCondition(LaunchConfiguration("use_sim")),
        # the simulated world of the run itself (its config.yaml's env_config)
        parameters=[
            PathJoinSubstitution([config, "sim_node.yaml"]),
            {"robot_name": robot, "run_dir": LaunchConfiguration("run_dir")},
        ],
    )
    arm = Node(
        package="meld_ros",
        executable="arm_node",
        name="arm",
        output="screen",
        parameters=[PathJoinSubstitution([config, "arm_node.yaml"]), {"robot_name": robot}],
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
    agent = Node(
        package="meld_ros",
        executable="agent_node",
        name="agent",
        output="screen",
        sigterm_timeout="30",
        sigkill_timeout="30",
        parameters=[
            PathJoinSubstitution([config, "agent_node.yaml"]),
            {
                "mode": "eval",
                "robot_name": robot,
                "run_dir": LaunchConfiguration("run_dir"),
                "eval_rounds": ParameterValue(LaunchConfiguration("eval_rounds"), value_type=int),
                "eval_episodes_per_trial": ParameterValue(
                    LaunchConfiguration("episodes_per_trial"), value_type=int
                ),
                "eval_checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "eval_videos": ParameterValue(LaunchConfiguration("videos"), value_type=int),
                "device": LaunchConfiguration("device"),
                "io.use_success_topic": ParameterValue(use_success_topic, value_type=bool),
            },
        ],
    )
    return LaunchDescription(
        [
            *[
                DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS
            ],
            hardware,
            sim,
            arm,
            agent,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=agent, on_exit=[EmitEvent(event=Shutdown(reason="meta-test finished"))]
                )
            ),
        ]
    )
