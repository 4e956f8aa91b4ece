"""What agent_node runs, without ROS: the meld trainer over the robot TaskEnv, against the simulated
graph (SimRobot + ArmBridge) on a virtual clock: one training iteration end to end."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("meld_core.envs.widowx_insertion")

from meld_core.bridge.agent_run import AgentRunConfig, remote_env_factory, training_config  # noqa: E402
from meld_core.bridge.remote_env import RemoteEnvConfig  # noqa: E402
from meld_core.envs.registry import env_names  # noqa: E402
from meld_core.testing.sim_graph import SimGraphLink  # noqa: E402
from meld_core.testing.widowx_smoke import smoke_run_config, write_smoke_config  # noqa: E402
from meld_core.train.rundir import RunDirError  # noqa: E402

pytestmark = [pytest.mark.render, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _registered():
    if "widowx_insertion" not in env_names():
        pytest.skip("widowx_insertion is not registered yet")


def test_training_config_from_a_yaml_file(tmp_path):
    path = write_smoke_config(tmp_path / "smoke.yaml", iterations=5)
    cfg = training_config(AgentRunConfig(run_dir=str(tmp_path / "run"), run_config=str(path), iterations=1))
    assert cfg == dataclasses.replace(
        smoke_run_config(), train=dataclasses.replace(smoke_run_config().train, num_iterations=1)
    )
    with pytest.raises(RunDirError, match="missing.yaml does not exist"):
        training_config(AgentRunConfig(run_config=str(tmp_path / "missing.yaml")))


def test_one_training_iteration_over_the_robot_task_env(tmp_path):
    from meld_core.envs.widowx_insertion import WidowXInsertionEnv
    from meld_core.train.trainer import run_training

    config = smoke_run_config(iterations=1)
    sim = WidowXInsertionEnv(config.build_env_config(), seed=0)
    link = SimGraphLink(sim, sim.spec.control_hz)
    envs = []

    def factory(run_config):
        envs.append(remote_env_factory(link, RemoteEnvConfig())(run_config))
        return envs[-1]

    start = link.now()
    trainer = run_training(config, tmp_path / "run", env_factory=factory, progress_bars=False)
    env = envs[0]
    c = trainer.counters
    assert c.iteration == 1 and c.phase == "done"
    T, E = 3, 2
    assert c.episodes == (2 + 1) * E and c.env_steps == c.episodes * T  # warm-up on 2 tasks + 1 iteration
    assert len(list((tmp_path / "run").rglob("ep_*.npz"))) == c.episodes
    assert c.evaluations == 1 and env.ticks == c.env_steps + E * T  # + the final evaluation trial
    assert env.overruns == 0
    # every step took one control period of robot time; homing and rig moves add to it
    assert link.now() - start > c.env_steps / 3.3
    assert link.robot.rig_position in [
        (t.params["rotation_deg"], t.params["translation_mm"]) for t in (*env.train_tasks, *env.eval_tasks)
    ]
    assert link.bridge.rejected_commands == 0 and np.isfinite(link.robot.command).all()
    sim.close()


def test_the_node_can_split_training_into_actor_and_learner(tmp_path):
    run = str(tmp_path / "run")
    split = training_config(AgentRunConfig(run_dir=run, preset="smoke", train_mode="async"))
    assert split.train.mode == "async"
    assert training_config(AgentRunConfig(run_dir=run, preset="smoke")).train.mode == "alternate"
    with pytest.raises(ValueError, match="train_mode"):
        AgentRunConfig(train_mode="parallel")
