import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from tailteacher.labels import soft_binary_cross_entropy, soft_cross_entropy


def test_soft_cross_entropy_hand_computed():
    # logits (0, ln 3): softmax = (1/4, 3/4). target (1/2, 1/2):
    # −(½ ln ¼ + ½ ln ¾) = ½ (ln 4 + ln 4/3) = 0.5 · 1.673976 = 0.836988
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    targets = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    loss = soft_cross_entropy(logits, targets)
    assert loss.item() == pytest.approx(0.5 * (math.log(4) + math.log(4 / 3)), abs=1e-12)


@given(st.integers(1, 20), st.integers(2, 9), st.integers(0, 999))
def test_one_hot_soft_cross_entropy_equals_f_cross_entropy(r, k, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(r, k, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, k, (r,), generator=g)
    onehot = F.one_hot(labels, k).double()
    torch.testing.assert_close(soft_cross_entropy(logits, onehot), F.cross_entropy(logits, labels))
    weights = torch.rand(r, generator=g, dtype=torch.float64)
    ref = (F.cross_entropy(logits, labels, reduction="none") * weights).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, onehot, weights), ref)


@given(st.integers(1, 20), st.integers(1, 9), st.integers(0, 999))
def test_one_hot_soft_bce_equals_f_bce(r, k, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(r, k, generator=g, dtype=torch.float64) * 3
    targets = F.one_hot(torch.randint(0, k, (r,), generator=g), k).double()
    torch.testing.assert_close(
        soft_binary_cross_entropy(logits, targets),
        F.binary_cross_entropy_with_logits(logits, targets),
    )
    soft = torch.rand(r, k, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        soft_binary_cross_entropy(logits, soft), F.binary_cross_entropy_with_logits(logits, soft)
    )


def test_federated_class_mask_counts_only_sampled_classes():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 6, generator=g, dtype=torch.float64)
    targets = torch.rand(5, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, False, False])
    ref = F.binary_cross_entropy_with_logits(logits[:, mask], targets[:, mask])
    torch.testing.assert_close(soft_binary_cross_entropy(logits, targets, mask), ref)
    summed = soft_binary_cross_entropy(logits, targets, mask, reduction="sum")
    torch.testing.assert_close(summed, ref * 15)
    none = soft_binary_cross_entropy(logits, targets, mask, reduction="none")
    assert none.shape == (5, 6) and bool((none[:, ~mask] == 0).all())


@pytest.mark.parametrize("loss_fn", [soft_cross_entropy, soft_binary_cross_entropy])
def test_empty_batch_is_zero_with_gradients(loss_fn):
    logits = torch.zeros(0, 4, requires_grad=True)
    loss = loss_fn(logits, torch.zeros(0, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and logits.grad.shape == (0, 4)


def test_all_background_softmax_loss():
    # Every proposal is background (column 0 here): the loss is the CE to class 0.
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    loss = soft_cross_entropy(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([0, 0])))
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_no_gradient_flows_into_targets():
    # Pseudo-labels are computed by a network too: the loss must treat them as constants.
    for loss in (soft_cross_entropy, soft_binary_cross_entropy):
        logits = torch.randn(3, 4, requires_grad=True)
        teacher_logits = torch.randn(3, 4, requires_grad=True)
        targets = torch.softmax(teacher_logits, 1)
        loss(logits, targets).backward()
        assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
        assert teacher_logits.grad is None, loss.__name__


def test_bad_targets_are_rejected():
    with pytest.raises(ValueError, match=r"targets: expected the shape of logits \[2, 3\]"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 1\]"):
        soft_binary_cross_entropy(torch.zeros(2, 3), torch.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="class_mask"):
        soft_binary_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(4, dtype=torch.bool))
