"""Meta-train MELD on the real WidowX: xs_sdk, two webcams, arm bridge, reset rig, agent.

    ros2 launch meld_ros train_widowx.launch.py run_dir:=runs/widowx preset:=small
    ros2 launch meld_ros train_widowx.launch.py run_dir:=runs/widowx resume:=true
    ros2 launch meld_ros train_widowx.launch.py scene_camera:=/dev/meld_scene_cam \
        wrist_camera:=/dev/meld_wrist_cam rig_port:=/dev/meld_rig use_success:=true success_interface:=eth1

Starts interbotix_xsarm_control's xsarm_control.launch.py (xs_sdk for the arm, with our mode
config: arm group in velocity mode), camera_node twice (scene, wrist), arm_node (safety filter,
deadman), reset_rig_node (lifecycle, autostart), optionally success_node, and agent_node in train
mode. Try the same graph in simulation first: `ros2 launch meld_ros sim.launch.py`.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, IncludeLaunchDescription, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = [
    ("robot_model", "wx200", "Interbotix arm model (xsarm_control's robot_model), e.g. wx200 or wx250"),
    ("robot_name", "wx200", "xs_sdk namespace (xsarm_control's robot_name; normally = robot_model)"),
    (
        "mode_configs",
        PathJoinSubstitution([FindPackageShare("meld_ros"), "config", "interbotix_modes.yaml"]),
        "xs_sdk mode config YAML (arm group in velocity mode, U2D2 port); default: ours",
    ),
    ("use_rviz", "false", "start RViz from xsarm_control"),
    ("scene_camera", "/dev/video0", "scene webcam: device index, /dev path (udev symlink) or a video file"),
    ("wrist_camera", "/dev/video2", "wrist webcam: device index, /dev path (udev symlink) or a video file"),
    ("rig_port", "/dev/ttyACM0", "serial port of the reset-rig Arduino"),
    ("use_success", "false", "start success_node (Ethernet link state as success signal)"),
    ("success_interface", "eth1", "network interface the router port's cable connects to"),
    ("run_dir", "runs/widowx", "run directory (config.yaml, episodes/, checkpoints/, tb/, eval/)"),
    ("resume", "false", "continue the run in run_dir after a stop or crash"),
    ("preset", "small", "run preset (smoke | small | paper)"),
    ("stage", "dense", "dense (stage 1) or sparse (stage 2 of the two-stage recipe)"),
    ("offline_run", "", "stage 2: the stage-1 run directory whose episodes are mixed in"),
    ("iterations", "-1", "number of training iterations (-1 = the preset's)"),
    ("device", "auto", "torch device of the learner: auto | cpu | cuda"),
]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("meld_ros")
    config = PathJoinSubstitution([share, "config"])
    robot = LaunchConfiguration("robot_name")
    xs_sdk = IncludeLaunchDescription(
        PathJoinSubstitution(
            [FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"]
        ),
        launch_arguments={
            "robot_model": LaunchConfiguration("robot_model"),
            "robot_name": robot,
            "use_rviz": LaunchConfiguration("use_rviz"),
            "mode_configs": LaunchConfiguration("mode_configs"),
        }.items(),
    )
    cameras = [
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
    ]
    arm = Node(
        package="meld_ros",
        executable="arm_node",
        name="arm",
        output="screen",
        parameters=[PathJoinSubstitution([config, "arm_node.yaml"]), {"robot_name": robot}],
    )
    rig = Node(
        package="meld_ros",
        executable="reset_rig_node",
        name="reset_rig",
        output="screen",
        parameters=[
            PathJoinSubstitution([config, "reset_rig_node.yaml"]),
            {"port": LaunchConfiguration("rig_port")},
        ],
    )
    success = Node(
        package="meld_ros",
        executable="success_node",
        name="success",
        output="screen",
        condition=IfCondition(LaunchConfiguration("use_success")),
        parameters=[
            PathJoinSubstitution([config, "success_node.yaml"]),
            {"interface": LaunchConfiguration("success_interface")},
        ],
    )
    agent = Node(
        package="meld_ros",
        executable="agent_node",
        name="agent",
        output="screen",
        sigterm_timeout="30",
        sigkill_timeout="30",  # let the running episode finish and checkpoint
        parameters=[
            PathJoinSubstitution([config, "agent_node.yaml"]),
            {
                "mode": "train",
                "robot_name": robot,
                "run_dir": LaunchConfiguration("run_dir"),
                "resume": ParameterValue(LaunchConfiguration("resume"), value_type=bool),
                "preset": LaunchConfiguration("preset"),
                "stage": LaunchConfiguration("stage"),
                "offline_run": ParameterValue(LaunchConfiguration("offline_run"), value_type=str),
                "iterations": ParameterValue(LaunchConfiguration("iterations"), value_type=int),
                "device": LaunchConfiguration("device"),
                "io.use_success_topic": ParameterValue(LaunchConfiguration("use_success"), value_type=bool),
            },
        ],
    )
    return LaunchDescription(
        [
            *[
                DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS
            ],
            xs_sdk,
            *cameras,
            arm,
            rig,
            success,
            agent,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=agent, on_exit=[EmitEvent(event=Shutdown(reason="agent_node finished"))]
                )
            ),
        ]
    )
