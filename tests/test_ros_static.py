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


# ------------------------------------------------------------------ issue 19: the graph's safety rules


def _arguments(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    rows = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") ==
                "ARGUMENTS")
    out = {}
    for row in rows.value.elts:
        name, default, _ = row.elts
        out[ast.literal_eval(name)] = ast.unparse(default)
    return out


def _starts_of(expr: ast.AST, assigned: dict[str, ast.AST], where: str) -> list[tuple[str, str]]:
    """Starts of one launch-description entry: a Node/meld_node/helper call, or a name bound to one."""
    if isinstance(expr, ast.Starred):
        expr = expr.value
    if isinstance(expr, ast.Name) and expr.id in assigned:
        expr = assigned[expr.id]
    found = _direct_starts(expr, where)
    helpers = helper_starts()
    for call in ast.walk(expr):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) in helpers:
            found.extend(helpers[call.func.id])
    return found


def namespaced_starts(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(what a launch file starts inside namespaced(...) calls, the namespace expressions used)."""
    tree = ast.parse(path.read_text())
    assigned = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    starts, namespaces = [], []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "namespaced":
            ns, actions = call.args
            namespaces.append(ast.unparse(assigned.get(getattr(ns, "id", ""), ns)))
            for entry in actions.elts:
                starts.extend(_starts_of(entry, assigned, path.name))
    return starts, namespaces


@pytest.mark.parametrize("name", ["sim.launch.py", "sim_gazebo.launch.py"])
def test_simulated_graphs_run_in_the_sim_namespace(name):
    path = ROOT / "launch" / name
    ours = {s for s in launch_nodes(path) if s[0] == "meld_ros"}
    inside, namespaces = namespaced_starts(path)
    inside = {s for s in inside if s[0] == "meld_ros"}
    assert ours and ours == inside, f"{name}: started outside namespaced(...): {ours - inside}"
    assert namespaces == ["LaunchConfiguration('namespace')"] and _arguments(path)["namespace"] == "'sim'"


def test_eval_in_simulation_runs_in_the_sim_namespace():
    path = ROOT / "launch" / "eval.launch.py"
    inside, namespaces = namespaced_starts(path)
    assert {("meld_ros", n) for n in ("sim_node", "arm_node", "arm_guard_node", "agent_node")} == set(inside)
    assert len(namespaces) == 1 and "sim_namespace" in namespaces[0] and "use_sim" in namespaces[0]
    assert _arguments(path)["sim_namespace"] == "'sim'"


def test_sim_nodes_refuse_the_root_namespace():
    from meld_core.bridge.sim_robot import SimNamespaceError, check_sim_namespace

    check_sim_namespace("/sim")
    check_sim_namespace("/", allow_root=True)
    with pytest.raises(SimNamespaceError, match="__ns:=/sim"):
        check_sim_namespace("/")


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_the_arm_always_comes_with_its_guard_and_ends_the_launch_when_it_exits(path):
    nodes = launch_nodes(path)
    if ("meld_ros", "arm_node") not in nodes:
        return
    assert ("meld_ros", "arm_node") not in _direct_starts(ast.parse(path.read_text()), path.name), (
        f"{path.name}: start arm_node through guarded_arm(), which adds arm_guard_node and the exit rule")
    assert ("meld_ros", "arm_guard_node") in nodes


def test_guarded_arm_shuts_the_launch_down_on_the_arm_nodes_exit():
    tree = ast.parse(HELPERS.read_text())
    fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "guarded_arm")
    assert set(helper_starts()["guarded_arm"]) == {("meld_ros", "arm_node"), ("meld_ros", "arm_guard_node")}
    arm_var = next(t.id for n in ast.walk(fn) if isinstance(n, ast.Assign) for t in n.targets
                   if _direct_starts(n.value, "guarded_arm") == [("meld_ros", "arm_node")])
    rules = [c for c in ast.walk(fn)
             if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "shutdown_when_done"]
    assert [ast.unparse(r.args[0]) for r in rules] == [arm_var]


@pytest.mark.parametrize("name", ["train_widowx.launch.py", "eval.launch.py"])
def test_record_writes_an_mcap_bag_into_the_run_directory(name):
    path = ROOT / "launch" / name
    assert _arguments(path)["record"] == "'false'"
    assert re.search(r"bag_recorder\(robot", path.read_text()), f"{name} does not start the bag recorder"
    tree = ast.parse(HELPERS.read_text())
    fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "bag_recorder")
    text = ast.unparse(fn)
    assert "['ros2', 'bag', 'record', '-s', 'mcap', '-o', out" in text and "'bags'" in text
    assert "IfCondition(LaunchConfiguration('record'))" in text


def test_discovery_uses_the_current_variable():
    for path in LAUNCH_FILES:
        assert not re.search(r"EnvironmentVariable\(\s*['\"]ROS_", path.read_text()), (
            f"{path.name}: set the discovery range with discovery_range() (names.discovery_environment)")
    assert "discovery_range()" in (ROOT / "launch" / "sim.launch.py").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in readme and "export ROS_LOCALHOST_ONLY" not in readme


def _absolute_names(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.match(
                r"^/(meld|diagnostics|wx|\{)", node.value):
            found.append(node.value)
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and node.values[0].value == "/":
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("path", NODE_MODULES, ids=lambda p: p.name)
def test_nodes_use_relative_names_and_no_cv_bridge(path):
    tree = ast.parse(path.read_text())
    assert not _absolute_names(tree), (
        f"{path.name}: absolute names {_absolute_names(tree)}; use meld_core.bridge.names (relative)")
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.startswith("cv_bridge") for m in imported), f"{path.name}: images via meld_ros.common"


def test_node_configs_name_relative_topics_and_package_xml_has_no_cv_bridge():
    for path in (ROOT / "config").glob("*_node.yaml"):
        for line in path.read_text().splitlines():
            assert not re.search(r"topic:\s*/meld", line), f"{path.name}: {line.strip()} must be relative"
    assert "cv_bridge" not in re.sub(r"<!--.*?-->", "", (ROOT / "package.xml").read_text(), flags=re.S)


def test_node_configs_apply_in_any_namespace():
    # A key `arm:` matches only /arm: in the sim namespace (/sim/arm) the node silently ran on its
    # defaults (arm_node then listened to the absolute default command topic, not the agent's).
    import yaml

    for path in (ROOT / "config").glob("*_node.yaml"):
        for key in yaml.safe_load(path.read_text()):
            assert key.startswith("/**/"), f"{path.name}: node entry {key!r} should be '/**/{key}'"
