"""The arm and both cameras in Gazebo (gz sim), for users who have it: our URDF with ros2_control.

    ros2 launch meld_ros sim_gazebo.launch.py                 # Jazzy + Harmonic
    ros2 launch meld_ros sim_gazebo.launch.py gz_flavour:=ign # Humble + Fortress (ign_ros2_control)
    ros2 launch meld_ros sim_gazebo.launch.py headless:=true

Starts gz sim (ros_gz_sim's gz_sim.launch.py, a world with the Sensors system so cameras render),
robot_state_publisher with urdf/meld_scene.urdf.xacro (use_ros2_control:=true: velocity command
interfaces on the arm, the two cameras), spawns it with `ros_gz_sim create -topic robot_description`,
bridges /clock and both camera topics (ros_gz_bridge), spawns joint_state_broadcaster,
velocity_controller (JointGroupVelocityController) and rig_controller after the robot exists, and
runs gz_velocity_adapter_node (xs_sdk's set_operating_modes + commands/joint_group over the
controller), arm_node and arm_guard_node, all with use_sim_time. Our nodes and the camera topics live
in the `sim` namespace (namespace argument; /sim/meld/scene/image_raw, /sim/wx200/joint_states, ...),
so the simulation never answers on the real robot's names; the joint_state_broadcaster's
/joint_states is relayed to <namespace>/<robot_name>/joint_states by the adapter. The reset rig is a
position controller here (/rig_controller/commands: [rail m, rotation rad]); agent training runs
against sim.launch.py.
"""

from launch.actions import (
    IncludeLaunchDescription,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit
from launch.substitutions import (
    Command,
    FindExecutable,
    LaunchConfiguration,
    PathJoinSubstitution,
    PythonExpression,
)
from launch_ros.actions import Node, SetUseSimTime
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from meld_ros.launch_helpers import config_file, declare, guarded_arm, meld_node, namespaced

ARGUMENTS = [
    ("robot_name", "wx200", "namespace arm_node and the adapter use (as xs_sdk's robot_name)"),
    (
        "gz_flavour",
        "gz",
        "gz (Jazzy + Harmonic, gz_ros2_control) or ign (Humble + Fortress, ign_ros2_control)",
    ),
    ("headless", "false", "run the gz server only, with headless rendering for the cameras"),
    (
        "world",
        config_file("gz_world.sdf"),
        "SDF world (must load the Sensors system for the cameras)",
    ),
    (
        "namespace",
        "sim",
        "ROS namespace of our nodes and the camera topics (not empty: not the real robot's names)",
    ),
]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("meld_ros")
    robot = LaunchConfiguration("robot_name")
    controllers = config_file("gz_controllers.yaml")
    description = ParameterValue(
        Command(
            [
                FindExecutable(name="xacro"),
                " ",
                PathJoinSubstitution([share, "urdf", "meld_scene.urdf.xacro"]),
                " use_ros2_control:=true",
                " gz_flavour:=",
                LaunchConfiguration("gz_flavour"),
                " controllers_file:=",
                controllers,
            ]
        ),
        value_type=str,
    )
    gz_args = PythonExpression(
        [
            "'-r -v 2 ' + ('-s --headless-rendering ' if '",
            LaunchConfiguration("headless"),
            "'.lower() in ('true', '1') else '') + '",
            LaunchConfiguration("world"),
            "'",
        ]
    )
    gz = IncludeLaunchDescription(
        PathJoinSubstitution([FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"]),
        launch_arguments={"gz_args": gz_args, "on_exit_shutdown": "true"}.items(),
    )
    rsp = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        output="screen",
        parameters=[{"robot_description": description}],
    )
    spawn = Node(
        package="ros_gz_sim",
        executable="create",
        output="screen",
        arguments=["-topic", "robot_description", "-name", "meld_widowx", "-allow_renaming", "true"],
    )
    # relative camera topics: /<namespace>/meld/<camera>/image_raw on the ROS side, the URDF's on the gz side
    bridge = Node(
        package="ros_gz_bridge",
        executable="parameter_bridge",
        output="screen",
        arguments=[
            "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",
            "meld/scene/image_raw@sensor_msgs/msg/Image[gz.msgs.Image",
            "meld/wrist/image_raw@sensor_msgs/msg/Image[gz.msgs.Image",
        ],
    )
    spawners = [
        Node(
            package="controller_manager",
            executable="spawner",
            output="screen",
            arguments=[name, "--controller-manager", "/controller_manager"],
        )
        for name in ("joint_state_broadcaster", "velocity_controller", "rig_controller")
    ]
    adapter = meld_node("gz_velocity_adapter_node", "gz_velocity_adapter", {"robot_name": robot})
    return LaunchDescription(
        [
            *declare(ARGUMENTS),
            SetEnvironmentVariable("GZ_SIM_RESOURCE_PATH", PathJoinSubstitution([share, ".."])),
            SetUseSimTime(True),
            gz,
            rsp,
            spawn,
            namespaced(LaunchConfiguration("namespace"), [bridge, adapter, *guarded_arm(robot)]),
            RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=spawners)),
        ]
    )
