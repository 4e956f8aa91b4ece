"""MeldAgent and SAC: online filter == batched filter, AC updates leave the model alone, the critic learns,
checkpoints restore everything, runs are reproducible."""

import copy
import functools

import numpy as np
import pytest
import torch

from meld_core.algo.agent import MeldAgent
from meld_core.algo.replay import ReplayStore, stack_trials
from meld_core.algo.sac import SAC, Transitions
from meld_core.config import DeviceConfig, ReplayConfig
from meld_core.testing.core_fakes import random_episode, tiny_model_config, tiny_sac_config

SHAPE = (32, 32, 3)
CPU32 = DeviceConfig(device="cpu", cpu_bf16=False)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_agent(seed=0, **model_kw):
    return MeldAgent(tiny_model_config(SHAPE, **model_kw), tiny_sac_config(), action_dim=2, device=CPU32,
                     seed=seed)


def trial(rng, episodes=2, steps=4):
    return stack_trials([[random_episode(rng, 0, steps, SHAPE, 2) for _ in range(episodes)]])


def filled_store(rng, tasks=3, per_task=3, steps=5):
    store = ReplayStore(ReplayConfig(num_tasks_per_train=4, model_batch_frames=24), num_tasks=tasks)
    for t in range(tasks):
        for _ in range(per_task):
            store.add(random_episode(rng, t, steps, SHAPE, 2))
    return store


@pytest.mark.parametrize("reward_input,z2_transition", [("dense", "stochastic"), ("sparse", "stochastic"),
                                                          ("none", "stochastic"), ("sparse", "gru")])
def test_online_filter_matches_the_batched_filter_across_an_episode_boundary(reward_input, z2_transition):
    rng = np.random.default_rng(0)
    agent = make_agent(reward_input=reward_input, z2_transition=z2_transition)
    batch = trial(rng, episodes=2, steps=4)  # 10 frames, the second episode starts at frame 5
    tb = batch.to_torch()
    length = batch.trial_length
    noise = (torch.randn(1, length, 8), torch.randn(1, length, 4))
    with torch.no_grad():
        feats = agent.model.encode(tb.images, agent.model.select_rewards(tb.dense, tb.sparse, reward_input))
        batched = agent.model.filter(feats, tb.actions, noise).belief()[0].numpy()
    rewards = batch.dense[0] if reward_input != "sparse" else batch.sparse[0]
    agent.reset_belief()
    online = []
    for t in range(length):
        online.append(agent.observe(
            batch.images[0, t], rewards[t], episode_start=bool(batch.episode_start[0, t]),
            prev_action=batch.actions[0, t - 1] if t else None, noise=(noise[0][:, t], noise[1][:, t])))
    np.testing.assert_allclose(np.stack(online), batched, rtol=1e-4, atol=1e-5)
    # Control: a filter reset at the episode boundary would differ from frame 5 on.
    agent.reset_belief()
    agent.observe(batch.images[0, 5], rewards[5], episode_start=True, noise=(noise[0][:, 5], noise[1][:, 5]))
    assert not np.allclose(agent.belief(), batched[5], atol=1e-3)


def test_act_protocol_and_outputs():
    rng = np.random.default_rng(1)
    agent = make_agent()
    image = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    with pytest.raises(RuntimeError, match="reset_belief"):
        agent.act(image, 0.0, episode_start=False)
    a = agent.act(image, 0.0, episode_start=True)
    assert a.shape == (2,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    assert agent.belief().shape == (24,)
    b = agent.act(image, 0.5, episode_start=False, deterministic=True)
    assert np.all(np.abs(b) <= 1)
    mean, std = agent.predicted_reward()
    assert np.isfinite(mean) and std == pytest.approx(0.2)
    with pytest.raises(ValueError, match="uint8"):
        agent.act(image.astype(np.float32), 0.0, episode_start=False)
    with pytest.raises(ValueError, match="finite"):
        agent.act(image, float("nan"), episode_start=False)
    # Deterministic: tanh of the actor's mean at the current belief.
    d = agent.act(image, 0.1, episode_start=False, deterministic=True)
    mean = agent.sac.actor.net(torch.from_numpy(agent.belief())[None]).chunk(2, -1)[0]
    np.testing.assert_allclose(d, torch.tanh(mean)[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_actor_critic_update_leaves_every_model_parameter_unchanged():
    rng = np.random.default_rng(2)
    agent = make_agent()
    store = filled_store(rng)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    actor_before = [p.clone() for p in agent.sac.actor.parameters()]
    for _ in range(3):
        metrics = agent.update_actor_critic(store.sample_ac_batch(rng, 2))
    assert all(torch.equal(before[k], v) for k, v in agent.model.state_dict().items())
    assert all(p.grad is None for p in agent.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.sac.actor.parameters()))
    assert {"critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean"} <= set(metrics)
    assert agent.ac_updates == 3


def test_ac_transitions_never_cross_an_episode_boundary():
    rng = np.random.default_rng(3)
    agent = make_agent()
    batch = trial(rng, episodes=2, steps=3)
    tb = batch.to_torch()
    # Mark every action with its frame index to recover which transitions were drawn.
    tb.actions[:] = torch.arange(batch.trial_length, dtype=torch.float32)[None, :, None] / 100
    tr = agent.ac_transitions(tb)
    frames = torch.round(tr.action[:, 0] * 100).long()
    assert set(frames.tolist()) <= {0, 1, 2, 4, 5, 6}  # 3 and 7 are the last frames of the episodes
    assert tr.belief.shape == (64, 24) and tr.next_belief.shape == (64, 24)
    np.testing.assert_allclose(tr.reward.numpy(), batch.dense[0][frames.numpy()])  # reference: frame i


def test_critic_update_lowers_the_td_error_on_a_fixed_batch():
    torch.manual_seed(0)
    agent = make_agent()
    sac = agent.sac
    n, d = 128, 24
    batch = Transitions(torch.randn(n, d), torch.rand(n, 2) * 2 - 1, torch.randn(n), torch.randn(n, d))
    target = sac.td_target(batch)
    first = sac.critic_loss(batch, target).item()
    for _ in range(100):
        loss = sac.critic_loss(batch, target)
        sac.critic_opt.zero_grad()
        loss.backward()
        sac.critic_opt.step()
    assert sac.critic_loss(batch, target).item() < 0.7 * first
    # A full SAC step lowers it too (target fixed for the comparison).
    before = sac.critic_loss(batch, target).item()
    sac.update(batch)
    assert sac.critic_loss(batch, target).item() < before


def test_policy_log_prob_is_the_tanh_gaussian_density():
    torch.manual_seed(0)
    agent = make_agent()
    belief = torch.randn(5, 24)
    action, log_pi = agent.sac.actor.sample(belief)
    mean, log_std = agent.sac.actor.net(belief).chunk(2, -1)
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    base = torch.distributions.Normal(mean, log_std.clamp(-20, 2).exp()).log_prob(u).sum(-1)
    manual = base - torch.log(1 - action.square() + 1e-12).sum(-1)
    np.testing.assert_allclose(log_pi.detach().numpy(), manual.detach().numpy(), rtol=1e-3, atol=1e-3)


def test_model_update_metrics_and_state_dict_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    store = filled_store(rng)
    agent = make_agent(seed=3)
    m = agent.update_model(store.sample_model_batch(rng, 2))
    expected_keys = {"elbo", "log_likelihood", "reconstruction_error", "kl_divergence", "reward_error",
                     "model_loss"}
    assert expected_keys <= set(m)
    agent.update_actor_critic(store.sample_ac_batch(rng, 2))
    path = tmp_path / "agent.pt"
    torch.save(agent.state_dict(), path)
    model_batch, pool = store.sample_model_batch(rng, 2), store.sample_ac_batch(rng, 2)
    expected = (agent.update_model(model_batch), agent.update_actor_critic(pool))

    clone = make_agent(seed=99)
    clone.load_state_dict(torch.load(path))  # loads with torch's default weights_only=True
    assert (clone.model_updates, clone.ac_updates) == (1, 1)
    got = (clone.update_model(model_batch), clone.update_actor_critic(pool))
    assert got == expected
    with pytest.raises(ValueError, match="different model config"):
        MeldAgent(tiny_model_config(SHAPE, latent1_size=6), tiny_sac_config(), 2, CPU32).load_state_dict(
            torch.load(path))


def test_seeding_makes_runs_reproducible():
    def run(seed):
        rng = np.random.default_rng(5)
        store = filled_store(rng)
        agent = make_agent(seed=seed)
        out = [agent.update_model(store.sample_model_batch(rng, 1))["model_loss"],
               agent.update_actor_critic(store.sample_ac_batch(rng, 1))["critic_loss"]]
        agent.reset_belief()
        out += agent.act(store.episodes(0)[0].images[0], 0.0, episode_start=True).tolist()
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_parameter_count_helper():
    counts = make_agent().num_parameters()
    assert counts["total"] == counts["model_total"] + counts["actor"] + counts["critic"] + 1
    assert min(counts.values()) > 0


def test_bf16_autocast_of_the_convolutions_tracks_fp32():
    rng = np.random.default_rng(6)
    batch = stack_trials([[random_episode(rng, 0, 5, SHAPE, 2)] for _ in range(2)])
    losses = {}
    for bf16 in (False, True):
        device = DeviceConfig(device="cpu", cpu_bf16=bf16)
        agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2, device)
        assert agent.learner_precision == ("bfloat16" if bf16 else "float32")
        torch.manual_seed(0)
        losses[bf16] = agent.update_model(batch)["model_loss"]
        # act() stays fp32 whatever the learner does.
        a = agent.act(batch.images[0, 0], 0.0, episode_start=True)
        assert a.dtype == np.float32
    assert losses[True] == pytest.approx(losses[False], rel=1e-2)


def tagged_transitions(agent, batch):
    """AC transitions of a one-trial batch whose action at frame i is i / 100, and their frames i."""
    tb = batch.to_torch()
    tb.actions[:] = torch.arange(batch.trial_length, dtype=torch.float32)[None, :, None] / 100
    tr = agent.ac_transitions(tb)
    return tr, torch.round(tr.action[:, 0] * 100).long().numpy()


def test_td_reward_next_frame_option():
    rng = np.random.default_rng(7)
    agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(td_reward="next"), 2, CPU32)
    batch = trial(rng, episodes=2, steps=3)
    tr, frames = tagged_transitions(agent, batch)
    np.testing.assert_allclose(tr.reward.numpy(), batch.dense[0][frames + 1])


def test_td_reward_adds_the_weighted_sparse_reward():
    rng = np.random.default_rng(10)
    agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(td_reward="next", td_sparse_weight=2.0), 2,
                      CPU32)
    batch = trial(rng, episodes=2, steps=3)
    batch.sparse[:] = rng.uniform(0.5, 1.0, size=batch.sparse.shape).astype(np.float32)
    tr, frames = tagged_transitions(agent, batch)
    nxt = frames + 1
    np.testing.assert_allclose(tr.reward.numpy(), batch.dense[0][nxt] + 2.0 * batch.sparse[0][nxt], rtol=1e-6)


@pytest.mark.parametrize("dense_weight", [0.0, 0.25])
def test_td_reward_weighs_the_dense_reward(dense_weight):
    rng = np.random.default_rng(11)
    sac = tiny_sac_config(td_reward="next", td_dense_weight=dense_weight, td_sparse_weight=1.0)
    agent = MeldAgent(tiny_model_config(SHAPE), sac, 2, CPU32)
    batch = trial(rng, episodes=2, steps=3)
    batch.dense[:] = rng.uniform(-2.0, 2.0, size=batch.dense.shape).astype(np.float32)
    batch.sparse[:] = rng.uniform(0.5, 1.0, size=batch.sparse.shape).astype(np.float32)
    tr, frames = tagged_transitions(agent, batch)
    nxt = frames + 1
    np.testing.assert_allclose(tr.reward.numpy(), dense_weight * batch.dense[0][nxt] + batch.sparse[0][nxt],
                               rtol=1e-6, atol=1e-7)


def test_td_reward_weighs_the_dense_reward_of_later_episodes_apart():
    rng = np.random.default_rng(12)
    sac = tiny_sac_config(td_reward="next", td_dense_weight=0.0, td_dense_weight_later=0.5,
                          td_sparse_weight=1.0, td_across_resets=True, batch_size=400)
    agent = MeldAgent(tiny_model_config(SHAPE), sac, 2, CPU32)
    batch = trial(rng, episodes=2, steps=3)  # frames 0-3 episode 1, 4-7 episode 2
    batch.dense[:] = rng.uniform(-2.0, 2.0, size=batch.dense.shape).astype(np.float32)
    batch.sparse[:] = rng.uniform(0.5, 1.0, size=batch.sparse.shape).astype(np.float32)
    tr, frames = tagged_transitions(agent, batch)
    nxt = frames + 1
    weight = np.where(nxt >= 4, 0.5, 0.0)  # 3 -> 4 enters episode 2: its reset frame's reward is episode 2's
    np.testing.assert_allclose(tr.reward.numpy(), weight * batch.dense[0][nxt] + batch.sparse[0][nxt],
                               rtol=1e-6, atol=1e-7)
    assert {3, 4} <= set(frames.tolist())


@pytest.mark.parametrize("across", [False, True])
def test_td_transitions_cross_the_reset_only_when_asked(across):
    rng = np.random.default_rng(9)
    agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(td_across_resets=across, batch_size=400), 2,
                      CPU32)
    batch = trial(rng, episodes=2, steps=3)  # frames 0-3 episode 1, 4-7 episode 2 (4 = its reset frame)
    frames = set(tagged_transitions(agent, batch)[1].tolist())
    # 3 -> 4 is the last frame of episode 1 into the reset frame of episode 2.
    assert frames == ({0, 1, 2, 3, 4, 5, 6} if across else {0, 1, 2, 4, 5, 6})


def test_restore_belief_continues_a_trial_from_a_saved_belief():
    rng = np.random.default_rng(14)
    agent = make_agent()
    batch = trial(rng, episodes=2, steps=3)  # frames 0-3 episode 1, 4-7 episode 2
    noise = [(torch.randn(1, 8), torch.randn(1, 4)) for _ in range(batch.trial_length)]

    def observe(frames):
        for t in frames:
            agent.observe(batch.images[0, t], float(batch.dense[0, t]), episode_start=t in (0, 4),
                          prev_action=torch.as_tensor(batch.actions[0, t - 1])[None] if t else None,
                          noise=noise[t])
        return agent.belief()

    agent.reset_belief()
    observe(range(4))
    saved = agent.save_belief()
    first = observe(range(4, 8))
    observe(range(4, 6))  # another continuation moves the belief on
    agent.restore_belief(saved)
    np.testing.assert_array_equal(observe(range(4, 8)), first)


@pytest.mark.parametrize("across", [False, True])
def test_n_step_targets_sum_the_replayed_rewards_up_to_the_trial_or_episode_end(across):
    rng = np.random.default_rng(13)
    gamma, n = 0.9, 3
    sac = tiny_sac_config(td_reward="next", td_dense_weight=0.5, td_sparse_weight=1.0,
                          td_across_resets=across, batch_size=400, gamma=gamma, n_step=n)
    agent = MeldAgent(tiny_model_config(SHAPE), sac, 2, CPU32)
    batch = trial(rng, episodes=2, steps=3)  # frames 0-3 episode 1, 4-7 episode 2
    batch.dense[:] = rng.uniform(-2.0, 2.0, size=batch.dense.shape).astype(np.float32)
    batch.sparse[:] = rng.uniform(0.5, 1.0, size=batch.sparse.shape).astype(np.float32)
    tr, frames = tagged_transitions(agent, batch)
    # The beliefs of this call, by frame (an episode's last frame starts no transition: the one before
    # it reaches it in one step)
    belief_at = {int(f): tr.belief[j] for j, f in enumerate(frames)}
    for last in (3, 7):
        belief_at.setdefault(last, tr.next_belief[int(np.flatnonzero(frames == last - 1)[0])])
    per_frame = 0.5 * batch.dense[0] + batch.sparse[0]  # the TD reward of i -> i+1 is frame i+1's
    assert set(frames.tolist()) == ({0, 1, 2, 3, 4, 5, 6} if across else {0, 1, 2, 4, 5, 6})
    for j, i in enumerate(frames):
        end = 7 if across or i >= 4 else 3  # the last frame the target may reach
        m = min(n, end - i)
        expected = sum(gamma ** k * per_frame[i + 1 + k] for k in range(m))
        assert tr.reward[j].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
        assert tr.discount[j].item() == pytest.approx(gamma ** m, rel=1e-6)
        torch.testing.assert_close(tr.next_belief[j], belief_at[i + m])


def test_n_step_target_discounts_the_bootstrap_by_gamma_to_the_m():
    sac = SAC(tiny_sac_config(gamma=0.9), belief_size=4, action_dim=2)
    b = torch.randn(5, 4)
    one = Transitions(b, torch.zeros(5, 2), torch.ones(5), b)
    torch.manual_seed(0)
    t1 = sac.td_target(one)
    torch.manual_seed(0)
    t2 = sac.td_target(Transitions(b, torch.zeros(5, 2), torch.ones(5), b, discount=torch.full((5,), 0.9)))
    torch.manual_seed(0)
    t3 = sac.td_target(Transitions(b, torch.zeros(5, 2), torch.ones(5), b, discount=torch.full((5,), 0.729)))
    torch.testing.assert_close(t1, t2)
    torch.testing.assert_close((t3 - 1) / 0.729, (t1 - 1) / 0.9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_runs_and_matches_the_online_filter():
    rng = np.random.default_rng(8)
    agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2, DeviceConfig(device="cuda"), seed=0)
    store = filled_store(rng)
    m = agent.update_model(store.sample_model_batch(rng, 2))
    c = agent.update_actor_critic(store.sample_ac_batch(rng, 2))
    assert np.isfinite(m["model_loss"]) and np.isfinite(c["critic_loss"])
    batch = trial(rng, episodes=2, steps=3)
    tb = batch.to_torch(agent.device)
    length = batch.trial_length
    noise = (torch.randn(1, length, 8, device="cuda"), torch.randn(1, length, 4, device="cuda"))
    with torch.no_grad(), agent._fp32():
        feats = agent.model.encode(tb.images, tb.dense)
        batched = agent.model.filter(feats, tb.actions, noise).belief()[0].cpu().numpy()
    agent.reset_belief()
    online = [agent.observe(batch.images[0, t], batch.dense[0, t],
                            episode_start=bool(batch.episode_start[0, t]),
                            prev_action=batch.actions[0, t - 1] if t else None,
                            noise=(noise[0][:, t], noise[1][:, t])) for t in range(length)]
    # TF32 matmuls (enabled on CUDA) round differently at batch 1 and batch L: a looser tolerance.
    np.testing.assert_allclose(np.stack(online), batched, rtol=2e-2, atol=2e-3)
    torch.save(agent.state_dict(), "/dev/null")


def test_act_conditions_on_an_overridden_previous_action():
    """act(prev_action=...) filters with the executed action, not the one act() returned last."""
    rng = np.random.default_rng(3)
    agent = make_agent()
    images = rng.integers(0, 256, (2, *SHAPE), dtype=np.uint8)
    executed = np.array([0.9, -0.9], dtype=np.float32)

    def second_belief(step, **kwargs):
        agent.reset_belief()
        torch.manual_seed(0)
        step(images[0], 0.0, episode_start=True)
        torch.manual_seed(1)
        step(images[1], 0.5, episode_start=False, **kwargs)
        return agent.belief()

    act = functools.partial(agent.act, deterministic=True)
    overridden = second_belief(act, prev_action=executed)
    np.testing.assert_allclose(overridden, second_belief(agent.observe, prev_action=executed), rtol=1e-6)
    assert not np.allclose(overridden, second_belief(act), atol=1e-4)  # the policy's own action differs


def test_act_in_bf16_follows_the_weights_and_tracks_fp32():
    rng = np.random.default_rng(9)
    batch = stack_trials([[random_episode(rng, 0, 5, SHAPE, 2)] for _ in range(2)])
    devices = [DeviceConfig(device="cpu", cpu_bf16=False, act_bf16=bf16) for bf16 in (False, True)]
    agents = [MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2, d, seed=3) for d in devices]
    assert [a.act_precision for a in agents] == ["float32", "bfloat16"]
    for agent in agents:
        torch.manual_seed(0)
        agent.update_model(batch)  # act() must see the updated weights
    beliefs = []
    for agent in agents:
        agent.reset_belief()
        noise = (torch.zeros(1, 8), torch.zeros(1, 4))
        beliefs.append(agent.observe(batch.images[0, 0], 0.0, episode_start=True, noise=noise))
    np.testing.assert_allclose(beliefs[1], beliefs[0], rtol=0.05, atol=0.02)
    # act()'s encoder computes what a bf16 copy of the updated weights computes
    x = torch.rand(1, 3, *SHAPE[:2]).contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(agents[1].model.encoder).to(torch.bfloat16)
    with torch.inference_mode():
        torch.testing.assert_close(agents[1]._acting_encoder()(x.to(torch.bfloat16)).float(),
                                   plain(x.to(torch.bfloat16)).float(), rtol=0.02, atol=2e-3)


def test_act_repacks_its_weights_at_the_trial_start_not_in_a_control_tick():
    rng = np.random.default_rng(4)
    batch = stack_trials([[random_episode(rng, 0, 5, SHAPE, 2)] for _ in range(2)])
    agent = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2,
                      DeviceConfig(device="cpu", cpu_bf16=False, act_bf16=True), seed=3)
    agent.reset_belief()
    image = batch.images[0, 0]
    agent.act(image, 0.0, episode_start=True)
    agent.update_model(batch)
    encoder = agent._acting_encoder
    calls = []
    current = lambda: agent._act_encoder_version == agent._weights_version  # noqa: E731
    agent._acting_encoder = lambda: calls.append(current()) or encoder()
    agent.reset_belief()  # between trials: the repack happens here
    agent.act(image, 0.0, episode_start=True)
    assert calls == [False, True]  # stale at the reset, current by the first tick


def test_an_agent_that_never_acts_builds_no_acting_encoder():
    device = DeviceConfig(device="cpu", cpu_bf16=False, act_bf16=True)
    actor = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2, device, seed=3)
    learner = MeldAgent(tiny_model_config(SHAPE), tiny_sac_config(), 2, device, seed=4)
    learner.load_state_dict(actor.state_dict())  # e.g. the async learner resuming
    learner.reset_belief()
    assert learner._act_encoder is None


def test_act_runs_on_the_actor_threads_and_gives_the_learner_its_threads_back():
    agent = make_agent()
    rng = np.random.default_rng(2)
    seen = []
    observe = agent.observe

    def recording_observe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return observe(*args, **kwargs)

    agent.observe = recording_observe
    torch.set_num_threads(2)  # the learner's (the autouse fixture restores the test's own)
    agent.act(rng.integers(0, 256, SHAPE, dtype=np.uint8), 0.0, episode_start=True)
    assert seen == [agent.device_cfg.actor_threads] == [1] and torch.get_num_threads() == 2


def test_reward_memory_is_the_latest_rewarded_frames_z1_mean_online_and_batched():
    rng = np.random.default_rng(11)
    agent = MeldAgent(tiny_model_config(SHAPE, reward_input="sparse", z2_transition="gru"),
                      tiny_sac_config(reward_memory=0.5), action_dim=2, device=CPU32, seed=0)
    batch = trial(rng, episodes=2, steps=4)  # 10 frames, the second episode starts at frame 5
    batch.sparse[0] = 0.0
    batch.sparse[0, 2], batch.sparse[0, 3], batch.sparse[0, 8] = 1.3, 0.4, 1.1  # 0.4: under the threshold
    tb = batch.to_torch()
    length = batch.trial_length
    noise = (torch.randn(1, length, 8), torch.randn(1, length, 4))
    with torch.no_grad():
        feats = agent.model.encode(tb.images, tb.sparse)
        beliefs = agent.model.filter(feats, tb.actions, noise).belief()
        batched = agent.policy_inputs(tb, beliefs)[0].numpy()
    z1 = 8
    assert batched.shape == (length, 24 + z1 + 1)
    np.testing.assert_array_equal(batched[:2, 24:], 0.0)  # nothing rewarded yet
    for t, source in ((2, 2), (3, 2), (5, 2), (7, 2), (8, 8), (9, 8)):  # held across the reset at frame 5
        np.testing.assert_allclose(batched[t, 24:24 + z1], batched[source, :z1])
        assert batched[t, -1] == 1.0
    agent.reset_belief()
    online = []
    for t in range(length):
        agent.observe(batch.images[0, t], batch.sparse[0, t], episode_start=bool(batch.episode_start[0, t]),
                      prev_action=batch.actions[0, t - 1] if t else None,
                      noise=(noise[0][:, t], noise[1][:, t]))
        online.append(agent.policy_input())
    np.testing.assert_allclose(np.stack(online), batched, rtol=1e-4, atol=1e-5)
    assert agent.ac_transitions(tb).belief.shape == (64, 24 + z1 + 1)
    agent.reset_belief()  # a new trial forgets
    agent.observe(batch.images[0, 0], 0.0, episode_start=True)
    assert np.all(agent.policy_input()[24:] == 0.0)


def test_an_agent_with_reward_memory_starts_from_one_without_it_unchanged():
    rng = np.random.default_rng(12)
    source = make_agent(reward_input="sparse")
    for p in source.sac.parameters():  # not the zero biases of a fresh init
        p.data.normal_()
    agent = MeldAgent(tiny_model_config(SHAPE, reward_input="sparse"), tiny_sac_config(reward_memory=0.5),
                      action_dim=2, device=CPU32, seed=3)
    agent.load_weights(source.state_dict())
    belief, action = torch.randn(5, 24), torch.rand(5, 2) * 2 - 1
    memory = torch.cat([torch.randn(5, 8), torch.ones(5, 1)], dim=-1)
    with torch.no_grad():
        widened = torch.cat([belief, memory], dim=-1)
        torch.testing.assert_close(agent.sac.actor(widened, deterministic=True),
                                   source.sac.actor(belief, deterministic=True))
        for mine, theirs in ((agent.sac.critic, source.sac.critic), (agent.sac.target_critic,
                                                                     source.sac.target_critic)):
            torch.testing.assert_close(mine(widened, action), theirs(belief, action))
    image = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    assert agent.act(image, 0.0, episode_start=True).shape == (2,)
    again = MeldAgent(tiny_model_config(SHAPE, reward_input="sparse"), tiny_sac_config(reward_memory=0.5),
                      action_dim=2, device=CPU32, seed=4)
    again.load_weights(agent.state_dict())  # an agent with the memory from one with it: as it is
    with torch.no_grad():
        torch.testing.assert_close(again.sac.actor(widened, deterministic=True),
                                   agent.sac.actor(widened, deterministic=True))
    with pytest.raises(ValueError, match="reward_memory needs a reward"):
        MeldAgent(tiny_model_config(SHAPE, reward_input="none"), tiny_sac_config(reward_memory=0.5),
                  action_dim=2, device=CPU32)
