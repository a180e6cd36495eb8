import numpy as np
import pytest

from mpi_es.policies.cnn import CONVS, VBN_EPSILON, CnnPolicy, CnnSpec


def direct_conv(x, w, kernel, stride):
    """x (H, W, C), w rows ordered (c, kh, kw): the textbook loop."""
    h, wd, c = x.shape
    out_h, out_w = (h - kernel) // stride + 1, (wd - kernel) // stride + 1
    out = np.zeros((out_h, out_w, w.shape[1]), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[i * stride:i * stride + kernel, j * stride:j * stride + kernel, :]
            out[i, j] = patch.transpose(2, 0, 1).reshape(-1) @ w
    return out


def direct_forward(spec, theta, ob, reference=None):
    """The network written plainly, with batch normalization computed on the reference batch."""
    arrays = spec.unflatten(theta.astype(np.float64))

    def layer(k, x):                        # x: (H, W, C) images or flat vectors
        w = arrays[f"w{k}"]
        if k < len(CONVS):
            return direct_conv(x, w, CONVS[k][1], CONVS[k][2])
        return x.reshape(-1) @ w

    def hidden(x_list):
        for k in range(len(spec.layer_shapes) - 1):
            pre = [layer(k, x) for x in x_list]
            if spec.vbn:
                ref = np.stack(pre[1:])
                axes = tuple(range(ref.ndim - 1))
                mean, var = ref.mean(axis=axes), ref.var(axis=axes)
                pre = [arrays[f"gamma{k}"] * (p - mean) / np.sqrt(var + VBN_EPSILON)
                       + arrays[f"beta{k}"] for p in pre]
            else:
                pre = [p + arrays[f"b{k}"] for p in pre]
            x_list = [np.maximum(p, 0) for p in pre]
        return x_list[0]

    images = [o.transpose(1, 2, 0).astype(np.float64) / 255.0
              for o in [ob] + ([] if reference is None else list(reference))]
    x = hidden(images)
    return x.reshape(-1) @ arrays["w_out"] + arrays["b_out"]


@pytest.mark.parametrize("vbn", [False, True])
@pytest.mark.parametrize("shape", [(4, 84, 84), (2, 42, 46)])
def test_forward_matches_the_textbook_network(vbn, shape):
    rng = np.random.default_rng(0)
    spec = CnnSpec(shape, num_actions=5, vbn=vbn)
    theta = spec.init_theta(rng)
    # random gamma/beta/biases and a larger output layer, so every part of theta matters
    theta += rng.normal(0, 0.3, theta.size).astype(np.float32)
    reference = rng.integers(0, 256, (6, *shape), dtype=np.uint8) if vbn else None
    policy = CnnPolicy(spec, theta, reference)
    for _ in range(2):
        ob = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(policy.scores(ob), direct_forward(spec, theta, ob, reference),
                                   rtol=2e-4, atol=2e-4)


def test_layout_and_parameter_count_of_the_papers_network():
    spec = CnnSpec((4, 84, 84), num_actions=6)
    assert spec.conv_shapes == [(20, 20, 16), (9, 9, 32)]
    # conv1 8*8*4*16, conv2 4*4*16*32, dense 2592*256, out 256*6 (+6), gamma and beta per unit
    assert spec.num_params == 4096 + 8192 + 2592 * 256 + 256 * 6 + 6 + 2 * (16 + 32 + 256)
    plain = CnnSpec((4, 84, 84), num_actions=6, vbn=False)
    assert plain.num_params == spec.num_params - (16 + 32 + 256)


def test_vbn_statistics_follow_theta_and_the_reference_batch():
    rng = np.random.default_rng(1)
    spec = CnnSpec((4, 84, 84), num_actions=4)
    theta = spec.init_theta(rng)
    reference = rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8)
    policy = CnnPolicy(spec, theta, reference)
    ob = reference[0]
    before = policy.scores(ob)
    # scaling the first layer's weights changes nothing after normalization ...
    arrays = spec.unflatten(theta.copy())
    scaled = theta.copy()
    spec.unflatten(scaled)["w0"][...] = arrays["w0"] * 3.0
    policy.set_theta(scaled)
    np.testing.assert_allclose(policy.scores(ob), before, rtol=1e-3, atol=1e-5)
    # ... but another reference batch does
    other = CnnPolicy(spec, theta, rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8))
    assert not np.allclose(other.scores(ob), before)


def test_vbn_needs_a_reference_batch():
    spec = CnnSpec((4, 84, 84), num_actions=4)
    with pytest.raises(ValueError, match="reference batch"):
        CnnPolicy(spec, spec.init_theta(np.random.default_rng(0)))


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="too small"):
        CnnSpec((4, 16, 16), num_actions=3).num_params


@pytest.mark.parametrize("vbn", [False, True])
def test_channels_last_images_are_the_same_network_on_the_transposed_frames(vbn):
    """(H, W, C) images (RGB frames, other wrappers) are recognised; a channels-last policy acts
    on them exactly as the channels-first one acts on the same frames transposed."""
    from mpi_es.policies.cnn import channels_last
    assert channels_last((84, 84, 4)) and channels_last((210, 160, 3))
    assert not channels_last((4, 84, 84)) and not channels_last((2, 42, 46))
    rng = np.random.default_rng(1)
    first = CnnSpec((4, 42, 46), num_actions=3, vbn=vbn)
    last = CnnSpec((42, 46, 4), num_actions=3, vbn=vbn, channels_last=True)
    assert last.num_params == first.num_params and last.conv_shapes == first.conv_shapes
    assert "channels last" in last.describe_observations()
    theta = first.init_theta(rng) + rng.normal(0, 0.3, first.num_params).astype(np.float32)
    reference = rng.integers(0, 256, (6, 42, 46, 4), dtype=np.uint8) if vbn else None
    hwc = CnnPolicy(last, theta, reference)
    chw = CnnPolicy(first, theta, None if reference is None else reference.transpose(0, 3, 1, 2))
    ob = rng.integers(0, 256, (42, 46, 4), dtype=np.uint8)
    np.testing.assert_array_equal(hwc.scores(ob), chw.scores(ob.transpose(2, 0, 1)))
