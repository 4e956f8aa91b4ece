"""The ROS 2 message types and topics of an exported episode, without ROS.

MCAP files of the `ros2` profile carry each type's definition as text (schema encoding `ros2msg`:
the type's own fields, then every type it uses after a `MSG: pkg/Type` separator), and messages
serialised as CDR. The definitions below are field-for-field those of ROS 2 Jazzy (comments and
constants left out: they do not change the wire format), so `ros2 bag play` can publish the messages
to nodes built against the real types.

Topics are the robot graph's (`config/*.yaml`, DESIGN.md): the camera images, the arm's joint
states, the velocity command the agent sends to the arm node, and the success signal; what the
graph keeps inside a node (the filtered command, the policy's action, the rewards, episode
boundaries) gets a topic under /meld of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEPARATOR = "=" * 80

_TIME = "int32 sec\nuint32 nanosec\n"
_HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
_DIMENSION = "string label\nuint32 size\nuint32 stride\n"
_LAYOUT = "MultiArrayDimension[] dim\nuint32 data_offset\n"

# Each type's own fields and the types it uses (in the order they are appended to the definition).
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "builtin_interfaces/msg/Time": (_TIME, ()),
    "std_msgs/msg/Header": (_HEADER, ("builtin_interfaces/msg/Time",)),
    "sensor_msgs/msg/Image": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                              "uint8 is_bigendian\nuint32 step\nuint8[] data\n",
                              ("std_msgs/msg/Header", "builtin_interfaces/msg/Time")),
    "sensor_msgs/msg/CompressedImage": ("std_msgs/Header header\nstring format\nuint8[] data\n",
                                        ("std_msgs/msg/Header", "builtin_interfaces/msg/Time")),
    "sensor_msgs/msg/JointState": ("std_msgs/Header header\nstring[] name\nfloat64[] position\n"
                                   "float64[] velocity\nfloat64[] effort\n",
                                   ("std_msgs/msg/Header", "builtin_interfaces/msg/Time")),
    "std_msgs/msg/Float32": ("float32 data\n", ()),
    "std_msgs/msg/Bool": ("bool data\n", ()),
    "std_msgs/msg/String": ("string data\n", ()),
    "std_msgs/msg/MultiArrayDimension": (_DIMENSION, ()),
    "std_msgs/msg/MultiArrayLayout": (_LAYOUT, ("std_msgs/msg/MultiArrayDimension",)),
    "std_msgs/msg/Float32MultiArray": ("MultiArrayLayout layout\nfloat32[] data\n",
                                       ("std_msgs/msg/MultiArrayLayout", "std_msgs/msg/MultiArrayDimension")),
}


def message_definition(datatype: str) -> str:
    """The `ros2msg` schema text of `datatype` (e.g. "sensor_msgs/msg/JointState")."""
    try:
        own, used = _TYPES[datatype]
    except KeyError:
        raise ValueError(f"no definition for {datatype}; known: {', '.join(sorted(_TYPES))}") from None
    parts = [own]
    for dep in used:
        package, _, name = dep.split("/")
        parts.append(f"{_SEPARATOR}\nMSG: {package}/{name}\n{_TYPES[dep][0]}")
    return "".join(parts)


@dataclass(frozen=True)
class Topics:
    """Topic names of an exported episode (defaults: the robot graph's)."""

    image: str = "/meld/{camera}/image_raw"  # sensor_msgs/Image per camera ({camera}: scene, wrist)
    compressed_image: str = "/meld/{camera}/image_raw/compressed"  # sensor_msgs/CompressedImage
    joint_states: str = "/wx200/joint_states"  # sensor_msgs/JointState: measured position, velocity
    velocity_command: str = "/meld/arm/velocity_command"  # sensor_msgs/JointState: velocity sent (rad/s)
    applied_velocity: str = "/meld/arm/applied_velocity"  # sensor_msgs/JointState: after the safety filter
    action: str = "/meld/agent/action"  # std_msgs/Float32MultiArray: the policy's action in [-1, 1]
    dense_reward: str = "/meld/reward/dense"  # std_msgs/Float32: reward of the step into the frame
    sparse_reward: str = "/meld/reward/sparse"  # std_msgs/Float32
    success: str = "/meld/success"  # std_msgs/Bool: task solved at the frame
    episode: str = "/meld/episode"  # std_msgs/String: JSON of the episode's meta, at its first frame

    def __post_init__(self) -> None:
        for name in ("image", "compressed_image"):
            if "{camera}" not in getattr(self, name):
                raise ValueError(f"Topics.{name} must contain {{camera}}, got {getattr(self, name)!r}")
        for name, value in vars(self).items():
            if not value.startswith("/"):
                raise ValueError(f"Topics.{name} must be an absolute topic name, got {value!r}")


# Joint-state topics of the task families whose robot has a ROS graph; the others use /meld/joint_states.
JOINT_STATE_TOPICS = {"widowx_insertion": "/wx200/joint_states"}


def topics_for(env_name: str) -> Topics:
    """The robot graph's topics for episodes of `env_name`."""
    return Topics(joint_states=JOINT_STATE_TOPICS.get(env_name, "/meld/joint_states"))


def stamp(seconds: float) -> dict[str, int]:
    """builtin_interfaces/Time of a time in seconds."""
    ns = int(round(seconds * 1e9))
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def header(seconds: float, frame_id: str = "") -> dict:
    return {"stamp": stamp(seconds), "frame_id": frame_id}
