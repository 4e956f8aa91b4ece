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


HELPERS = ROOT / "meld_ros" / "launch_helpers.py"


def _literal(node: ast.AST, what: str, where: str) -> str:
    assert isinstance(node, ast.Constant) and isinstance(node.value, str), (
        f"{where}: {what} must be a literal so this check can see it"
    )
    return node.value


def _direct_starts(tree: ast.AST, where: str) -> list[tuple[str, str]]:
    """(package, executable) of Node(...) and meld_node("<executable>", ...) calls under `tree`."""
    found = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        name = getattr(call.func, "id", getattr(call.func, "attr", None))
        if name == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            assert "package" in kw and "executable" in kw, f"{where}: Node() without package/executable"
            found.append(
                (_literal(kw["package"], "package", where), _literal(kw["executable"], "executable", where))
            )
        elif name == "meld_node":
            assert call.args, f"{where}: meld_node() without an executable"
            found.append(("meld_ros", _literal(call.args[0], "meld_node's executable", where)))
    return found


def helper_starts() -> dict[str, list[tuple[str, str]]]:
    """For each function of meld_ros/launch_helpers.py, the executables it starts itself. meld_node
    is left out: it starts whatever executable its caller names, and its callers are read instead."""
    tree = ast.parse(HELPERS.read_text())
    return {
        f.name: _direct_starts(f, f"launch_helpers.{f.name}")
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name != "meld_node"
    }


def launch_nodes(path: Path) -> list[tuple[str, str]]:
    """(package, executable) of every node a launch file starts: its own Node(...)/meld_node(...)
    calls and those of the launch_helpers functions it calls."""
    tree = ast.parse(path.read_text())
    found = _direct_starts(tree, path.name)
    helpers = helper_starts()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) in helpers:
            found.extend(helpers[call.func.id])
    return found


def test_helpers_start_what_they_say():
    starts = helper_starts()
    assert set(starts["robot_peripherals"]) == {
        ("meld_ros", "camera_node"),
        ("meld_ros", "reset_rig_node"),
        ("meld_ros", "success_node"),
    }
    assert starts["agent_node"] == [("meld_ros", "agent_node")]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_started_meld_node_has_its_config_yaml(path):
    for package, executable in launch_nodes(path):
        if package == "meld_ros":
            assert (ROOT / "config" / f"{executable}.yaml").exists(), (
                f"{path.name}: no config/{executable}.yaml"
            )


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
    assert "*declare(ARGUMENTS)" in path.read_text(), f"{path.name}: declare every ARGUMENTS row"


def test_the_check_sees_an_uninstalled_executable(tmp_path):
    bad = tmp_path / "bad.launch.py"
    bad.write_text(
        'from launch_ros.actions import Node\nNode(package="meld_ros", executable="ghost_node")\n'
        'meld_node("phantom_node", "phantom")\nrobot_peripherals()\n'
    )
    assert {("meld_ros", "ghost_node"), ("meld_ros", "phantom_node"), ("meld_ros", "camera_node")} <= set(
        launch_nodes(bad)
    )
    assert "ghost_node" not in installed_console_scripts()


def test_the_check_rejects_an_executable_it_cannot_read(tmp_path):
    bad = tmp_path / "bad.launch.py"
    bad.write_text('exe = "arm_node"\nNode(package="meld_ros", executable=exe)\n')
    with pytest.raises(AssertionError, match="must be a literal"):
        launch_nodes(bad)


def test_data_files_install_launch_and_config():
    text = (ROOT / "setup.py").read_text()
    assert '*_tree("launch")' in text and '*_tree("config")' in text and '*_tree("urdf")' in text
