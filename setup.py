"""ament_python package `meld_ros`: installs `meld_core` (ROS-free) and `meld_ros` (rclpy nodes).

Works with both `colcon build` (ROS 2) and `pip install -e .` (no ROS).
"""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "meld_ros"

# One row per node: executable name -> module in meld_ros/ with a main().
NODES = [
    "camera_node",
    "arm_node",
    "arm_guard_node",
    "reset_rig_node",
    "success_node",
    "agent_node",
    "sim_node",
    "gz_velocity_adapter_node",
]


EXPORT = ["mcap>=1.1,<2", "mcap-ros2-support>=0.5,<1", "av>=12,<19", "pyarrow>=14,<27", "pandas>=2,<4"]
GYM = ["gymnasium>=1.0,<2"]


def _tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files rows that mirror every file below `src` into share/meld_ros/src."""
    rows: dict[str, list[str]] = {}
    for path in sorted(glob(os.path.join(src, "**", "*"), recursive=True)):
        if os.path.isfile(path) and "/build/" not in path and "__pycache__" not in path:
            rows.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(rows.items())


def _console_scripts() -> list[str]:
    scripts = ["meld = meld_core.cli:main"]
    for node in NODES:
        if os.path.exists(os.path.join(PACKAGE, f"{node}.py")):
            scripts.append(f"{node} = {PACKAGE}.{node}:main")
    return scripts


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["meld_core", "meld_core.*", "meld_ros", "meld_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *_tree("launch"),
        *_tree("config"),
        *_tree("urdf"),
        *_tree("hardware"),
    ],
    python_requires=">=3.10",
    # torch is deliberately first-class but installed separately first (see README): letting pip
    # resolve it would pull the multi-gigabyte CUDA build on machines that want the CPU wheel.
    # Every entry has an upper bound at the next major release after the one CI installs and tests
    # (tests/test_dependencies.py checks both), so a new major cannot change a fresh install. Images
    # go to ROS without cv_bridge (meld_core/bridge/images.py): any OpenCV within the bound works.
    install_requires=[
        "numpy>=1.22,<3",
        "torch>=2.0,<3",
        "opencv-python-headless>=4.6,<6",
        "pyserial>=3.5,<4",
        "pyyaml>=6.0,<7",
        "tensorboard>=2.10,<3",
        "matplotlib>=3.5,<4",
        "tqdm>=4.60,<5",
        "xacro>=2.0,<3",
        "tyro>=1.0,<2",  # `meld train --SECTION.FIELD=VALUE` from the config dataclasses
        "av>=12,<19",  # PyAV: H.264 MP4 evaluation videos (its wheels bundle FFmpeg with libx264)
        "pillow>=9.1,<14",  # GIFs of evaluation videos for TensorBoard, reading plots back
    ],
    extras_require={
        "sim": ["mujoco>=3.1,<5"],
        # `meld export` (MCAP with ROS 2 messages, LeRobot datasets) and the gymnasium environments
        "export": EXPORT,
        "gym": GYM,
        # ruff changes its rules in minor releases: bounded at the next one
        "test": ["mujoco>=3.1,<5", "pytest>=7,<10", "pytest-timeout>=2.1,<3", "ruff>=0.4,<0.18",
                 "yourdfpy>=0.0.56,<0.1", "hypothesis>=6.100,<7", *EXPORT, *GYM],
    },
    zip_safe=True,
    maintainer="meld_ros developers",
    maintainer_email="dev@meld-ros.example",
    description="MELD meta-RL from images on a WidowX arm, with ROS 2 nodes and a MuJoCo simulation.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": _console_scripts()},
)
