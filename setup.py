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
    "reset_rig_node",
    "success_node",
    "agent_node",
    "sim_node",
    "gz_velocity_adapter_node",
]


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
    install_requires=[
        "numpy>=1.22",
        "torch>=2.0",
        "opencv-python-headless>=4.6",
        "pyserial>=3.5",
        "pyyaml>=6.0",
        "tensorboard>=2.10",
        "matplotlib>=3.5",
        "tqdm>=4.60",
        "xacro>=2.0",
        "tyro>=1.0,<2",  # `meld train --SECTION.FIELD=VALUE` from the config dataclasses
        "av>=12,<19",  # PyAV: H.264 MP4 evaluation videos (its wheels bundle FFmpeg with libx264)
        "pillow>=9.1",  # GIFs of evaluation videos for TensorBoard, reading plots back
    ],
    extras_require={
        "sim": ["mujoco>=3.1"],
        "test": ["mujoco>=3.1", "pytest>=7", "pytest-timeout>=2.1", "ruff>=0.4", "yourdfpy>=0.0.56"],
    },
    zip_safe=True,
    maintainer="meld_ros developers",
    maintainer_email="dev@meld-ros.example",
    description="MELD meta-RL from images on a WidowX arm, with ROS 2 nodes and a MuJoCo simulation.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": _console_scripts()},
)
