"""Meta-train MELD on the real WidowX: xs_sdk, two webcams, arm bridge, reset rig, agent.

    ros2 launch meld_ros train_widowx.launch.py run_dir:=runs/widowx preset:=small
    ros2 launch meld_ros train_widowx.launch.py run_dir:=runs/widowx resume:=true record:=true
    ros2 launch meld_ros train_widowx.launch.py scene_camera:=/dev/meld_scene_cam \
        wrist_camera:=/dev/meld_wrist_cam rig_port:=/dev/meld_rig use_success:=true success_interface:=eth1

Starts interbotix_xsarm_control's xsarm_control.launch.py (xs_sdk for the arm, with our mode
config: arm group in velocity mode), camera_node twice (scene, wrist), arm_node (safety filter,
deadman) with arm_guard_node (zeros when arm_node goes silent; the launch shuts down if arm_node
exits), reset_rig_node (lifecycle, autostart), optionally success_node, agent_node in train mode,
and with record:=true a `ros2 bag record` (MCAP) of the run's topics into <run_dir>/bags/.
Ctrl-C: the agent checkpoints and exits; resume:=true continues. Try the same graph in simulation
first: `ros2 launch meld_ros sim.launch.py`.
"""

from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription
from meld_ros.launch_helpers import (
    agent_node,
    bag_recorder,
    config_file,
    declare,
    guarded_arm,
    robot_peripherals,
    shutdown_when_done,
    typed,
    xs_sdk,
)

ARGUMENTS = [
    ("robot_model", "wx200", "Interbotix arm model (xsarm_control's robot_model), e.g. wx200 or wx250"),
    ("robot_name", "wx200", "xs_sdk namespace (xsarm_control's robot_name; normally = robot_model)"),
    (
        "mode_configs",
        config_file("interbotix_modes.yaml"),
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
    ("record", "false", "record the run's topics with ros2 bag (MCAP) into <run_dir>/bags/<timestamp>"),
]


def generate_launch_description() -> LaunchDescription:
    robot = LaunchConfiguration("robot_name")
    agent = agent_node(
        {
            "mode": "train",
            "robot_name": robot,
            "run_dir": LaunchConfiguration("run_dir"),
            "resume": typed("resume", bool),
            "preset": LaunchConfiguration("preset"),
            "stage": LaunchConfiguration("stage"),
            "offline_run": typed("offline_run", str),
            "iterations": typed("iterations", int),
            "device": LaunchConfiguration("device"),
            "io.use_success_topic": typed("use_success", bool),
        }
    )
    return LaunchDescription(
        [
            *declare(ARGUMENTS),
            xs_sdk(robot, LaunchConfiguration("use_rviz")),
            *robot_peripherals(),
            *guarded_arm(robot),
            agent,
            shutdown_when_done(agent, "agent_node finished"),
            bag_recorder(robot),
        ]
    )
