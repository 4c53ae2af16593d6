import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tailteacher.labels import (
    cosine_similarity_matrix,
    row_entropy,
    similarity_smoothing_matrix,
    smooth_targets,
    uniform_smooth_targets,
)

# A 3-class example to check on paper. p0 = (1, 0), p1 = (1, 1), p2 = (0, 1):
#   S = [[1, r, 0], [r, 1, r], [0, r, 1]] with r = cos 45° = 1/√2 = 0.707107.
# Counts (4, 1, 0) → clamped (4, 1, 1); γ = 0.5 → N^γ = (2, 1, 1), so column 0 is halved.
# Row 0 logits (1/2, r, 0): exp = (1.648721, 2.028115, 1.0), sum 4.676836
#   → S'_0 = (0.352529, 0.433651, 0.213820).
PROTOS = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
COUNTS = torch.tensor([4, 1, 0])
EXPECTED_S_PRIME = torch.tensor(
    [
        [0.352529, 0.433651, 0.213820],
        [0.230794, 0.440527, 0.328678],
        [0.174022, 0.352937, 0.473041],
    ],
    dtype=torch.float64,
)


def test_eq2_hand_computed():
    s_prime = similarity_smoothing_matrix(PROTOS, COUNTS, gamma=0.5)
    torch.testing.assert_close(s_prime, EXPECTED_S_PRIME, atol=1e-6, rtol=0)


def test_eq3_hand_computed():
    s_prime = similarity_smoothing_matrix(PROTOS, COUNTS, gamma=0.5)
    targets = smooth_targets(torch.tensor([0, 2]), s_prime, eps=0.1)
    # label 0: (0.9 + 0.1·0.352529, 0.1·0.433651, 0.1·0.213820)
    expected = torch.tensor(
        [[0.9352529, 0.0433651, 0.0213820], [0.0174022, 0.0352937, 0.9473041]], dtype=torch.float64
    )
    torch.testing.assert_close(targets, expected, atol=1e-6, rtol=0)


def test_zero_prototype_has_zero_similarity_everywhere():
    protos = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    sim = cosine_similarity_matrix(protos)
    assert sim.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]
    # A class never seen smooths uniformly: all its logits are 0.
    s_prime = similarity_smoothing_matrix(protos, torch.tensor([3, 0, 5]), gamma=1.5)
    torch.testing.assert_close(s_prime[1], torch.full((3,), 1 / 3))


def test_uniform_smoothing_hand_computed():
    targets = uniform_smooth_targets(torch.tensor([1, 0]), num_classes=4, eps=0.2)
    expected = torch.tensor([[0.05, 0.85, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05]])
    torch.testing.assert_close(targets, expected)


def test_temperature_sharpens_toward_similar_classes():
    s1 = similarity_smoothing_matrix(PROTOS, torch.ones(3), gamma=0.0)
    s_sharp = similarity_smoothing_matrix(PROTOS, torch.ones(3), gamma=0.0, temperature=0.1)
    # Row 0: class 1 (cos 0.71) gains over class 2 (cos 0) as T shrinks.
    assert s_sharp[0, 1] / s_sharp[0, 2] > s1[0, 1] / s1[0, 2]
    torch.testing.assert_close(
        s_sharp[0, 1] / s_sharp[0, 2],
        torch.tensor(math.exp(10 / math.sqrt(2)), dtype=torch.float64),
    )
    assert row_entropy(s_sharp).mean() < row_entropy(s1).mean()


def prototypes_and_counts(min_c=1, max_c=8, nonnegative=False):
    @st.composite
    def build(draw):
        c = draw(st.integers(min_c, max_c))
        d = draw(st.integers(1, 6))
        seed = draw(st.integers(0, 2**16))
        g = torch.Generator().manual_seed(seed)
        p = torch.randn(c, d, generator=g, dtype=torch.float64)
        if nonnegative:
            p = p.relu()
        counts = torch.randint(0, 2000, (c,), generator=g)
        return p, counts

    return build()


@given(prototypes_and_counts(), st.floats(0, 3))
def test_rows_sum_to_one(pc, gamma):
    p, counts = pc
    s_prime = similarity_smoothing_matrix(p, counts, gamma)
    torch.testing.assert_close(s_prime.sum(1), torch.ones(p.shape[0], dtype=torch.float64))
    assert bool((s_prime > 0).all())


@given(prototypes_and_counts(), st.floats(0, 3))
def test_eps_zero_gives_one_hot(pc, gamma):
    p, counts = pc
    labels = torch.arange(p.shape[0])
    targets = smooth_targets(labels, similarity_smoothing_matrix(p, counts, gamma), eps=0.0)
    assert torch.equal(targets, torch.eye(p.shape[0], dtype=torch.float64))


@given(prototypes_and_counts(), st.floats(0, 1))
def test_targets_are_distributions(pc, eps):
    p, counts = pc
    labels = torch.arange(p.shape[0]).repeat(2)
    targets = smooth_targets(labels, similarity_smoothing_matrix(p, counts, 1.5), eps)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(labels), dtype=torch.float64))
    assert bool((targets[torch.arange(len(labels)), labels] >= 1 - eps - 1e-12).all())


@given(prototypes_and_counts(), st.integers(1, 500), st.floats(0, 3))
def test_gamma_zero_or_equal_counts_is_softmax_of_symmetric_matrix(pc, n, gamma):
    p, _ = pc
    c = p.shape[0]
    # Independent cosine: normalise by hand, zero rows stay zero.
    norms = p.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, p / norms, 0.0)
    sim = unit @ unit.T
    assert torch.allclose(sim, sim.T)
    equal_counts = torch.full((c,), n)
    torch.testing.assert_close(similarity_smoothing_matrix(p, equal_counts, 0.0), torch.softmax(sim, 1))
    scaled = torch.softmax(sim / n**gamma, 1)
    torch.testing.assert_close(similarity_smoothing_matrix(p, equal_counts, gamma), scaled)


@given(prototypes_and_counts(min_c=2, nonnegative=True), st.floats(0, 2), st.floats(0.01, 2))
def test_larger_gamma_moves_mass_toward_rarer_classes(pc, gamma, step):
    # With non-negative similarities (ReLU features), raising γ shrinks every logit of a class
    # with N > 1 toward 0 and leaves the rarest classes (N clamped to 1) unchanged, so the
    # mass on the rarest classes can only grow, in every row.
    p, counts = pc
    counts[0] = 0  # class 0 is the rarest
    rare = counts.clamp(min=1) == 1
    low = similarity_smoothing_matrix(p, counts, gamma)[:, rare].sum(1)
    high = similarity_smoothing_matrix(p, counts, gamma + step)[:, rare].sum(1)
    assert bool((high >= low - 1e-12).all())


def test_larger_gamma_orders_mass_by_rarity_for_equal_similarities():
    # Four orthogonal-free prototypes all at the same angle: the only thing telling the
    # classes apart is their count, so the smoothing must rank them by rarity.
    p = torch.ones(4, 3, dtype=torch.float64)
    counts = torch.tensor([1000, 100, 10, 1])
    s_prime = similarity_smoothing_matrix(p, counts, gamma=1.5)
    row = s_prime[0]
    assert row[3] > row[2] > row[1] > row[0]
    flat = similarity_smoothing_matrix(p, counts, gamma=0.0)
    torch.testing.assert_close(flat, torch.full((4, 4), 0.25, dtype=torch.float64))


def test_smooth_targets_rejects_a_matrix_that_is_not_row_stochastic():
    with pytest.raises(ValueError, match="smoothing: expected non-negative rows"):
        smooth_targets(torch.tensor([0]), torch.ones(2, 2), 0.1)
