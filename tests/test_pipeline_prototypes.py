import torch

from tailteacher.labels import class_prototypes
from tailteacher.pipeline.prototypes import (
    accumulate_prototypes,
    load_prototypes,
    nearest_classes_table,
    pad_batch,
    pool_instances,
    save_prototypes,
    smoothing_from_prototypes,
)


def test_pool_instances_is_the_mean_inside_the_box():
    # Feature map at stride 1: channel 0 is x, channel 1 is 1 everywhere. The RoIAlign samples of
    # box [2, 0, 6, 4] lie at x in (2, 6), symmetric around 4, so the mean of channel 0 is 4 - 0.5
    # (aligned=True shifts pixel centres by half a pixel).
    h, w = 8, 8
    x = torch.arange(w, dtype=torch.float32).expand(h, w)
    feats = torch.stack([x, torch.ones(h, w)])[None]
    emb = pool_instances(feats, [torch.tensor([[2.0, 0.0, 6.0, 4.0]])], stride=1.0)
    torch.testing.assert_close(emb, torch.tensor([[3.5, 1.0]]))
    assert pool_instances(feats, [torch.zeros(0, 4)], 1.0).shape == (0, 2)


def test_accumulate_prototypes_equals_one_shot_mean():
    # A feature function that returns the image itself at stride 1: a box's embedding is the mean
    # colour inside it.
    def identity(images):
        return images, 1.0

    red, blue = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    red[0], blue[2] = 1.0, 1.0
    batches = [
        (
            [red, blue],
            [torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[1.0, 1, 5, 5]])],
            [torch.tensor([0]), torch.tensor([1])],
        )
    ]
    acc = accumulate_prototypes(batches, identity, num_classes=3)
    protos, counts = acc.compute()
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 0, 0]]))
    assert counts.tolist() == [1, 1, 0]
    ref, _ = class_prototypes(torch.tensor([[1.0, 0, 0], [0, 0, 1]]), torch.tensor([0, 1]), 3)
    torch.testing.assert_close(protos, ref)


def test_pad_batch_keeps_images_top_left():
    a, b = torch.ones(3, 2, 5), torch.full((3, 4, 3), 2.0)
    out = pad_batch([a, b])
    assert out.shape == (2, 3, 4, 5) and out[0, :, 2:].abs().sum() == 0 and out[1, :, :, 3:].abs().sum() == 0


def test_save_load_and_nearest_table(tmp_path):
    protos = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    counts = torch.tensor([5, 1, 3])
    sim, smoothing, ratio = smoothing_from_prototypes(protos, counts, gamma=1.5)
    assert 0 < ratio <= 1
    path = save_prototypes(tmp_path, protos, counts, sim, smoothing)
    back = load_prototypes(path)
    torch.testing.assert_close(back["smoothing"], smoothing.float())
    assert back["counts"].tolist() == [5, 1, 3]
    table = nearest_classes_table(sim, ["cat", "lynx", "car"], k=1)
    assert "| cat | lynx (0.994) |" in table and "| car | lynx (0.110) |" in table
