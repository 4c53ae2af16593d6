import torch
from hypothesis import given
from hypothesis import strategies as st

from tailteacher.labels import PrototypeAccumulator, class_prototypes


def test_class_prototypes_hand_computed():
    emb = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 2, 0])
    protos, counts = class_prototypes(emb, labels, num_classes=4)
    expected = torch.tensor([[3.0, 7.0 / 3.0], [0.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(protos, expected)
    assert counts.tolist() == [3, 0, 1, 0]
    assert counts.dtype == torch.int64 and protos.dtype == torch.float32


def test_class_prototypes_keeps_float64_and_empty_input():
    emb = torch.zeros(0, 3, dtype=torch.float64)
    protos, counts = class_prototypes(emb, torch.zeros(0, dtype=torch.long), num_classes=2)
    assert protos.dtype == torch.float64 and protos.shape == (2, 3)
    assert torch.count_nonzero(protos) == 0 and counts.tolist() == [0, 0]


def test_float32_input_is_summed_in_float64():
    # 40,961 rows: one 1.0 and 40,960 of 4096.0. Their sum, 167,772,161, needs 28 bits; a float32
    # running sum stops adding the 1.0 (and rounds) long before the end.
    n = 40_961
    emb = torch.full((n, 1), 4096.0)
    emb[0] = 1.0
    protos, _ = class_prototypes(emb, torch.zeros(n, dtype=torch.long), 1)
    assert protos.item() == torch.tensor((4096.0 * (n - 1) + 1.0) / n, dtype=torch.float32).item()
    acc = PrototypeAccumulator(1, 1)
    acc.update(emb, torch.zeros(n, dtype=torch.long))
    assert acc.sums.item() == 4096.0 * (n - 1) + 1.0


@given(
    n=st.integers(0, 60),
    c=st.integers(1, 7),
    d=st.integers(1, 5),
    chunks=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_accumulator_over_chunks_equals_one_shot(n, c, d, chunks, seed):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, d, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    acc = PrototypeAccumulator(c, d)
    for e, lab in zip(emb.tensor_split(chunks), labels.tensor_split(chunks), strict=True):
        acc.update(e, lab)
    protos, counts = acc.compute()
    ref_protos, ref_counts = class_prototypes(emb, labels, c)
    torch.testing.assert_close(protos, ref_protos, rtol=1e-6, atol=1e-6)
    assert torch.equal(counts, ref_counts)


def test_merge_and_state_dict_round_trip():
    g = torch.Generator().manual_seed(0)
    emb, labels = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    a, b = PrototypeAccumulator(3, 4), PrototypeAccumulator(3, 4)
    a.update(emb[:10], labels[:10])
    b.update(emb[10:], labels[10:])
    a.merge(b)
    restored = PrototypeAccumulator(3, 4)
    restored.load_state_dict(a.state_dict())
    ref, _ = class_prototypes(emb, labels, 3)
    torch.testing.assert_close(restored.compute()[0], ref)


def test_all_reduce_without_process_group_is_a_no_op():
    acc = PrototypeAccumulator(2, 1)
    acc.update(torch.tensor([[2.0]]), torch.tensor([1]))
    acc.all_reduce()
    acc.update(torch.tensor([[4.0]]), torch.tensor([1]))  # still open: nothing was reduced
    assert acc.compute()[0].tolist() == [[0.0], [3.0]]
