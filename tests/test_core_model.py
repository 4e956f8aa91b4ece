"""Latent model: shapes, parameter counts, the trial/boundary logic and that the ELBO can be optimised."""

import numpy as np
import pytest
import torch

from meld_core.algo.model import LatentModel, model_parameter_counts
from meld_core.config import ModelConfig
from meld_core.testing.core_fakes import tiny_model_config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("shape", [(64, 64, 3), (128, 64, 3), (32, 32, 3)])
def test_shapes_and_dtypes(shape):
    torch.manual_seed(0)
    cfg = tiny_model_config(shape)
    model = LatentModel(cfg, action_dim=3)
    b, length = 2, 5
    images = torch.randint(0, 256, (b, length, *shape), dtype=torch.uint8)
    feats = model.encode(images, torch.zeros(b, length))
    assert feats.shape == (b, length, 8 * cfg.base_depth + cfg.reward_tile) and feats.dtype == torch.float32
    post = model.filter(feats, torch.zeros(b, length, 3))
    assert post.z1.shape == (b, length, 8) and post.z2.shape == (b, length, 4)
    assert post.belief().shape == (b, length, cfg.belief_size)
    assert (post.z1_std > 0).all() and (post.z2_std > 0).all()
    img = model.decode(post.z1.reshape(b * length, -1), post.z2.reshape(b * length, -1))
    assert img.shape == (b * length, 3, shape[0], shape[1]) and img.dtype == torch.float32
    zeros = torch.zeros(b, length)
    loss, metrics = model.elbo(images, torch.zeros(b, length, 3), zeros, zeros)
    assert loss.shape == () and torch.isfinite(loss)
    assert {"elbo", "log_likelihood", "kl_divergence", "reward_error", "reconstruction_error"} <= set(metrics)


def test_parameter_counts_of_the_reference_model(capsys):
    one = model_parameter_counts(LatentModel(ModelConfig(image_shape=(64, 64, 3)), action_dim=7))
    two = model_parameter_counts(LatentModel(ModelConfig(), action_dim=7))
    print("one camera 64x64:", one)
    print("two cameras 128x64:", two)
    # Two cameras only change the conv kernels (taller); the MLPs are identical.
    assert two["latent"] == one["latent"] and two["encoder"] > one["encoder"]
    # The z1 posterior input is 512 + 32 + 32 + 7 = 583 wide (reference 1.3).
    model = LatentModel(ModelConfig(), action_dim=7)
    assert model.z1_posterior.net[0].in_features == 583 and model.z1_prior.net[0].in_features == 39
    assert model.z2_step.net[0].in_features == 103
    assert sum(one.values()) > 0 and "model_total" in capsys.readouterr().out


def test_image_likelihood_is_the_normal_density():
    from meld_core.algo.model import fixed_std_normal_log_prob

    mean, target = torch.randn(3, 3, 8, 4), torch.rand(3, 3, 8, 4)
    expected = torch.distributions.Normal(mean, 0.1**0.5).log_prob(target).sum((1, 2, 3))
    torch.testing.assert_close(fixed_std_normal_log_prob(mean, 0.1**0.5, target), expected)


def test_reward_none_drops_the_tiled_reward():
    model = LatentModel(tiny_model_config(reward_input="none"), action_dim=2)
    feats = model.encode(torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8), None)
    assert feats.shape[-1] == 8 * 4


def test_first_step_networks_only_at_the_trial_start():
    """Across an episode boundary the step networks are used, conditioned on the boundary action."""
    torch.manual_seed(0)
    model = LatentModel(tiny_model_config(), action_dim=2)
    feats = torch.randn(1, 6, model.feature_size)
    actions = torch.randn(1, 6, 2)
    noise = (torch.randn(1, 6, 8), torch.randn(1, 6, 4))
    base = model.filter(feats, actions, noise)
    with torch.no_grad():
        for p in model.z1_first_posterior.parameters():
            p.add_(0.5)
    changed = model.filter(feats, actions, noise)
    assert not torch.allclose(base.z1_mean[:, 0], changed.z1_mean[:, 0])
    # Frame 3 stands for a reset frame of a second episode: it depends on the action of frame 2 ...
    actions2 = actions.clone()
    actions2[:, 2] += 1.0
    other = model.filter(feats, actions2, noise)
    assert torch.allclose(changed.z1_mean[:, :3], other.z1_mean[:, :3])
    assert not torch.allclose(changed.z1_mean[:, 3], other.z1_mean[:, 3])
    # ... and the last action of the trial is never used.
    actions3 = actions.clone()
    actions3[:, -1] += 1.0
    assert torch.allclose(model.filter(feats, actions3, noise).z1_mean, changed.z1_mean)


def test_filter_equals_the_networks_on_concatenated_inputs():
    """The loop's precomputed first layers give exactly the reference conditionals (section 1.3)."""
    torch.manual_seed(1)
    model = LatentModel(tiny_model_config(), action_dim=3)
    b, length = 2, 5
    feats, actions = torch.randn(b, length, model.feature_size), torch.randn(b, length, 3)
    e1, e2 = torch.randn(b, length, 8), torch.randn(b, length, 4)
    out = model.filter(feats, actions, (e1, e2))
    with torch.no_grad():
        m1, s1 = model.z1_first_posterior(feats[:, 0])
        z1 = m1 + s1 * e1[:, 0]
        m2, s2 = model.z2_first(z1)
        z2 = m2 + s2 * e2[:, 0]
        means = [m1]
        for t in range(1, length):
            m1, s1 = model.z1_posterior(torch.cat([feats[:, t], z2, actions[:, t - 1]], -1))
            z1 = m1 + s1 * e1[:, t]
            m2, s2 = model.z2_step(torch.cat([z1, z2, actions[:, t - 1]], -1))
            z2 = m2 + s2 * e2[:, t]
            means.append(m1)
        torch.testing.assert_close(out.z1_mean, torch.stack(means, 1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.z2[:, -1], z2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.z2_std[:, -1], s2, rtol=1e-5, atol=1e-5)


def test_gru_z2_is_a_deterministic_recurrent_state():
    """z2_transition="gru": z2_t = GRUCell([z1_t, a_{t-1}], z2_{t-1}), no z2 noise, std reported 0."""
    torch.manual_seed(2)
    model = LatentModel(tiny_model_config(z2_transition="gru"), action_dim=3)
    assert isinstance(model.z2_step, torch.nn.GRUCell)
    b, length = 2, 6
    feats, actions = torch.randn(b, length, model.feature_size), torch.randn(b, length, 3)
    e1 = torch.randn(b, length, 8)
    out = model.filter(feats, actions, (e1, torch.randn(b, length, 4)))
    other_z2_noise = model.filter(feats, actions, (e1, 100 * torch.randn(b, length, 4)))
    torch.testing.assert_close(out.z2, other_z2_noise.z2)
    assert (out.z2_std == 0).all() and torch.equal(out.z2, out.z2_mean)
    with torch.no_grad():
        m1, s1 = model.z1_first_posterior(feats[:, 0])
        z1 = m1 + s1 * e1[:, 0]
        z2 = torch.tanh(model.z2_first(z1)[0])
        for t in range(1, length):
            m1, s1 = model.z1_posterior(torch.cat([feats[:, t], z2, actions[:, t - 1]], -1))
            z1 = m1 + s1 * e1[:, t]
            z2 = model.z2_step(torch.cat([z1, actions[:, t - 1]], -1), z2)
        torch.testing.assert_close(out.z2[:, -1], z2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.z1_mean[:, -1], m1, rtol=1e-5, atol=1e-5)
    loss, _ = model.elbo(torch.randint(0, 255, (b, length, 32, 32, 3), dtype=torch.uint8), actions,
                         torch.randn(b, length), torch.randn(b, length))
    loss.backward()
    assert model.z2_step.weight_hh.grad is not None and model.z2_step.weight_hh.grad.abs().sum() > 0


def test_unknown_z2_transition_is_rejected():
    with pytest.raises(ValueError, match="z2_transition"):
        tiny_model_config(z2_transition="lstm")


def _structured_trials(rng, b, length, size):
    """A bright square moving with the (recorded) actions: learnable, unlike pixel noise."""
    images = np.zeros((b, length, size, size, 3), np.uint8)
    actions = rng.uniform(-1, 1, (b, length, 2)).astype(np.float32)
    pos = rng.uniform(4, size - 12, (b, 2))
    dense = np.zeros((b, length), np.float32)
    for t in range(length):
        for i in range(b):
            y, x = pos[i].astype(int)
            images[i, t, y:y + 8, x:x + 8] = (255, 200, 50)
            dense[i, t] = -np.linalg.norm(pos[i] - size / 2) / size
        pos = np.clip(pos + 2 * actions[:, t], 0, size - 8)
    return images, actions, dense


def test_negative_elbo_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = tiny_model_config((32, 32, 3), lr=1e-3)
    model = LatentModel(cfg, action_dim=2)
    images, actions, dense = (torch.from_numpy(x) for x in _structured_trials(rng, 4, 6, 32))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(200):
        loss, _ = model.elbo(images, actions, dense, dense)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = np.mean(losses[:5]), np.mean(losses[-10:])
    print(f"negative ELBO {start:.1f} -> {end:.1f}")
    # The image term starts near 32*32*3*(0.33/0.2) ~ 5000 nats; a trained decoder gets it far lower.
    assert end < start - 0.5 * abs(start), (start, end)
