"""meld_core must import and run with no ROS installed (DESIGN.md: the one layering rule).

Every meld_core module is imported in a fresh interpreter in which rclpy and the ROS message
packages are made unimportable; any import that reaches them fails the test.
"""

import pkgutil
import subprocess
import sys
import textwrap

import meld_core

ROS_MODULES = [
    "rclpy", "rosidl_runtime_py", "launch", "launch_ros", "launch_testing", "cv_bridge",
    "ament_index_python", "std_msgs", "std_srvs", "sensor_msgs", "geometry_msgs",
    "diagnostic_msgs", "lifecycle_msgs", "builtin_interfaces", "rcl_interfaces",
    "interbotix_xs_msgs", "message_filters", "meld_ros",
]


def core_modules() -> list[str]:
    names = ["meld_core"]
    for info in pkgutil.walk_packages(meld_core.__path__, prefix="meld_core."):
        names.append(info.name)
    return sorted(names)


def import_with_ros_blocked(modules: list[str], extra_path: str = "") -> subprocess.CompletedProcess:
    """Import `modules` in a fresh interpreter where every ROS package raises ImportError."""
    script = textwrap.dedent(
        f"""
        import importlib, sys
        if {extra_path!r}:
            sys.path.insert(0, {extra_path!r})
        BLOCKED = {ROS_MODULES!r}

        class RosBlocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"meld_core reached ROS module {{name!r}}")
                return None

        sys.meta_path.insert(0, RosBlocker())
        for module in {modules!r}:
            importlib.import_module(module)
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_every_core_module_imports_without_ros():
    modules = core_modules()
    assert "meld_core.cli" in modules and "meld_core.envs.base" in modules
    result = import_with_ros_blocked(modules)
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_check_catches_a_module_that_imports_rclpy(tmp_path):
    (tmp_path / "sneaky_module.py").write_text("import rclpy  # a layering violation\n")
    result = import_with_ros_blocked(["meld_core", "sneaky_module"], extra_path=str(tmp_path))
    assert result.returncode != 0
    assert "meld_core reached ROS module 'rclpy'" in result.stderr
