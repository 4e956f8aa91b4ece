"""The ROS layer without ROS: every node module and launch file compiles, console scripts point at
existing main() functions, and every executable a launch file starts is installed by setup.py (or
comes from an external package named here)."""

import ast
import py_compile
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODE_MODULES = sorted((ROOT / "meld_ros").glob("*.py"))
# Executables of other packages that our launch files start, by package.
EXTERNAL = {
    "interbotix_xsarm_control": set(),  # included as a launch file, starts xs_sdk itself
    "ros_gz_sim": {"create"},
    "ros_gz_bridge": {"parameter_bridge"},
    "robot_state_publisher": {"robot_state_publisher"},
    "controller_manager": {"spawner"},
}


def setup_nodes() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NODES" for t in node.targets):
            return [elt.value for elt in node.value.elts]
    raise AssertionError("setup.py has no NODES list")


def installed_console_scripts() -> dict[str, str]:
    """What setup.py's _console_scripts() installs, evaluated the way setup.py does."""
    scripts = {}
    for node in setup_nodes():
        if (ROOT / "meld_ros" / f"{node}.py").exists():
            scripts[node] = f"meld_ros.{node}:main"
    return scripts


def test_expected_launch_files_exist():
    names = {p.name for p in LAUNCH_FILES}
    assert {"train_widowx.launch.py", "eval.launch.py", "sim.launch.py", "sim_gazebo.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES + NODE_MODULES, ids=lambda p: p.name)
def test_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_every_listed_node_exists_and_has_main():
    scripts = installed_console_scripts()
    assert set(scripts) == set(setup_nodes()), "a node listed in setup.py NODES has no module in meld_ros/"
    for target in scripts.values():
        module, func = target.split(":")
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func]
        assert mains, f"{module} has no top-level {func}()"
        assert tree.body and isinstance(tree.body[0], ast.Expr), f"{module} needs a module docstring"
        assert "ros2 " in ast.get_docstring(tree).splitlines()[0] or "ros2 run" in ast.get_docstring(tree), (
            f"{module}: the docstring should show the command that runs it"
        )


def launch_nodes(path: Path) -> list[tuple[str, str]]:
    """(package, executable) of every Node(...) call with literal arguments in a launch file."""
    found = []
    tree = ast.parse(path.read_text())
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and getattr(call.func, "id", getattr(call.func, "attr", None)) == "Node"
        ):
            kw = {k.arg: k.value for k in call.keywords}
            assert "package" in kw and "executable" in kw, f"{path.name}: Node() without package/executable"
            assert isinstance(kw["package"], ast.Constant) and isinstance(kw["executable"], ast.Constant), (
                f"{path.name}: package and executable must be literals so this check can see them"
            )
            found.append((kw["package"].value, kw["executable"].value))
    return found


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_only_start_installed_executables(path):
    installed = set(installed_console_scripts())
    nodes = launch_nodes(path)
    assert nodes, f"{path.name} starts no nodes"
    for package, executable in nodes:
        if package == "meld_ros":
            assert executable in installed, (
                f"{path.name} starts meld_ros/{executable}, which setup.py does not install"
            )
        else:
            assert package in EXTERNAL and executable in EXTERNAL[package], (
                f"{path.name} starts {package}/{executable}: name it in EXTERNAL if it is intended"
            )
    for package in re.findall(r'FindPackageShare\("([a-z_]+)"\)', path.read_text()):
        assert package == "meld_ros" or package in EXTERNAL, (
            f"{path.name} includes from unknown package {package}"
        )


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_argument_has_a_description(path):
    tree = ast.parse(path.read_text())
    rows = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ARGUMENTS"
    ]
    assert rows, f"{path.name} declares its arguments in an ARGUMENTS table"
    for row in rows[0].value.elts:
        name, _default, description = row.elts
        assert (
            isinstance(description, (ast.Constant, ast.JoinedStr)) and len(ast.unparse(description)) > 12
        ), f"{path.name}: argument {ast.unparse(name)} needs a description"
    assert "DeclareLaunchArgument(name, default_value=default, description=text)" in path.read_text()


def test_the_check_sees_an_uninstalled_executable(tmp_path):
    bad = tmp_path / "bad.launch.py"
    bad.write_text('from launch_ros.actions import Node\nNode(package="meld_ros", executable="ghost_node")\n')
    assert ("meld_ros", "ghost_node") in launch_nodes(bad)
    assert "ghost_node" not in installed_console_scripts()


def test_data_files_install_launch_and_config():
    text = (ROOT / "setup.py").read_text()
    assert '*_tree("launch")' in text and '*_tree("config")' in text and '*_tree("urdf")' in text
