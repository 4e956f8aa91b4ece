"""The sim.launch.py graph without ROS: RemoteRobotEnv over SimRobot (sim_node) + ArmBridge (arm_node)
with the MuJoCo WidowX insertion env, on a virtual clock."""

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("meld_core.envs.widowx_insertion")

from meld_core.bridge.agent_run import family_facts, insertion_reward_fn  # noqa: E402
from meld_core.bridge.remote_env import RemoteEnvConfig, RemoteRobotEnv  # noqa: E402
from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv  # noqa: E402
from meld_core.testing.sim_graph import SimGraphLink  # noqa: E402

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def graph():
    cfg = WidowXInsertionConfig(episode_length=4, num_train_tasks=2, num_eval_tasks=1)
    sim = WidowXInsertionEnv(cfg, seed=0)
    link = SimGraphLink(sim, cfg.control_hz)
    facts = family_facts(cfg)
    io = RemoteEnvConfig(control_hz=facts["control_hz"], episode_length=facts["episode_length"],
                         image_size=facts["image_size"], action_scale=facts["action_scale"])
    env = RemoteRobotEnv(io, link, facts["train_tasks"], facts["eval_tasks"], insertion_reward_fn(cfg))
    yield sim, link, env
    sim.close()


def test_tasks_and_spec_match_the_simulation(graph):
    sim, _, env = graph
    assert [t.params for t in env.train_tasks] == [t.params for t in sim.train_tasks]
    assert env.spec.image_shape == sim.spec.image_shape and env.spec.control_hz == sim.spec.control_hz


def test_a_trial_through_the_graph(graph):
    sim, link, env = graph
    task = env.train_tasks[1]
    env.set_task(task)
    assert link.robot.rig_position == (task.params["rotation_deg"], task.params["translation_mm"])
    obs = env.reset()
    q, _ = sim.joint_state()
    assert np.allclose(q, sim.profile.home_q, atol=0.03)  # homed by the bridge's servo, not teleported
    assert obs.image.shape == sim.spec.image_shape and obs.image.dtype == np.uint8
    start = link.now()
    sent_before = link.bridge.sent
    for _ in range(4):
        obs = env.step(np.array([0.5, 0.0, 0.0, 0.0, 0.0]))
    # 3.3 Hz ticks (each waits at most one camera frame for a new image)
    assert link.now() - start == pytest.approx(4 / 3.3, abs=4 / 15)
    q, _ = sim.joint_state()
    assert q[0] > sim.profile.home_q[0] + 0.1  # the waist turned: commands went bridge -> sim
    assert link.bridge.sent > sent_before and link.bridge.deadman_trips == 0
    # the reward belongs to the measured joint state of that tick (at most one physics step old)
    measured = np.array(obs.info["joint_positions"])
    assert np.max(np.abs(measured - q)) <= 0.5 * 0.4 / 3.3 + 1e-6
    assert obs.dense_reward == pytest.approx(insertion_reward_fn(sim.config)(measured, task)[0])


def test_robot_reward_equals_the_simulations_own(graph):
    sim, _, _ = graph
    reward = insertion_reward_fn(sim.config)
    task = sim.train_tasks[1]
    sim.set_task(task)
    sim.reset()
    for action in ([0.5, 0.2, 0, 0, 0], [0, 0.5, 0.5, -0.5, 0], [-1, 0, 0, 0, 1]):
        sim.step(np.array(action))
        q, _ = sim.joint_state()
        assert reward(q, task)[:3] == pytest.approx(sim._reward()[:3])


def test_the_deadman_stops_the_simulated_arm_when_the_agent_stalls(graph):
    sim, link, env = graph
    env.reset()
    env.step(np.array([0.5, 0.0, 0.0, 0.0, 0.0]))
    trips = link.bridge.deadman_trips
    link.sleep_until(link.now() + 1.5)  # the agent stops sending commands
    assert link.bridge.deadman_trips == trips + 1
    q1, _ = sim.joint_state()
    link.sleep_until(link.now() + 1.0)
    q2, _ = sim.joint_state()
    assert np.allclose(q1, q2, atol=1e-3)
